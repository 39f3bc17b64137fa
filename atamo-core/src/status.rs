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

/// How a long-lived component of the hub is doing. `/readyz` is ready only when every
/// component is [`Ready`](Self::Ready) or [`Degraded`](Self::Degraded).
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
