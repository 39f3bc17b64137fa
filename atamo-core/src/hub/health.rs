//! The hub's load at a point in time, as [`Control::health`](crate::Control::health) reports it.

use serde::Serialize;

use crate::ids::AgentId;

/// How full a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Items waiting.
    pub len: usize,
    /// The most that can wait.
    pub capacity: usize,
}

/// One agent's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// The agent.
    pub id: AgentId,
    /// Its queue of dispatched actions.
    pub queue: QueueDepth,
    /// Calls running now.
    pub in_flight: usize,
    /// Calls that succeeded since registration.
    pub succeeded: u64,
    /// Calls that failed since registration.
    pub failed: u64,
}

/// A point-in-time view of the hub's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// Whether the hub takes new events.
    pub accepting: bool,
    /// Events accepted but not yet routed.
    pub ingress: QueueDepth,
    /// Every agent, by id.
    pub agents: Vec<AgentHealth>,
    /// Calls running now, over all agents.
    pub in_flight_actions: usize,
    /// Actions queued for agents, over all agents.
    pub queued_actions: usize,
    /// Telemetry subscribers connected.
    pub telemetry_subscribers: usize,
    /// Requests still running.
    pub requests_running: usize,
    /// Finished requests whose answers are kept for their clients.
    pub requests_kept: u64,
}
