//! How the hub's parts are doing: each agent's [`AgentState`] and [`AgentStatus`], and each
//! long-lived component's [`ComponentState`] (the router, the agents' workers, the store and
//! its writer, the node's tasks), as the registry, telemetry, the controller and the service's
//! health endpoints see them.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;
use crate::message::Timestamp;

/// How an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Not called yet.
    Unknown,
    /// Working.
    Online,
    /// Working badly, or being probed after an outage.
    Degraded,
    /// Not taking calls: its circuit is open, or an operator took it offline.
    Offline,
}

/// An agent's status, with why and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    /// The agent.
    pub agent: AgentId,
    /// Its state.
    pub state: AgentState,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
    /// Whether an operator set it; a manual status wins over automatic changes until cleared.
    pub manual: bool,
    /// Who to tell about it, from the agent's registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The agent's version, from its registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// How a long-lived component of the hub is doing. The hub is ready (and `/readyz` answers
/// 200) only while every [essential](ComponentStatus::essential) component is
/// [`Ready`](Self::Ready) or [`Degraded`](Self::Degraded); a component that is not essential
/// degrades the hub's work (an agent's calls, the retention) without stopping its intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ComponentState {
    /// Not ready yet.
    Starting,
    /// Working.
    Ready,
    /// Working, with a problem worth knowing (a retried write, a restart).
    Degraded {
        /// What is wrong.
        reason: String,
    },
    /// Not working: what depends on it cannot be kept.
    Failed {
        /// What is wrong.
        reason: String,
    },
}

impl ComponentState {
    /// Whether the component does its work (ready, or degraded but working).
    pub fn is_working(&self) -> bool {
        matches!(self, Self::Ready | Self::Degraded { .. })
    }

    /// Why it is not ready, if it is not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Starting => Some("starting"),
            Self::Ready => None,
            Self::Degraded { reason } | Self::Failed { reason } => Some(reason),
        }
    }
}

/// One long-lived component of the hub, as [`Control::components`](crate::Control::components)
/// lists it: the router, each agent's worker, a stateful hub's committer, settle writer,
/// claimer, heartbeat, pruner and store, the request stores' timers, the event providers and
/// an alert monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentStatus {
    /// Its name: `router`, `agent_worker:<agent>`, `settle_writer`, `event_provider:<name>`, ...
    pub name: String,
    /// How it is doing.
    #[serde(flatten)]
    pub state: ComponentState,
    /// Since when it is in that state.
    pub since: Timestamp,
    /// How many times it was restarted after a panic.
    pub restarts: u64,
    /// Whether the hub cannot accept and keep work without it: when it is not working,
    /// publishing is refused and the hub is not ready.
    pub essential: bool,
}

/// Why the hub cannot accept and keep work: the component, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReady {
    /// The component (`hub` while it shuts down).
    pub component: String,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.component, self.reason)
    }
}

/// Whether the hub can accept work and keep it, as
/// [`Control::readiness`](crate::Control::readiness) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// True when it can: every essential component works and the hub is not shutting down.
    pub ready: bool,
    /// Why it cannot, one entry per component; empty when ready.
    pub reasons: Vec<NotReady>,
}

impl Readiness {
    /// Readiness from the reasons against it.
    pub fn from_reasons(reasons: Vec<NotReady>) -> Self {
        Self {
            ready: reasons.is_empty(),
            reasons,
        }
    }

    /// The reasons in one line (`store: the disk is full; router: ...`), empty when ready.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}
