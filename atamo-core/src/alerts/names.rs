//! The names alert events are published under, and the monitor's fixed bounds.

/// The event type alerts are published as.
pub const ALERT_EVENT_TYPE: &str = "atamo.alert";
/// The user alert events are published for.
pub const ALERT_USER: &str = "atamo";
/// The group of the user alert events are published for.
pub const ALERT_GROUP: &str = "atamo.controller";

/// The most call durations kept per agent for [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95).
pub const LATENCY_SAMPLES: usize = 1024;
