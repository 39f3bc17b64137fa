//! How a stateful hub uses its store.

use std::time::Duration;

use crate::bounded::{DedupeWindow, Interval, Lease};
use crate::store::{Durability, NodeId, Retention};

/// How a stateful hub uses its store.
///
/// ```
/// use std::time::Duration;
/// use atamo_core::hub::StoreSettings;
///
/// let settings = StoreSettings::default()
///     .lease(Duration::from_secs(10))
///     .dedupe_window(Duration::from_secs(3600));
/// assert_eq!(settings.lease_time(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreSettings {
    pub(crate) node: NodeId,
    pub(crate) lease: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) dedupe_window: Duration,
    pub(crate) default: Durability,
    pub(crate) retention: Retention,
    pub(crate) prune_interval: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            node: NodeId::generate(),
            lease: Duration::from_secs(30),
            claim_interval: Duration::from_millis(500),
            claim_batch: 256,
            dedupe_window: Duration::from_secs(24 * 3600),
            default: Durability::Durable,
            retention: Retention::default(),
            prune_interval: Duration::from_secs(60),
        }
    }
}

impl StoreSettings {
    /// This node's name in the store (default: host, process id and a random part).
    pub fn node(mut self, node: NodeId) -> Self {
        self.node = node;
        self
    }

    /// How long a node holds an action before another may take it over (default 30 s; brought
    /// into [`Lease`]'s range, 100 ms to 1 hour). The node renews its leases every third of
    /// this while it works; after a crash, its actions are taken over once their leases end.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Lease::saturating(lease).get();
        self
    }

    /// The lease time.
    pub fn lease_time(&self) -> Duration {
        self.lease
    }

    /// How often the node looks for ready actions (retries due, redriven actions, actions of
    /// nodes that died) when nothing wakes it sooner (default 500 ms).
    pub fn claim_interval(mut self, every: Duration) -> Self {
        self.claim_interval = Interval::saturating(every).get();
        self
    }

    /// How many ready actions one claim takes at most (default 256).
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n.clamp(1, 100_000);
        self
    }

    /// How long a dedupe key blocks a second event with the same key (default 24 hours;
    /// brought into [`DedupeWindow`]'s range, at most 30 days).
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = DedupeWindow::saturating(window).get();
        self
    }

    /// Whether events are durable unless their type or rule says otherwise (default
    /// `Durable`).
    pub fn default_durability(mut self, durability: Durability) -> Self {
        self.default = durability;
        self
    }

    /// How long audit entries, events and finished actions are kept (default: forever).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How often the retention is applied (default every minute).
    pub fn prune_interval(mut self, every: Duration) -> Self {
        self.prune_interval = Interval::saturating(every.max(Duration::from_millis(10))).get();
        self
    }
}
