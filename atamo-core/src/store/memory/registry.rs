//! The in-memory store's definitions registry.

use async_trait::async_trait;
use serde_json::Value;

use super::store::MemoryStore;
use crate::store::error::StoreError;
use crate::store::records::AuditRecord;
use crate::store::registry::{
    check_registry_id, DefinitionRegistry, RegistryEntry, RegistryKind, RegistryOutcome,
    RegistryWrite,
};

#[async_trait]
impl DefinitionRegistry for MemoryStore {
    async fn entry(
        &self,
        kind: &RegistryKind,
        id: &str,
    ) -> Result<Option<RegistryEntry>, StoreError> {
        check_registry_id(id)?;
        let key = (kind.clone(), id.to_owned());
        Ok(self.lock().registry.get(&key).cloned())
    }

    async fn entries(&self, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
        let from = (kind.clone(), String::new());
        // Keys sort by kind, then id: the kind's entries are one range, ordered by id.
        Ok(self
            .lock()
            .registry
            .range(from..)
            .take_while(|((k, _), _)| k == kind)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn put(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> Result<RegistryOutcome, StoreError> {
        check_registry_id(id)?;
        let now = self.clock.now();
        let key = (kind.clone(), id.to_owned());
        Ok(self.lock().registry_put(key, body, mode, audit, now))
    }

    async fn delete(
        &self,
        kind: &RegistryKind,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> Result<bool, StoreError> {
        check_registry_id(id)?;
        let key = (kind.clone(), id.to_owned());
        let mut inner = self.lock();
        let deleted = inner.registry.remove(&key).is_some();
        if deleted {
            inner.push_audit(audit);
        }
        Ok(deleted)
    }
}
