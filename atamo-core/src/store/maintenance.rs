//! What maintenance takes and reports: retention, prunes, statistics and integrity checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::records::ActionState;
use crate::ids::{AgentId, TenantId};
use crate::message::Timestamp;

/// How long things are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    /// Audit entries, events and finished actions older than this are deleted (never, when
    /// `None`).
    pub max_age: Option<Duration>,
    /// Per-tenant ages that replace `max_age` for that tenant.
    pub tenants: BTreeMap<TenantId, Duration>,
}

impl Retention {
    /// The age limit for `tenant`.
    pub fn for_tenant(&self, tenant: Option<&TenantId>) -> Option<Duration> {
        tenant
            .and_then(|t| self.tenants.get(t).copied())
            .or(self.max_age)
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Audit entries.
    pub audit: u64,
    /// Expired request results.
    pub results: u64,
    /// Events (and their finished actions).
    pub events: u64,
    /// Finished (done) actions.
    pub actions: u64,
    /// Expired dedupe keys.
    pub dedupe_keys: u64,
}

/// Queue depths and sizes, for operators.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreStats {
    /// `memory`, `sqlite` or `postgres`.
    pub backend: String,
    /// Actions by state (every state is listed, with 0 when empty).
    pub actions: BTreeMap<ActionState, u64>,
    /// Ready actions by agent.
    pub ready_by_agent: BTreeMap<AgentId, u64>,
    /// When the oldest ready action became ready.
    pub oldest_ready: Option<Timestamp>,
    /// Stored events.
    pub events: u64,
    /// Audit entries.
    pub audit_entries: u64,
    /// Unexpired request results.
    pub results: u64,
    /// Bytes on disk, where the backend knows.
    pub size_bytes: Option<u64>,
}

/// The outcome of an integrity check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// What was checked.
    pub checked: Vec<String>,
    /// What is wrong; empty when all is well.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}
