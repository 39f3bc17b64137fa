//! A store whose condition a test sets: [`Conditioned`] wraps a real store (memory, SQLite,
//! PostgreSQL), passes every call through, and reports the condition the test gives its
//! [`Condition`] switch. While the condition is failed, writes are refused as a store that
//! cannot keep what it is given would refuse them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atamo_core::async_trait;
use atamo_core::status::ComponentState;
use atamo_core::store::{
    ActionQueue, ActionRow, AuditLog, AuditQuery, AuditRecord, BatchWriter, CheckReport, Claimed,
    Cursor, DefinitionRegistry, EventLog, EventQuery, EventRecord, Maintenance, NodeId, Page,
    PruneReport, RegistryEntry, RegistryKind, RegistryOutcome, RegistryWrite, RequestResults,
    ResultRecord, Retention, StoreError, StoreStats, WriteBatch, WriteOutcome,
};
use atamo_core::{ActionId, EventId, RequestId};
use serde_json::Value;

/// The condition a [`Conditioned`] store reports; cheap to clone, shared with the store.
#[derive(Clone)]
pub struct Condition(Arc<Mutex<ComponentState>>);

impl Condition {
    /// Sets the store's condition.
    pub fn set(&self, state: ComponentState) {
        *self.0.lock().unwrap() = state;
    }

    /// Fails the store with `reason`.
    pub fn fail(&self, reason: &str) {
        self.set(ComponentState::Failed {
            reason: reason.into(),
        });
    }

    /// The store works again.
    pub fn recover(&self) {
        self.set(ComponentState::Ready);
    }

    fn get(&self) -> ComponentState {
        self.0.lock().unwrap().clone()
    }
}

/// A store reporting the condition a test sets.
pub struct Conditioned<S> {
    inner: S,
    condition: Condition,
}

impl<S> Conditioned<S> {
    /// `inner`, ready, and the switch of its condition.
    pub fn new(inner: S) -> (Self, Condition) {
        let condition = Condition(Arc::new(Mutex::new(ComponentState::Ready)));
        (
            Self {
                inner,
                condition: condition.clone(),
            },
            condition,
        )
    }

    fn refuse_when_failed(&self) -> Result<(), StoreError> {
        match self.condition.get() {
            ComponentState::Failed { reason } => Err(StoreError::unavailable(reason)),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl<S: BatchWriter> BatchWriter for Conditioned<S> {
    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.refuse_when_failed()?;
        self.inner.write(batch).await
    }
}

#[async_trait]
impl<S: ActionQueue> ActionQueue for Conditioned<S> {
    async fn claim(
        &self,
        node: &NodeId,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim(node, limit, lease).await
    }
    async fn heartbeat(&self, node: &NodeId, lease: Duration) -> Result<u64, StoreError> {
        self.inner.heartbeat(node, lease).await
    }
    async fn recover_expired(&self) -> Result<u64, StoreError> {
        self.inner.recover_expired().await
    }
    async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
        self.inner.action(id).await
    }
    async fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ActionRow>, StoreError> {
        self.inner.dead_letters(cursor, limit).await
    }
    async fn redrive(&self, id: ActionId) -> Result<bool, StoreError> {
        self.inner.redrive(id).await
    }
    fn wake_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.inner.wake_hint()
    }
}

#[async_trait]
impl<S: RequestResults> RequestResults for Conditioned<S> {
    async fn results(&self, request: RequestId) -> Result<Vec<ResultRecord>, StoreError> {
        self.inner.results(request).await
    }
}

#[async_trait]
impl<S: AuditLog> AuditLog for Conditioned<S> {
    async fn audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
        self.inner.audit(query).await
    }
}

#[async_trait]
impl<S: EventLog> EventLog for Conditioned<S> {
    async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError> {
        self.inner.event(id).await
    }
    async fn events(&self, query: EventQuery) -> Result<Page<EventRecord>, StoreError> {
        self.inner.events(query).await
    }
}

#[async_trait]
impl<S: Maintenance> Maintenance for Conditioned<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        self.inner.prune(retention).await
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }
    async fn check(&self) -> Result<CheckReport, StoreError> {
        self.inner.check().await
    }
    fn condition(&self) -> ComponentState {
        self.condition.get()
    }
}

#[async_trait]
impl<S: DefinitionRegistry> DefinitionRegistry for Conditioned<S> {
    async fn entry(
        &self,
        kind: &RegistryKind,
        id: &str,
    ) -> Result<Option<RegistryEntry>, StoreError> {
        self.inner.entry(kind, id).await
    }
    async fn entries(&self, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
        self.inner.entries(kind).await
    }
    async fn put(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> Result<RegistryOutcome, StoreError> {
        self.inner.put(kind, id, body, mode, audit).await
    }
    async fn delete(
        &self,
        kind: &RegistryKind,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> Result<bool, StoreError> {
        self.inner.delete(kind, id, audit).await
    }
}
