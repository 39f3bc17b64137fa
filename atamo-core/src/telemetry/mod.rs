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

mod alert;
mod audit;
mod bus;
mod event;
mod monitor;
mod report;

pub use alert::{AlertKind, UnknownAlertKind};
pub use audit::audit_record;
pub(crate) use bus::{Bus, Sink, SinkParts};
pub use bus::{TelemetryBatch, TelemetryRecvError, TelemetrySubscriber};
pub use event::{
    AbandonReason, ExpiryReason, ProcessChange, SuppressReason, TelemetryEvent, TelemetryKind,
};
pub(crate) use monitor::Monitor;
pub use monitor::MonitorStream;
pub use report::ShutdownReport;
