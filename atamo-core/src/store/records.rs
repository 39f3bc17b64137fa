//! What a store keeps: events, actions and their state, request results and audit entries.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// The retry policy an action carries; a plain value type (the hub's failure handling uses it
// too).
use crate::ids::{
    ActionId, ActionType, AgentId, CorrelationId, EventId, EventType, ProviderId, RequestId,
    RuleId, TenantId, UserId,
};
use crate::message::{Origin, Principal, Timestamp};
use crate::policy::RetryPolicy;

/// Whether a message survives a crash of a stateful hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
