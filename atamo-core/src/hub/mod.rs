//! The hub: [`Hub`] owns the running tasks, [`HubHandle`] publishes, [`Control`] registers and
//! watches.
//!
//! Inside, one shared state (`shared.rs`) is held by the router, the agents' workers, the
//! handles and the controller; what they exchange (an envelope from a client to the router, a
//! dispatch from the router to a worker) and what they report live in files of their own,
//! below all of them. Every long-lived task runs under supervision (`supervise.rs`) and reports
//! its state to the register of components (`components.rs`), which intake and
//! [`Control::readiness`] read.

mod builder;
pub(crate) mod components;
mod control;
mod definitions;
pub(crate) mod dispatch;
mod durable;
mod envelope;
mod handle;
mod health;
mod lifecycle;
mod provider;
mod router;
mod routing;
mod running;
pub(crate) mod shared;
pub(crate) mod supervise;
#[cfg(test)]
mod supervision_tests;
mod worker;

pub use crate::telemetry::ShutdownReport;
pub use builder::HubBuilder;
pub use control::Control;
pub use definitions::{ActionTypeDef, ConfigError, ConfigProblem, EventTypeDef, ProviderInfo};
pub use durable::StoreSettings;
pub use handle::{DryRun, HubHandle, PublishError, Receipt, TryPublishError};
pub use health::{AgentHealth, HealthSnapshot, QueueDepth};
pub use provider::{CacheSettings, EventProvider, ProviderLink};
pub use routing::{RuleOutcome, Verdict};
pub use running::Hub;
