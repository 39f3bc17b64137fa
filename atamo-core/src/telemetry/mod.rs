//! Telemetry: one typed event for every step a message takes.
//!
//! The hub reports every step (accepted, rejected, rule matched, no route, action dispatched,
//! succeeded, failed, abandoned, ...) as a [`TelemetryEvent`]. The controller sees all of it
//! through a [`TelemetrySubscriber`] ([`Control::subscribe`](crate::Control::subscribe));
//! a client that published with
//! [`publish_monitored`](crate::HubHandle::publish_monitored) sees its own event's steps through
//! a [`MonitorStream`].
//!
//! Routing never waits for a subscriber. Each subscriber has a bounded buffer; one that falls
//! behind loses the oldest events and is told how many with
//! [`TelemetryRecvError::Lagged`].

mod audit;
mod bus;
mod event;
mod monitor;

pub use audit::audit_record;
pub(crate) use bus::{Bus, Sink, SinkParts};
pub use bus::{TelemetryBatch, TelemetryRecvError, TelemetrySubscriber};
pub use event::{
    AbandonReason, ExpiryReason, ProcessChange, SuppressReason, TelemetryEvent, TelemetryKind,
};
pub(crate) use monitor::Monitor;
pub use monitor::MonitorStream;

use std::time::Duration;

pub(crate) fn ser_duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

pub(crate) fn ser_opt_duration_ms<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration_ms(d, s),
        None => s.serialize_none(),
    }
}
