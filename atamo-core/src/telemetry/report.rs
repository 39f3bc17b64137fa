//! What the hub reports when it stops.

use std::time::Duration;

use serde::Serialize;

/// What happened while the hub shut down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Events that were already accepted when shutdown began and were routed during it.
    pub events_drained: u64,
    /// Actions given up on because the deadline passed (each also reported as an
    /// `action_abandoned` telemetry event).
    pub actions_abandoned: u64,
    /// Whether the deadline passed before all work finished.
    pub deadline_passed: bool,
    /// How long the shutdown took.
    #[serde(
        rename = "elapsed_ms",
        serialize_with = "crate::serde_ms::ser_duration_ms"
    )]
    pub elapsed: Duration,
}
