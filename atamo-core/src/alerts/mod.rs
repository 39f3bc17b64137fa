//! Alerts per agent, raised and resolved from telemetry and health.
//!
//! An [`AlertMonitor`] watches a hub and raises an alert for an agent when one of four
//! conditions holds, and resolves it when the condition is over:
//!
//! | alert | condition | default |
//! |---|---|---|
//! | [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) | share of failed calls in the window above `max_rate`, with at least `min_calls` calls in the window | **on**: 5 % over 5 minutes, at least 20 calls |
//! | [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95) | 95th percentile of call durations in the window above `max_p95`, with at least `min_calls` calls | off |
//! | [`AlertKind::ThroughputLow`](crate::telemetry::AlertKind::ThroughputLow) | calls per second over the window below `min_per_sec` | off |
//! | [`AlertKind::QueueDepth`](crate::telemetry::AlertKind::QueueDepth) | the agent's queue longer than `max_len` for at least `for_at_least` | off |
//!
//! Thresholds are set for all agents ([`AlertConfig::default`]) and may be replaced for single
//! agents ([`AlertConfig::per_agent`]). An agent listed in `per_agent` uses exactly the
//! [`AgentThresholds`] given there: kinds left out of it are off for that agent (start from a
//! clone of the default to change only one).
//!
//! # Inputs
//! - Telemetry from [`Control::subscribe`](crate::Control::subscribe): every `action_succeeded` and `action_failed`
//!   counts as one call of `action.agent`, with its `elapsed` time. A monitor that falls behind
//!   counts the steps it missed ([`AlertMonitor::missed_telemetry`]) and logs a warning; those
//!   calls are simply not in its windows.
//! - [`Control::health`](crate::Control::health), sampled every [`AlertConfig::sample_interval`] (default 1 s), for
//!   queue lengths and for the list of agents.
//!
//! # Outputs
//! Every raise and every resolve is reported twice:
//! - as telemetry: [`TelemetryKind::Alert`](crate::TelemetryKind::Alert) with `alert` one of the kinds above, `agent`,
//!   `raised` and a readable `detail`;
//! - as an event of type [`ALERT_EVENT_TYPE`] (`atamo.alert`, registered by
//!   [`AlertMonitor::start`] if it is not yet), published for user [`ALERT_USER`] in group
//!   [`ALERT_GROUP`] with the payload
//!   `{"alert", "agent", "raised", "detail", "value", "threshold"}`, so that rules can route
//!   alerts like any other event (for example to the agent's owner). Values are fractions for
//!   `error_rate` (0.05 is 5 %), milliseconds for `latency_p95`, calls per second for
//!   `throughput_low` and queued actions for `queue_depth`.
//!
//! Alert events are handed to the hub without waiting ([`HubHandle::try_publish`](crate::HubHandle::try_publish)): when the
//! hub's intake is full they wait, in order, in a bounded outbox (1024 events; beyond that the
//! oldest is dropped and logged) and are retried shortly after.
//!
//! # When alerts change
//! Conditions are evaluated for the agents whose calls arrive in each telemetry batch, and
//! for every agent on each sample tick, so windows slide and alerts resolve without traffic,
//! and `throughput_low` fires with no traffic at all.
//!
//! A raised alert is not raised again until it has been resolved. Hysteresis: an alert is
//! raised when its value crosses the threshold (above it; below it for throughput) and the
//! window holds enough calls; it is resolved only when the value is back at or under the
//! threshold (at or above it for throughput), or, for `error_rate` and `latency_p95`, when the
//! window holds no call at all. A window with some calls but fewer than `min_calls` neither
//! raises nor resolves. `queue_depth` is resolved as soon as a sample finds the queue at or
//! under `max_len`.
//!
//! `throughput_low` does not fire for an agent before one whole window has passed since the
//! agent was first seen: since the monitor started for agents registered then, otherwise
//! since the agent's registration or first call, whichever the monitor saw first.
//!
//! # Windows and memory
//! Time is [`tokio::time::Instant`], so a paused test clock drives the monitor. Windows are
//! whole seconds (a window is rounded up to whole seconds, at least 1 s):
//! - calls and failures are counted in one bucket per second, holding only seconds that had
//!   calls, at most one more than the longest window of the agent's `error_rate` and
//!   `throughput_low` thresholds. `error_rate` covers the current second and the `window - 1`
//!   seconds before it; `throughput_low` covers the last `window` whole seconds (it lags by
//!   up to one second, and is exact in calls per second);
//! - `latency_p95` keeps the durations of the most recent calls inside its window, at most
//!   [`LATENCY_SAMPLES`] of them: under heavier traffic the percentile is that of the last
//!   [`LATENCY_SAMPLES`] calls. The 95th percentile is by nearest rank.
//!
//! Nothing is kept for a kind that is off. Agents that are unregistered are forgotten (their
//! active alerts are resolved).
//!
//! # Stopping
//! The monitor runs as one task on the hub's runtime until [`AlertMonitor::stop`] is called
//! or the monitor is dropped, or the hub shuts down (telemetry `shutdown_started` or
//! `stopped`, a closed subscription, or a health sample finding the hub no longer accepting).
//! [`AlertMonitor::active`] keeps listing what was active when it stopped.
//!
//! ```
//! use std::time::Duration;
//! use atamo_core::alerts::{AgentThresholds, AlertConfig, AlertMonitor, LatencyThreshold};
//! use atamo_core::Hub;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder().build()?;
//! let config = AlertConfig::new().agent(
//!     "search",
//!     AgentThresholds::default()
//!         .with_latency_p95(LatencyThreshold::new(Duration::from_millis(250))),
//! );
//! let monitor = AlertMonitor::start(&hub, config);
//! assert!(monitor.active().is_empty());
//! hub.shutdown().await;
//! # Ok(()) }
//! ```

mod active;
mod config;
mod monitor;
mod names;
mod task;
mod units;
mod window;

#[cfg(test)]
mod tests;

pub use active::ActiveAlert;
pub use config::{
    AgentThresholds, AlertConfig, ErrorRateThreshold, LatencyThreshold, QueueDepthThreshold,
    ThroughputThreshold,
};
pub use monitor::AlertMonitor;
pub use names::{ALERT_EVENT_TYPE, ALERT_GROUP, ALERT_USER, LATENCY_SAMPLES};
