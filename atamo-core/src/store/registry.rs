//! The definitions registry: configuration a service adds at run time (agents, rules, types,
//! keys...), kept as JSON entries by kind and id with a revision.
//!
//! The registry is a capability of its own, beside [`Store`](super::Store): a backend
//! implements both, the hub never sees the registry, and the service holds it separately. Its
//! writes commit with their audit records in one transaction, every node of a shared store
//! sees them, and pruning never removes them.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::StoreError;
use super::records::AuditRecord;
use crate::message::Timestamp;

/// The longest registry kind or id, in bytes.
pub const MAX_REGISTRY_KEY: usize = 200;

/// What kind of entry a registry entry is (`agent`, `rule`, ...): entries of different kinds
/// never meet. 1 to [`MAX_REGISTRY_KEY`] bytes without a NUL character, checked when made.
///
/// The kinds the service stores are constants ([`RegistryKind::AGENT`], ...); any other is made
/// with [`RegistryKind::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegistryKind(Cow<'static, str>);

impl RegistryKind {
    /// Agents.
    pub const AGENT: Self = Self(Cow::Borrowed("agent"));
    /// Rules.
    pub const RULE: Self = Self(Cow::Borrowed("rule"));
    /// Event types.
    pub const EVENT_TYPE: Self = Self(Cow::Borrowed("event_type"));
    /// Action types.
    pub const ACTION_TYPE: Self = Self(Cow::Borrowed("action_type"));
    /// API keys.
    pub const API_KEY: Self = Self(Cow::Borrowed("api_key"));

    /// A kind named `name`; [`StoreError::Invalid`] when it is empty, longer than
    /// [`MAX_REGISTRY_KEY`] bytes or holds a NUL character.
    pub fn new(name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        check_key_part("kind", &name)?;
        Ok(Self(Cow::Owned(name)))
    }

    /// The kind's name, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RegistryKind {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Self::new(s)
    }
}

impl TryFrom<String> for RegistryKind {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self, StoreError> {
        Self::new(s)
    }
}

impl From<RegistryKind> for String {
    fn from(k: RegistryKind) -> Self {
        k.0.into_owned()
    }
}

impl AsRef<str> for RegistryKind {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for RegistryKind {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RegistryKind {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One stored configuration entry (an agent, a rule, a type, an API key...), kept by
/// [`DefinitionRegistry::put`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// What kind of entry it is.
    pub kind: RegistryKind,
    /// Its id within its kind.
    pub id: String,
    /// The entry, as the service sees it.
    pub body: Value,
    /// 1 when created, one more at every write since.
    pub revision: u64,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// How [`DefinitionRegistry::put`] treats an existing entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryWrite {
    /// Writes a new entry; [`RegistryOutcome::Exists`] when there is one already.
    Create,
    /// Replaces an entry; [`RegistryOutcome::Missing`] when there is none.
    Replace,
    /// Writes the entry, whether or not there was one.
    Upsert,
}

/// What [`DefinitionRegistry::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RegistryOutcome {
    /// The entry was written, and has this revision now.
    Written {
        /// The entry's new revision.
        revision: u64,
    },
    /// [`RegistryWrite::Create`] found an entry: nothing was written.
    Exists,
    /// [`RegistryWrite::Replace`] found no entry: nothing was written.
    Missing,
}

/// Checks a registry id: not empty, at most [`MAX_REGISTRY_KEY`] bytes, no NUL character.
/// [`StoreError::Invalid`] otherwise.
pub fn check_registry_id(id: &str) -> Result<(), StoreError> {
    check_key_part("id", id)
}

fn check_key_part(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() {
        Err(StoreError::invalid(format!("a registry {what} is empty")))
    } else if s.len() > MAX_REGISTRY_KEY {
        Err(StoreError::invalid(format!(
            "a registry {what} of {} bytes, at most {MAX_REGISTRY_KEY} are allowed",
            s.len()
        )))
    } else if s.contains('\0') {
        Err(StoreError::invalid(format!(
            "a registry {what} contains a NUL character"
        )))
    } else {
        Ok(())
    }
}

/// The definitions registry of a backend. See the [store module](crate::store) for the model.
///
/// Every method reads the time from the backend's [`Clock`](super::Clock). Ids are checked
/// with [`check_registry_id`]: [`StoreError::Invalid`] for one it refuses.
#[async_trait::async_trait]
pub trait DefinitionRegistry: Send + Sync {
    /// The entry `id` of `kind`.
    async fn entry(
        &self,
        kind: &RegistryKind,
        id: &str,
    ) -> Result<Option<RegistryEntry>, StoreError>;

    /// Every entry of `kind`, ordered by id (byte order).
    async fn entries(&self, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError>;

    /// Writes the entry `id` of `kind` as `mode` says. `audit` is written in the same
    /// transaction, and only when the entry is written (not on `Exists` or `Missing`). The
    /// entry's revision is 1 when it is created and one more at each write after that.
    async fn put(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> Result<RegistryOutcome, StoreError>;

    /// Deletes the entry `id` of `kind`; `false` when there was none. `audit` is written in the
    /// same transaction, and only when an entry was deleted. An entry created again later
    /// starts again at revision 1.
    async fn delete(
        &self,
        kind: &RegistryKind,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_checked_when_made_and_serialize_as_their_name() {
        assert_eq!(
            RegistryKind::new("agent").map(|k| k == RegistryKind::AGENT),
            Ok(true)
        );
        for bad in [
            String::new(),
            "x".repeat(MAX_REGISTRY_KEY + 1),
            "a\0b".into(),
        ] {
            assert!(
                matches!(
                    RegistryKind::new(bad.clone()),
                    Err(StoreError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            serde_json::to_value(RegistryKind::RULE).ok(),
            Some(serde_json::json!("rule"))
        );
        assert!(serde_json::from_value::<RegistryKind>(serde_json::json!("")).is_err());
        assert_eq!(RegistryKind::API_KEY, "api_key");
    }
}
