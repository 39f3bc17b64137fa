//! How an agent is doing: its [`AgentState`] and [`AgentStatus`], as the registry, telemetry
//! and the controller see them.

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
