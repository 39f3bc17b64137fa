use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::alert::AlertKind;
use super::report::ShutdownReport;
use crate::ids::{
    ActionId, ActionType, AgentId, CorrelationId, EventId, ProviderId, RequestId, RuleId,
};
use crate::message::request::RequestState;
use crate::message::{ActionMeta, EventMeta, Principal, Problem, Timestamp};
use crate::outcome::AgentError;
use crate::rules::RuleError;

/// One step in the life of a message (or of the hub), with when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryEvent {
    /// When the step happened.
    pub at: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub kind: TelemetryKind,
}

/// What happened. Message steps carry the event (ids, type, principal) or the action (which
/// carries its event) they concern.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TelemetryKind {
    /// The hub took the event in.
    Accepted {
        /// The event.
        event: Arc<EventMeta>,
    },
    /// The hub refused the event; every problem is listed.
    Rejected {
        /// The event.
        event: Arc<EventMeta>,
        /// Everything wrong with it.
        problems: Arc<[Problem]>,
    },
    /// A rule matched the event and proposed an action.
    RuleMatched {
        /// The event.
        event: Arc<EventMeta>,
        /// The provider holding the rule.
        provider: ProviderId,
        /// The rule.
        rule: RuleId,
        /// The agent it names.
        agent: AgentId,
        /// The action type it asks for.
        action_type: ActionType,
    },
    /// A rule matched but produced no action.
    RuleFailed {
        /// The event.
        event: Arc<EventMeta>,
        /// The provider.
        provider: ProviderId,
        /// Why.
        error: RuleError,
    },
    /// No rule sent the event anywhere.
    NoRoute {
        /// The event.
        event: Arc<EventMeta>,
    },
    /// A proposal was dropped on purpose.
    RouteSuppressed {
        /// The event.
        event: Arc<EventMeta>,
        /// The provider.
        provider: ProviderId,
        /// The rule.
        rule: RuleId,
        /// The agent it named.
        agent: AgentId,
        /// Why it was dropped.
        reason: SuppressReason,
    },
    /// A proposal was identical to one already dispatched for this event, so it shares that
    /// action instead of causing a second call.
    ActionMerged {
        /// The event.
        event: Arc<EventMeta>,
        /// The provider.
        provider: ProviderId,
        /// The rule.
        rule: RuleId,
        /// The action it was merged into.
        into: ActionId,
    },
    /// A request's action joined an identical call already in flight instead of calling the
    /// agent again; it receives that call's answers.
    ActionCoalesced {
        /// The action that joined.
        action: Arc<ActionMeta>,
        /// The action whose call it shares.
        into: ActionId,
    },
    /// A request's action was answered from the answers of an identical recent call, without
    /// calling the agent.
    ActionServedFromCache {
        /// The action.
        action: Arc<ActionMeta>,
        /// The action whose answers were reused.
        from: ActionId,
    },
    /// An action was queued for its agent.
    ActionDispatched {
        /// The action.
        action: Arc<ActionMeta>,
    },
    /// The agent finished the action.
    ActionSucceeded {
        /// The action.
        action: Arc<ActionMeta>,
        /// How long the call took.
        #[serde(
            rename = "elapsed_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        elapsed: Duration,
    },
    /// The agent failed the action.
    ActionFailed {
        /// The action.
        action: Arc<ActionMeta>,
        /// Why.
        error: AgentError,
        /// How long the call took.
        #[serde(
            rename = "elapsed_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        elapsed: Duration,
    },
    /// The action failed and will be tried again.
    ActionRetrying {
        /// The attempt that failed.
        action: Arc<ActionMeta>,
        /// Why it failed.
        error: AgentError,
        /// The number of the next attempt.
        next_attempt: u32,
        /// The pause before it.
        #[serde(
            rename = "after_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        after: Duration,
        /// How long the failed call took.
        #[serde(
            rename = "elapsed_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        elapsed: Duration,
    },
    /// The action failed for good and was put in the dead-letter store.
    ActionDeadLettered {
        /// Its last attempt.
        action: Arc<ActionMeta>,
        /// The last error.
        error: AgentError,
        /// Attempts made.
        attempts: u32,
    },
    /// A dead letter was sent to its agent again.
    ActionRedriven {
        /// The action, as sent again (attempt 1).
        action: Arc<ActionMeta>,
    },
    /// The action went to a fallback agent because its own was unavailable.
    ActionRerouted {
        /// The action, addressed to the fallback.
        action: Arc<ActionMeta>,
        /// The agent it was meant for.
        from: AgentId,
        /// Why.
        reason: String,
    },
    /// An agent's health probe ran.
    AgentHealthChecked {
        /// The agent.
        agent: AgentId,
        /// Its answer, or why it failed.
        #[serde(serialize_with = "ser_probe")]
        outcome: Result<serde_json::Value, AgentError>,
        /// How long it took.
        #[serde(
            rename = "elapsed_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        elapsed: Duration,
    },
    /// The controller sent an agent a control message, and the agent answered.
    AgentControlled {
        /// The agent.
        agent: AgentId,
        /// The message.
        message: serde_json::Value,
        /// The agent's acknowledgement, or why it failed.
        #[serde(serialize_with = "ser_probe")]
        outcome: Result<serde_json::Value, AgentError>,
    },
    /// An agent's status changed.
    AgentStatusChanged {
        /// The state before.
        from: crate::status::AgentState,
        /// The status now.
        status: crate::status::AgentStatus,
    },
    /// The hub gave up on an action without finishing it.
    ActionAbandoned {
        /// The action.
        action: Arc<ActionMeta>,
        /// Why.
        reason: AbandonReason,
    },
    /// A follow-up event published by an agent could not be published.
    FollowUpFailed {
        /// The action whose agent published it.
        action: Arc<ActionMeta>,
        /// Why.
        error: String,
    },
    /// An agent answered a request.
    AnswerReady {
        /// The event carrying the request.
        event: Arc<EventMeta>,
        /// The request.
        request_id: RequestId,
        /// The agent.
        agent: AgentId,
        /// The answer's number among this agent's answers.
        seq: u64,
        /// Whether it is the agent's last answer.
        last: bool,
    },
    /// A request ended.
    RequestFinished {
        /// The event carrying the request.
        event: Arc<EventMeta>,
        /// The request.
        request_id: RequestId,
        /// How it ended.
        state: RequestState,
    },
    /// A finished request's answers were dropped from the keep-alive cache.
    RequestExpired {
        /// The event carrying the request.
        event: Arc<EventMeta>,
        /// The request.
        request_id: RequestId,
        /// Why.
        reason: ExpiryReason,
    },
    /// An agent was registered.
    AgentRegistered {
        /// The agent.
        agent: AgentId,
    },
    /// An agent was removed; actions already queued for it are still delivered.
    AgentUnregistered {
        /// The agent.
        agent: AgentId,
    },
    /// A rule provider was registered.
    ProviderRegistered {
        /// The provider.
        provider: ProviderId,
    },
    /// A rule provider was removed.
    ProviderUnregistered {
        /// The provider.
        provider: ProviderId,
    },
    /// A native plugin library was loaded (libraries are never unloaded).
    PluginLoaded {
        /// The plugin's declared name.
        plugin: String,
        /// The plugin's own version.
        version: String,
        /// The ABI version it was built against, `major.minor`.
        abi: String,
        /// The file loaded.
        path: String,
        /// The SHA-256 of the bytes loaded, hex.
        sha256: String,
    },
    /// Loading a native plugin library failed.
    PluginLoadFailed {
        /// The file.
        path: String,
        /// Why, with the fix.
        error: String,
    },
    /// An agent's process changed state (started, exited, restarting, stopped, offline).
    AgentProcess {
        /// The agent.
        agent: AgentId,
        /// What happened.
        change: ProcessChange,
    },
    /// An alert was raised or resolved.
    Alert {
        /// What it is about.
        alert: AlertKind,
        /// The agent concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<AgentId>,
        /// True when raised, false when resolved.
        raised: bool,
        /// A readable explanation.
        detail: String,
    },
    /// The hub stopped taking events in and is finishing its work.
    ShutdownStarted {
        /// How long in-flight actions may take.
        #[serde(
            rename = "grace_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        grace: Duration,
    },
    /// The hub has stopped.
    Stopped {
        /// What happened during the shutdown.
        report: ShutdownReport,
    },
}

/// A change in the life of an agent's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProcessChange {
    /// The process started and passed its handshake.
    Started {
        /// Its process id.
        pid: u32,
        /// How many times it has been restarted since it was registered.
        restarts: u32,
    },
    /// The process ended or was killed.
    Exited {
        /// Why, as far as the supervisor knows (exit status, failed ping, bad output).
        reason: String,
    },
    /// The supervisor will start the process again after a pause.
    Restarting {
        /// The number of the attempt about to be made.
        attempt: u32,
        /// The pause before it.
        #[serde(
            rename = "after_ms",
            serialize_with = "crate::serde_ms::ser_duration_ms"
        )]
        after: Duration,
    },
    /// The process was stopped on purpose (agent removed, hub stopping).
    Stopped {
        /// How it ended: `goodbye`, `sigterm` or `sigkill`.
        how: String,
    },
    /// Restarts failed too often: the agent is offline until registered again.
    Offline {
        /// Why.
        reason: String,
    },
}

fn ser_probe<S: serde::Serializer>(
    outcome: &Result<serde_json::Value, AgentError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(1))?;
    match outcome {
        Ok(answer) => map.serialize_entry("ok", answer)?,
        Err(error) => map.serialize_entry("error", error)?,
    }
    map.end()
}

/// Why a proposal was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SuppressReason {
    /// The event is a follow-up published by this very agent.
    OwnFollowUp,
}

/// Why a request's answers are no longer kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExpiryReason {
    /// Its keep-alive time passed.
    KeepAlive,
    /// The keep-alive cache reached its memory bound and evicted it.
    Memory,
}

/// Why an action was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AbandonReason {
    /// The hub's shutdown deadline passed before the action finished.
    ShutdownDeadline,
}

impl TelemetryEvent {
    /// A short name of the step, such as `accepted` or `action_succeeded`.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The event this step concerns, if it concerns one.
    pub fn event(&self) -> Option<&Arc<EventMeta>> {
        self.kind.event()
    }

    /// The id of the event this step concerns.
    pub fn event_id(&self) -> Option<EventId> {
        self.event().map(|e| e.id)
    }

    /// The correlation id of the event this step concerns.
    pub fn correlation_id(&self) -> Option<CorrelationId> {
        self.event().map(|e| e.correlation_id)
    }

    /// The principal of the event this step concerns.
    pub fn principal(&self) -> Option<&Principal> {
        self.event().map(|e| &e.principal)
    }

    /// The action this step concerns, if it concerns one.
    pub fn action(&self) -> Option<&Arc<ActionMeta>> {
        use TelemetryKind::*;
        match &self.kind {
            ActionDispatched { action }
            | ActionCoalesced { action, .. }
            | ActionServedFromCache { action, .. }
            | ActionSucceeded { action, .. }
            | ActionFailed { action, .. }
            | ActionRetrying { action, .. }
            | ActionDeadLettered { action, .. }
            | ActionRedriven { action }
            | ActionRerouted { action, .. }
            | ActionAbandoned { action, .. }
            | FollowUpFailed { action, .. } => Some(action),
            _ => None,
        }
    }
}

impl TelemetryKind {
    /// A short name of the step.
    pub fn name(&self) -> &'static str {
        use TelemetryKind::*;
        match self {
            Accepted { .. } => "accepted",
            Rejected { .. } => "rejected",
            RuleMatched { .. } => "rule_matched",
            RuleFailed { .. } => "rule_failed",
            NoRoute { .. } => "no_route",
            RouteSuppressed { .. } => "route_suppressed",
            ActionMerged { .. } => "action_merged",
            ActionDispatched { .. } => "action_dispatched",
            ActionCoalesced { .. } => "action_coalesced",
            ActionServedFromCache { .. } => "action_served_from_cache",
            ActionSucceeded { .. } => "action_succeeded",
            ActionFailed { .. } => "action_failed",
            ActionAbandoned { .. } => "action_abandoned",
            ActionRetrying { .. } => "action_retrying",
            ActionDeadLettered { .. } => "action_dead_lettered",
            ActionRedriven { .. } => "action_redriven",
            ActionRerouted { .. } => "action_rerouted",
            AgentStatusChanged { .. } => "agent_status_changed",
            AgentHealthChecked { .. } => "agent_health_checked",
            AgentControlled { .. } => "agent_controlled",
            AnswerReady { .. } => "answer_ready",
            PluginLoaded { .. } => "plugin_loaded",
            PluginLoadFailed { .. } => "plugin_load_failed",
            AgentProcess { .. } => "agent_process",
            Alert { .. } => "alert",
            RequestFinished { .. } => "request_finished",
            RequestExpired { .. } => "request_expired",
            FollowUpFailed { .. } => "follow_up_failed",
            AgentRegistered { .. } => "agent_registered",
            AgentUnregistered { .. } => "agent_unregistered",
            ProviderRegistered { .. } => "provider_registered",
            ProviderUnregistered { .. } => "provider_unregistered",
            ShutdownStarted { .. } => "shutdown_started",
            Stopped { .. } => "stopped",
        }
    }

    /// The event this step concerns, if any.
    pub fn event(&self) -> Option<&Arc<EventMeta>> {
        use TelemetryKind::*;
        match self {
            Accepted { event }
            | Rejected { event, .. }
            | RuleMatched { event, .. }
            | RuleFailed { event, .. }
            | NoRoute { event }
            | RouteSuppressed { event, .. }
            | ActionMerged { event, .. }
            | AnswerReady { event, .. }
            | RequestFinished { event, .. }
            | RequestExpired { event, .. } => Some(event),
            ActionDispatched { action }
            | ActionCoalesced { action, .. }
            | ActionServedFromCache { action, .. }
            | ActionSucceeded { action, .. }
            | ActionFailed { action, .. }
            | ActionRetrying { action, .. }
            | ActionDeadLettered { action, .. }
            | ActionRedriven { action }
            | ActionRerouted { action, .. }
            | ActionAbandoned { action, .. }
            | FollowUpFailed { action, .. } => Some(&action.event),
            _ => None,
        }
    }
}
