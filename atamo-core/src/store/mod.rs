//! Durable state for a stateful hub: the action queue, the result store and the audit log.
//!
//! A [`Store`] is what makes a hub stateful. Three backends implement it, and all pass one
//! conformance suite ([`conformance`], behind the `conformance` feature):
//! - [`MemoryStore`] (this crate): the same semantics held in memory, for tests and for hubs
//!   that want dedupe, audit queries and leases without a disk;
//! - `atamo-store-sqlite`: the embedded default (one file, WAL, group commit);
//! - `atamo-store-postgres`: several hub nodes sharing one database.
//!
//! # The model
//! - **Accepting** an event writes the event, its dedupe key and its actions in one transaction.
//!   An event whose dedupe key was seen within its window is not written again: the caller gets
//!   the first event's receipt.
//! - **Actions** are `ready` (waiting for `run_at`), `leased` (a node works on it until
//!   `lease_until`), `done` or `dead`. The node that routed an event usually enqueues its actions
//!   already leased to itself, so the common path needs no claim round trip.
//! - **Leases are fenced by attempt number.** Every claim raises the attempt; a settle names the
//!   attempt it holds and is refused once the lease expired and the action was claimed again.
//! - **Settling** (done, retry later, dead, or give back) writes the action's new state, the
//!   request's answers and the audit records of the same write batch in one transaction.
//! - **Events** stay stored until pruned, and are listed newest first with filters on their
//!   type, user, tenant, time and payload fields ([`Store::events`], [`EventQuery`]).
//! - **The registry** keeps configuration a service adds at run time (agents, rules, types,
//!   keys...): JSON entries by kind and id with a revision, written with their audit records
//!   in one transaction, shared by every node of the store and never pruned.
//! - **Time** comes from an injectable [`Clock`], so tests move it by hand.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::failure::RetryPolicy;
use crate::ids::{
    ActionId, ActionType, AgentId, CorrelationId, EventId, EventType, ProviderId, RequestId,
    RuleId, TenantId, UserId,
};
use crate::message::{Origin, Principal, Timestamp};

#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;

pub use memory::MemoryStore;

/// A boxed future returned by store operations (the trait stays object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or refused the operation; trying again may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The stored data is not what this version understands.
    #[error("store data is corrupt or from an unknown version: {0}")]
    Corrupt(String),
    /// The caller asked for something invalid (a bad cursor, for example).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// Where a store reads the time. Leases, retries, windows and retention all use it.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to: for tests of leases, windows and retention.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            micros: AtomicU64::new(start.unix_micros()),
        })
    }

    /// A clock showing the current wall-clock time.
    pub fn starting_now() -> Arc<Self> {
        Self::new(Timestamp::now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.micros
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// `t + d`, saturating.
pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(t.unix_micros().saturating_add(d.as_micros() as u64))
}

/// `t - d`, saturating at the epoch.
pub fn earlier(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(t.unix_micros().saturating_sub(d.as_micros() as u64))
}

/// Converts a timestamp to a `SystemTime` (for display).
pub fn system_time(t: Timestamp) -> SystemTime {
    t.to_system_time()
}

/// Whether a message survives a crash of a stateful hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Committed to the store before the client is answered; carried out after a crash.
    #[default]
    Durable,
    /// Held in memory only: faster, and lost with the process.
    Memory,
}

/// The name of a hub node holding leases. Each process picks its own (host, pid and a random
/// part by default), so a restarted node never mistakes an old lease for its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub Arc<str>);

impl NodeId {
    /// A name from text.
    pub fn new(name: impl AsRef<str>) -> Self {
        Self(Arc::from(name.as_ref()))
    }

    /// A fresh name for this process: `host-pid-random`.
    pub fn generate() -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "node".to_owned());
        Self::new(format!(
            "{host}-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event as stored: everything needed to route it again or to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The event's id.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who it was published for.
    pub principal: Principal,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
    /// Its dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// The agent action that published it, for follow-up events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginRecord>,
    /// The request it belongs to, when it was sent as a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestId>,
    /// Its payload.
    pub payload: Value,
    /// When the hub accepted it.
    pub accepted_at: Timestamp,
}

impl EventRecord {
    /// An event with fresh ids and no dedupe key, origin or request, accepted at `at`.
    pub fn new(
        event_type: impl Into<EventType>,
        principal: Principal,
        payload: Value,
        at: Timestamp,
    ) -> Self {
        Self {
            id: EventId::generate(),
            event_type: event_type.into(),
            principal,
            correlation_id: CorrelationId::generate(),
            dedupe_key: None,
            origin: None,
            request: None,
            payload,
            accepted_at: at,
        }
    }

    /// The header this event's actions carry.
    pub fn header(&self) -> EventHeader {
        EventHeader {
            id: self.id,
            event_type: self.event_type.clone(),
            principal: self.principal.clone(),
            correlation_id: self.correlation_id,
            dedupe_key: self.dedupe_key.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// The action that published a follow-up event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRecord {
    /// The agent.
    pub agent: AgentId,
    /// Its action.
    pub action: ActionId,
}

impl From<&Origin> for OriginRecord {
    fn from(o: &Origin) -> Self {
        Self {
            agent: o.agent.clone(),
            action: o.action,
        }
    }
}

/// The header of the event an action came from, kept with the action so it can be rebuilt
/// after a restart without reading the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventHeader {
    /// The event's id.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who it was published for.
    pub principal: Principal,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
    /// Its dedupe key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// The agent action that published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<OriginRecord>,
}

/// An action as stored: what an agent is to do, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The action's id, which is also the idempotency key agents see.
    pub id: ActionId,
    /// The agent that performs it.
    pub agent: AgentId,
    /// What the agent is asked to do.
    pub action_type: ActionType,
    /// The rule that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleId>,
    /// The provider of that rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderId>,
    /// The event it came from.
    pub event: EventHeader,
    /// The request it answers, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestId>,
    /// The action's payload.
    pub payload: Value,
    /// The rule's or action type's retry policy, when it overrides the agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Where the action goes while its agent is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<AgentId>,
}

impl ActionRecord {
    /// An action of `event` for `agent` with a fresh id, no rule, retry policy or fallback.
    pub fn new(
        event: &EventRecord,
        agent: impl Into<AgentId>,
        action_type: impl Into<ActionType>,
        payload: Value,
    ) -> Self {
        Self {
            id: ActionId::generate(),
            agent: agent.into(),
            action_type: action_type.into(),
            rule: None,
            provider: None,
            event: event.header(),
            request: event.request,
            payload,
            retry: None,
            fallback: None,
        }
    }

    /// The tenant of the action's event.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.event.principal.tenant.as_ref()
    }
}

/// The state of a stored action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Waiting to be claimed once `run_at` has come.
    Ready,
    /// A node holds it until its lease ends.
    Leased,
    /// Finished.
    Done,
    /// Failed for good; can be redriven.
    Dead,
}

impl ActionState {
    /// Every state.
    pub const ALL: [ActionState; 4] = [Self::Ready, Self::Leased, Self::Done, Self::Dead];

    /// The state's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Leased => "leased",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// An action to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    /// The action.
    pub record: ActionRecord,
    /// `Some`: enqueued already leased (attempt 1) to this node until `now + lease`.
    /// `None`: enqueued ready, for whichever node claims it first.
    pub lease: Option<(NodeId, Duration)>,
}

impl NewAction {
    /// An action enqueued ready, for whichever node claims it first.
    pub fn ready(record: ActionRecord) -> Self {
        Self {
            record,
            lease: None,
        }
    }
}

/// An event to accept, with its actions.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptEvent {
    /// The event.
    pub event: EventRecord,
    /// How long its dedupe key blocks a second event with the same key (ignored without a key).
    pub dedupe_window: Duration,
    /// Its actions.
    pub actions: Vec<NewAction>,
}

impl AcceptEvent {
    /// An event with its actions, without a dedupe window.
    pub fn new(event: EventRecord, actions: Vec<NewAction>) -> Self {
        Self {
            event,
            dedupe_window: Duration::ZERO,
            actions,
        }
    }
}

/// What became of an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AcceptOutcome {
    /// Written, with its actions.
    New,
    /// Its dedupe key was seen within the window: nothing was written, and this is the first
    /// event's receipt.
    Duplicate {
        /// The first event's id.
        event_id: EventId,
        /// The first event's correlation id.
        correlation_id: CorrelationId,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// It succeeded.
    Done,
    /// It failed and will be tried again at `run_at`.
    Retry {
        /// When the next attempt may start.
        run_at: Timestamp,
        /// `Some(until)`: the same node keeps the action (attempt raised by one) and will retry
        /// it itself; the lease runs until `until`. `None`: back to `ready` for any node.
        hold_until: Option<Timestamp>,
        /// The failure, as JSON.
        error: Value,
    },
    /// It failed for good.
    Dead {
        /// The failure, as JSON.
        error: Value,
    },
    /// Not attempted (or interrupted): back to `ready` at once, for any node.
    Release,
}

/// The end of one attempt, fenced by the attempt number the node holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Settle {
    /// The action.
    pub action: ActionId,
    /// The attempt the node holds.
    pub attempt: u32,
    /// The node holding the lease.
    pub node: NodeId,
    /// How it ended.
    pub outcome: Settlement,
}

/// The answers of one action of a request, kept for the keep-alive time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The request.
    pub request: RequestId,
    /// The action that answered.
    pub action: ActionId,
    /// Its agent.
    pub agent: AgentId,
    /// The tenant of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// The answers, in order.
    pub answers: Vec<Value>,
    /// The final reply's payload, or the error as JSON.
    pub outcome: Result<Value, Value>,
    /// When it is forgotten.
    pub expires_at: Timestamp,
}

/// One step of a message's path, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, given by the store (0 before it is written). Newer entries have
    /// larger numbers.
    #[serde(default)]
    pub seq: u64,
    /// When the step happened.
    pub at: Timestamp,
    /// The step's name (`accepted`, `action_succeeded`, ...).
    pub step: String,
    /// The event concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// Its correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    /// The request concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The action concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<ActionId>,
    /// The event's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    /// The event's user (the client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The event's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// The agent concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// The step's own fields, as the telemetry stream shows them, less what the columns above
    /// hold (time, step name, ids, event type, user, tenant, agent).
    pub detail: Value,
}

/// Filters for [`Store::audit`]. Every field set must match; the newest entries come first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    /// The event's user.
    pub user: Option<UserId>,
    /// The tenant.
    pub tenant: Option<TenantId>,
    /// The agent.
    pub agent: Option<AgentId>,
    /// The event type.
    pub event_type: Option<EventType>,
    /// The step name (`action_dead_lettered`, ...).
    pub step: Option<String>,
    /// The event.
    pub event_id: Option<EventId>,
    /// The correlation id.
    pub correlation_id: Option<CorrelationId>,
    /// The request.
    pub request_id: Option<RequestId>,
    /// The action.
    pub action_id: Option<ActionId>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// The page size (at most [`MAX_PAGE`]; 100 when 0).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `r` matches every filter but the cursor.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        fn eq<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        }
        eq(&self.user, &r.user)
            && eq(&self.tenant, &r.tenant)
            && eq(&self.agent, &r.agent)
            && eq(&self.event_type, &r.event_type)
            && self.step.as_ref().is_none_or(|s| *s == r.step)
            && eq(&self.event_id, &r.event_id)
            && eq(&self.correlation_id, &r.correlation_id)
            && eq(&self.request_id, &r.request_id)
            && eq(&self.action_id, &r.action_id)
            && self.since.is_none_or(|s| r.at >= s)
            && self.until.is_none_or(|u| r.at < u)
            && self.cursor.is_none_or(|c| r.seq < c.0)
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        page_size(self.limit)
    }
}

/// Filters for [`Store::events`]. Every field set must match; the newest events come first.
///
/// Only stored events are listed: an event the hub kept in memory only
/// ([`Durability::Memory`]) is not in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventQuery {
    /// The event type.
    pub event_type: Option<EventType>,
    /// The event's user.
    pub user: Option<UserId>,
    /// The event's tenant.
    pub tenant: Option<TenantId>,
    /// Events accepted at or after this time.
    pub since: Option<Timestamp>,
    /// Events accepted before this time.
    pub until: Option<Timestamp>,
    /// Conditions on the payload; all must match (at most [`MAX_PAYLOAD_FILTERS`]).
    pub payload: Vec<PayloadFilter>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
    /// The page size (at most [`MAX_PAGE`]; 100 when 0).
    pub limit: usize,
}

/// The most payload filters one [`EventQuery`] may have.
pub const MAX_PAYLOAD_FILTERS: usize = 16;

/// The most field names in one [`PayloadFilter::path`].
pub const MAX_PAYLOAD_PATH: usize = 32;

impl EventQuery {
    /// Whether `e` matches every filter but the cursor.
    pub fn matches(&self, e: &EventRecord) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.user.as_ref().is_none_or(|u| *u == e.principal.user)
            && self
                .tenant
                .as_ref()
                .is_none_or(|t| e.principal.tenant.as_ref() == Some(t))
            && self.since.is_none_or(|s| e.accepted_at >= s)
            && self.until.is_none_or(|u| e.accepted_at < u)
            && self.payload.iter().all(|f| f.matches(&e.payload))
    }

    /// The page size to use.
    pub fn page_size(&self) -> usize {
        page_size(self.limit)
    }

    /// Checks what every backend refuses with [`StoreError::Invalid`]: more than
    /// [`MAX_PAYLOAD_FILTERS`] payload filters, a path of more than [`MAX_PAYLOAD_PATH`] names,
    /// and NUL characters in field names or values (SQL text cannot hold them).
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.payload.len() > MAX_PAYLOAD_FILTERS {
            return Err(StoreError::Invalid(format!(
                "{} payload filters, at most {MAX_PAYLOAD_FILTERS} are allowed",
                self.payload.len()
            )));
        }
        for f in &self.payload {
            if f.path.len() > MAX_PAYLOAD_PATH {
                return Err(StoreError::Invalid(format!(
                    "a payload path of {} names, at most {MAX_PAYLOAD_PATH} are allowed",
                    f.path.len()
                )));
            }
            if f.path.iter().any(|name| name.contains('\0')) || f.value.contains('\0') {
                return Err(StoreError::Invalid(
                    "payload filters cannot contain NUL characters".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

/// A condition on a field of an event's payload: the value at `path` is a JSON string equal to
/// `value`, or a number or boolean whose JSON text is `value` (`5`, `2.5`, `true`). Null,
/// objects, arrays and missing fields never match, and the path only goes through objects
/// (never into arrays).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadFilter {
    /// Field names below `payload`, outermost first; any text (dots, quotes, `$`...). An empty
    /// path is the payload itself.
    pub path: Vec<String>,
    /// The value the field must have.
    pub value: String,
}

impl PayloadFilter {
    /// A filter on the field `path`, whose names are separated by dots (`order.state`). Build
    /// the [`path`](Self::path) by hand for names that contain dots.
    pub fn parse(path: &str, value: impl Into<String>) -> Self {
        Self {
            path: path.split('.').map(str::to_owned).collect(),
            value: value.into(),
        }
    }

    /// Whether `payload` matches.
    pub fn matches(&self, payload: &Value) -> bool {
        let mut at = payload;
        for name in &self.path {
            match at {
                Value::Object(fields) => match fields.get(name) {
                    Some(v) => at = v,
                    None => return false,
                },
                _ => return false,
            }
        }
        match at {
            Value::String(s) => *s == self.value,
            Value::Number(n) => n.to_string() == self.value,
            Value::Bool(b) => (if *b { "true" } else { "false" }) == self.value,
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        }
    }
}

/// One stored configuration entry (an agent, a rule, a type, an API key...), kept by
/// [`Store::registry_put`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// What kind of entry it is (`agent`, `rule`, ...): entries of different kinds never meet.
    pub kind: String,
    /// Its id within its kind.
    pub id: String,
    /// The entry, as the service sees it.
    pub body: Value,
    /// 1 when created, one more at every write since.
    pub revision: u64,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// How [`Store::registry_put`] treats an existing entry.
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

/// What [`Store::registry_put`] did.
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

/// The longest registry kind or id, in bytes.
pub const MAX_REGISTRY_KEY: usize = 200;

/// Checks a registry kind and id: not empty, at most [`MAX_REGISTRY_KEY`] bytes, no NUL
/// character. [`StoreError::Invalid`] otherwise.
pub fn check_registry_key(kind: &str, id: &str) -> Result<(), StoreError> {
    check_registry_kind(kind)?;
    check_key_part("id", id)
}

/// Checks a registry kind alone, as [`check_registry_key`] does.
pub fn check_registry_kind(kind: &str) -> Result<(), StoreError> {
    check_key_part("kind", kind)
}

fn check_key_part(what: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() {
        Err(StoreError::Invalid(format!("a registry {what} is empty")))
    } else if s.len() > MAX_REGISTRY_KEY {
        Err(StoreError::Invalid(format!(
            "a registry {what} of {} bytes, at most {MAX_REGISTRY_KEY} are allowed",
            s.len()
        )))
    } else if s.contains('\0') {
        Err(StoreError::Invalid(format!(
            "a registry {what} contains a NUL character"
        )))
    } else {
        Ok(())
    }
}

/// The largest page a query returns.
pub const MAX_PAGE: usize = 1000;

/// `limit` as a page size: 100 when 0, at most [`MAX_PAGE`].
pub fn page_size(limit: usize) -> usize {
    if limit == 0 {
        100
    } else {
        limit.min(MAX_PAGE)
    }
}

/// Where a page ended: the next page starts after it. Opaque to clients (it prints as a
/// number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub u64);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Cursor {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        s.parse()
            .map(Cursor)
            .map_err(|_| StoreError::Invalid(format!("`{s}` is not a cursor")))
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The entries, newest first.
    pub items: Vec<T>,
    /// Pass this as the cursor for the next page; `None` on the last page.
    pub next: Option<Cursor>,
}

/// A stored action and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRow {
    /// The action.
    pub record: ActionRecord,
    /// Its state.
    pub state: ActionState,
    /// The attempt last claimed (0 before the first claim).
    pub attempt: u32,
    /// When it may run (ready) or was scheduled to.
    pub run_at: Timestamp,
    /// The node holding it, while leased.
    pub owner: Option<NodeId>,
    /// When the lease ends, while leased.
    pub lease_until: Option<Timestamp>,
    /// The last failure, as JSON.
    pub last_error: Option<Value>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An action a node now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The action.
    pub record: ActionRecord,
    /// The attempt it holds (the fencing token for settling).
    pub attempt: u32,
}

/// What a write batch did, item by item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutcome {
    /// One per accepted event, in order.
    pub accepted: Vec<AcceptOutcome>,
    /// One per settle, in order: `false` when the lease was lost (expired and claimed again,
    /// or the action is gone) and nothing was changed.
    pub settled: Vec<bool>,
}

/// Writes committed together: all of it, or none of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Events with their actions.
    pub accepts: Vec<AcceptEvent>,
    /// Ends of attempts.
    pub settles: Vec<Settle>,
    /// Answers of requests.
    pub results: Vec<ResultRecord>,
    /// Steps for the audit log. Those of an event this batch refuses as a duplicate are not
    /// written: they are not the path of anything stored.
    pub audit: Vec<AuditRecord>,
}

impl WriteBatch {
    /// A batch accepting `accepts` and nothing else.
    pub fn accepting(accepts: Vec<AcceptEvent>) -> Self {
        Self {
            accepts,
            ..Self::default()
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accepts.is_empty()
            && self.settles.is_empty()
            && self.results.is_empty()
            && self.audit.is_empty()
    }
}

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

/// Durable state for a stateful hub. See the [module documentation](self) for the model.
///
/// Every method reads the time from the store's [`Clock`].
pub trait Store: Send + Sync + 'static {
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Commits a batch in one transaction: events (with dedupe) and their actions, settles
    /// (fenced by attempt), results and audit records. Backends may merge concurrent batches
    /// into one transaction (group commit); each caller still learns its own outcome.
    fn write(&self, batch: WriteBatch) -> StoreFuture<'_, WriteOutcome>;

    /// Claims up to `limit` ready actions whose `run_at` has come, oldest first, for `node`
    /// until `now + lease`. Each claim raises the action's attempt by one.
    fn claim(&self, node: &NodeId, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<Claimed>>;

    /// Extends every lease `node` holds to at least `now + lease`; returns how many it holds.
    fn heartbeat(&self, node: &NodeId, lease: Duration) -> StoreFuture<'_, u64>;

    /// Makes leased actions whose lease has ended ready again; returns how many.
    fn recover_expired(&self) -> StoreFuture<'_, u64>;

    /// One action, whatever its state.
    fn action(&self, id: ActionId) -> StoreFuture<'_, Option<ActionRow>>;

    /// Dead actions, newest first.
    fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StoreFuture<'_, Page<ActionRow>>;

    /// Makes a dead action ready again (same id, same attempt count); `false` if it is not dead.
    fn redrive(&self, id: ActionId) -> StoreFuture<'_, bool>;

    /// The unexpired results of a request, in the order they were written.
    fn results(&self, request: RequestId) -> StoreFuture<'_, Vec<ResultRecord>>;

    /// A stored event.
    fn event(&self, id: EventId) -> StoreFuture<'_, Option<EventRecord>>;

    /// Audit entries matching `query`, newest first.
    fn audit(&self, query: AuditQuery) -> StoreFuture<'_, Page<AuditRecord>>;

    /// Stored events matching `query`, newest first (by when they were written), a page at a
    /// time. [`StoreError::Invalid`] for a query [`EventQuery::validate`] refuses.
    fn events(&self, query: EventQuery) -> StoreFuture<'_, Page<EventRecord>>;

    /// The registry entry `id` of `kind`.
    fn registry_get(&self, kind: &str, id: &str) -> StoreFuture<'_, Option<RegistryEntry>>;

    /// Every registry entry of `kind`, ordered by id (byte order).
    fn registry_list(&self, kind: &str) -> StoreFuture<'_, Vec<RegistryEntry>>;

    /// Writes the registry entry `id` of `kind` as `mode` says. `audit` is written in the same
    /// transaction, and only when the entry is written (not on `Exists` or `Missing`). The
    /// entry's revision is 1 when it is created and one more at each write after that.
    /// [`StoreError::Invalid`] for a kind or id [`check_registry_key`] refuses.
    fn registry_put(
        &self,
        kind: &str,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, RegistryOutcome>;

    /// Deletes the registry entry `id` of `kind`; `false` when there was none. `audit` is
    /// written in the same transaction, and only when an entry was deleted. An entry created
    /// again later starts again at revision 1.
    fn registry_delete(
        &self,
        kind: &str,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, bool>;

    /// Deletes expired results and dedupe keys, and audit entries, events and finished
    /// actions older than the retention allows. The registry is never pruned.
    fn prune(&self, retention: &Retention) -> StoreFuture<'_, PruneReport>;

    /// Queue depths and sizes.
    fn stats(&self) -> StoreFuture<'_, StoreStats>;

    /// Checks the store's integrity.
    fn check(&self) -> StoreFuture<'_, CheckReport>;

    /// A hint that ready actions may be waiting, for example after another node released or
    /// redrove some (PostgreSQL's LISTEN/NOTIFY). Only a hint: the hub also claims on a timer,
    /// so a missed notification only delays work.
    fn wake_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// Builds the audit record of a telemetry step.
pub fn audit_record(step: &crate::TelemetryEvent) -> AuditRecord {
    let event = step.event();
    let action = step.action();
    let agent = action
        .map(|a| a.agent.clone())
        .or_else(|| step_agent(&step.kind));
    AuditRecord {
        seq: 0,
        at: step.at,
        step: step.name().to_owned(),
        event_id: event.map(|e| e.id),
        correlation_id: event.map(|e| e.correlation_id),
        request_id: event.and_then(|e| e.request),
        action_id: action.map(|a| a.id),
        event_type: event.map(|e| e.event_type.clone()),
        user: event.map(|e| e.principal.user.clone()),
        tenant: event.and_then(|e| e.principal.tenant.clone()),
        agent,
        detail: compact(step),
    }
}

/// The step as JSON, less what the record's columns already hold (time, step name, the ids,
/// the event's type, user and tenant, the agent): about half the bytes, and the audit log's
/// writes are most of a stateful hub's cost. The `accepted` step keeps what else the event
/// header has (groups, dedupe key, origin); action steps keep the attempt, action type, rule
/// and provider.
fn compact(step: &crate::TelemetryEvent) -> Value {
    let mut v = serde_json::to_value(step).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("at");
        obj.remove("kind");
        if let Some(event) = obj.get_mut("event").and_then(Value::as_object_mut) {
            for column in ["id", "type", "correlation_id", "request_id"] {
                event.remove(column);
            }
            if let Some(p) = event.get_mut("principal").and_then(Value::as_object_mut) {
                p.remove("user");
                p.remove("tenant");
                if p.is_empty() {
                    event.remove("principal");
                }
            }
            if event.is_empty() {
                obj.remove("event");
            }
        }
        if let Some(action) = obj.get_mut("action").and_then(Value::as_object_mut) {
            for column in ["event", "id", "agent"] {
                action.remove(column);
            }
        }
        if obj.get("agent").and_then(Value::as_str).is_some() {
            obj.remove("agent");
        }
    }
    v
}

fn step_agent(kind: &crate::TelemetryKind) -> Option<AgentId> {
    use crate::TelemetryKind::*;
    match kind {
        RuleMatched { agent, .. } | RouteSuppressed { agent, .. } => Some(agent.clone()),
        _ => None,
    }
}
