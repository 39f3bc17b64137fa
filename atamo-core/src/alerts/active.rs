//! The alerts raised and not yet resolved, as the monitor's task and its handle share them.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use tokio::time::Instant;

use crate::ids::AgentId;
use crate::telemetry::AlertKind;

/// An alert that is raised and not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// Which alert: [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate), [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95), [`AlertKind::ThroughputLow`](crate::telemetry::AlertKind::ThroughputLow) or [`AlertKind::QueueDepth`](crate::telemetry::AlertKind::QueueDepth).
    pub alert: AlertKind,
    /// The agent it is about.
    pub agent: AgentId,
    /// When it was raised.
    pub since: Instant,
    /// The value that raised it (units as in the alert event's payload: a fraction,
    /// milliseconds, calls per second or queued actions).
    pub value: f64,
    /// The threshold it crossed, in the same unit.
    pub threshold: f64,
    /// The explanation it was raised with.
    pub detail: String,
}

/// What the monitor's task and its handle share.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) active: Mutex<Vec<ActiveAlert>>,
    pub(super) missed: AtomicU64,
    pub(super) dropped: AtomicU64,
}
