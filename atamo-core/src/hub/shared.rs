//! The state the hub's tasks and handles share.

use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use super::components::Components;
use super::durable::Durable;
use super::envelope::Envelope;
use super::lifecycle::{Lifecycle, Tasks};
use super::routing::Routing;
use crate::failure::DeadLetters;
use crate::request::RequestStore;
use crate::telemetry::Bus;

/// State shared by the hub's tasks and handles. Each part has one job: the registry snapshot
/// (swapped whole), the way in, telemetry, the shutdown signals, the tasks to await, the
/// requests' stores, the dead letters, the long-lived components' states, and in a stateful
/// hub its store.
pub(crate) struct Shared {
    /// What is registered; changed by clone-modify-swap under `control_lock`.
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) control_lock: Mutex<()>,
    /// Accepted events on their way to the router.
    pub(crate) ingress: mpsc::Sender<Envelope>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) tasks: Tasks,
    pub(crate) runtime: tokio::runtime::Handle,
    /// The in-process handle's request store.
    pub(crate) requests: Arc<RequestStore>,
    /// Every request store (the in-process one and each event provider's).
    pub(crate) stores: Mutex<Vec<Weak<RequestStore>>>,
    /// The names of the attached event providers.
    pub(crate) event_providers: Mutex<Vec<Arc<str>>>,
    /// Actions that failed for good.
    pub(crate) dead_letters: DeadLetters,
    /// In a stateful hub: the store and its settings.
    pub(crate) durable: Option<Arc<Durable>>,
    /// Every long-lived component and its state; intake asks it before it accepts.
    pub(crate) components: Arc<Components>,
}
