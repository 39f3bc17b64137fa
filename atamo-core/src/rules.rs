//! Rule providers: what turns an event and its user into actions.
//!
//! The hub asks every provider registered for an event's type (or for all types) to
//! [`evaluate`](RuleProvider::evaluate) the event. A provider pushes one [`Proposal`] per rule
//! that matched: an action to send, or the typed error that stopped the rule. The hub merges
//! identical proposals, drops those that would send an agent its own follow-up, checks the rest
//! against the agent registry, and reports each step in telemetry.
//!
//! The default provider, which links (event type, user | group | tenant | anyone) to (agent,
//! action type, template), lives in the `atamo-config` crate.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::ids::{ActionType, AgentId, EventType, ProviderId, RuleId};
use crate::message::{Event, FieldPath, Principal};
use crate::policy::RetryPolicy;

/// Decides which actions an event causes.
///
/// `evaluate` runs on the hub's routing path for every event of the types the provider is
/// registered for, so it must be quick and must not block: keep what it needs in memory (swap in
/// new data atomically, for example with `arc-swap`) rather than doing I/O per event. A panic in
/// `evaluate` is caught and reported as [`RuleError::ProviderPanicked`].
pub trait RuleProvider: Send + Sync + 'static {
    /// Pushes onto `out` one proposal per rule that matched `event` for `principal`.
    fn evaluate(&self, event: &Event, principal: &Principal, out: &mut Vec<Proposal>);

    /// The rules the provider holds, for listing. Providers whose rules are not enumerable
    /// return nothing.
    fn rules(&self) -> Vec<RuleInfo> {
        Vec::new()
    }
}

/// A closure is a provider: `|event, principal, out| out.push(...)`.
impl<F> RuleProvider for F
where
    F: Fn(&Event, &Principal, &mut Vec<Proposal>) + Send + Sync + 'static,
{
    fn evaluate(&self, event: &Event, principal: &Principal, out: &mut Vec<Proposal>) {
        self(event, principal, out)
    }
}

/// One matched rule's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The rule that matched.
    pub rule: RuleId,
    /// The action it wants sent, or why it could not build one.
    pub outcome: Result<PlannedAction, RuleError>,
}

impl Proposal {
    /// A rule that produced an action.
    pub fn action(rule: RuleId, action: PlannedAction) -> Self {
        Self {
            rule,
            outcome: Ok(action),
        }
    }

    /// A rule that matched but failed.
    pub fn failed(rule: RuleId, error: RuleError) -> Self {
        Self {
            rule,
            outcome: Err(error),
        }
    }
}

/// An action a rule wants sent, before the hub gives it an id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedAction {
    /// The agent to send it to.
    pub agent: AgentId,
    /// What the agent should do.
    pub action_type: ActionType,
    /// The payload, usually built from a template.
    pub payload: Arc<Value>,
    /// Whether identical requests may share one call of the agent.
    pub sharing: Sharing,
    /// How the action is tried again when it fails (overrides the action type's and the
    /// agent's policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Where the action goes while its agent's circuit is open or the agent is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<AgentId>,
    /// Whether the action is kept in the store of a stateful hub (overrides the event type's
    /// choice and the hub's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<crate::store::Durability>,
}

/// Who may share one agent call when identical requests (same agent, action type and payload)
/// are in flight at the same time: the call is made once and its answers go to every
/// requester, each under its own request id. Events are never shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ShareScope {
    /// Every request gets its own call.
    Off,
    /// Requests of the same user (in the same tenant) share. The default: no data ever crosses
    /// from one user to another.
    #[default]
    User,
    /// Requests of users of the same tenant share (users with no tenant form one group).
    Tenant,
    /// Any identical requests share.
    Global,
}

/// How a rule's actions may be shared between identical requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Sharing {
    /// Who may share a call in flight.
    pub scope: ShareScope,
    /// Keep a successful call's answers this long, and answer identical requests (in the same
    /// scope) from them without calling the agent. None: no result cache.
    #[serde(skip_serializing_if = "Option::is_none", rename = "cache_ttl_ms")]
    pub result_ttl: Option<crate::bounded::CacheTtl>,
}

impl PlannedAction {
    /// An action for `agent`.
    pub fn new(
        agent: impl Into<AgentId>,
        action_type: impl Into<ActionType>,
        payload: Value,
    ) -> Self {
        Self {
            agent: agent.into(),
            action_type: action_type.into(),
            payload: Arc::new(payload),
            sharing: Sharing::default(),
            retry: None,
            fallback: None,
            durability: None,
        }
    }

    /// Chooses whether the action is kept in the store of a stateful hub: `Durable` survives
    /// a crash, `Memory` is faster and is lost with the process.
    #[must_use]
    pub fn durability(mut self, durability: crate::store::Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// Sets how the action is tried again when it fails.
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Names the agent the action goes to while its own agent is unavailable (circuit open
    /// or offline). The fallback must handle the same action type.
    #[must_use]
    pub fn fallback(mut self, agent: impl Into<AgentId>) -> Self {
        self.fallback = Some(agent.into());
        self
    }

    /// Sets how the action may be shared between identical requests.
    #[must_use]
    pub fn shared(mut self, sharing: Sharing) -> Self {
        self.sharing = sharing;
        self
    }
}

/// Why a matched rule produced no action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleError {
    /// The rule's template refers to a value the event does not have.
    #[error("rule `{rule}`: template field `{field}` is missing from the event")]
    MissingField {
        /// The rule.
        rule: RuleId,
        /// The field reference that could not be filled, e.g. `payload.customer.id`.
        field: String,
    },
    /// The rule names an agent that is not registered.
    #[error("rule `{rule}`: agent `{agent}` is not registered")]
    UnknownAgent {
        /// The rule.
        rule: RuleId,
        /// The agent it named.
        agent: AgentId,
    },
    /// The agent does not handle the action type the rule asks for.
    #[error("rule `{rule}`: agent `{agent}` does not handle action type `{action_type}`")]
    UnsupportedAction {
        /// The rule.
        rule: RuleId,
        /// The agent.
        agent: AgentId,
        /// The action type.
        action_type: ActionType,
    },
    /// The built action lacks fields the agent's action template requires.
    #[error("rule `{rule}`: action for agent `{agent}` lacks required fields {}", list(.missing))]
    ActionTemplate {
        /// The rule.
        rule: RuleId,
        /// The agent.
        agent: AgentId,
        /// Every missing field.
        missing: Vec<FieldPath>,
    },
    /// A provider's own failure.
    #[error("rule `{rule}`: {message}")]
    Provider {
        /// The rule.
        rule: RuleId,
        /// What went wrong.
        message: String,
    },
    /// The provider panicked while evaluating the event.
    #[error("provider `{provider}` panicked: {message}")]
    ProviderPanicked {
        /// The provider.
        provider: ProviderId,
        /// The panic message, when it was text.
        message: String,
    },
}

fn list(fields: &[FieldPath]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which event types a provider is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderScope {
    /// Every event.
    AllEvents,
    /// Only events of these types.
    EventTypes(Vec<EventType>),
}

/// A rule as a provider lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    /// The rule's id.
    pub id: RuleId,
    /// The event type it applies to, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    /// The rule as the provider describes it.
    pub definition: Value,
}
