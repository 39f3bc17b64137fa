//! Event providers: the client-facing side of the hub.
//!
//! An event provider brings clients to the hub: it registers the event types it brings,
//! packages client input into events and requests, and delivers answers and telemetry back to
//! its clients, including those that disconnect and return. Each provider holds its own
//! level-1 cache: the answers of its clients' requests, kept for its keep-alive time within its
//! memory bound.
//!
//! The in-process handle ([`Hub::handle`](crate::Hub::handle)) is the first provider. The REST
//! service and edge inputs are others; embedders can write their own by implementing
//! [`EventProvider`] and attaching it with [`Control::attach`](crate::Control::attach).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::definitions::EventTypeDef;
use super::handle::HubHandle;

/// A provider's level-1 cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// How long a finished request's answers are kept.
    pub keep_alive: Duration,
    /// The cache's memory bound, in estimated bytes.
    pub max_bytes: u64,
    /// How many unread updates one request may hold before its agents wait.
    pub answer_buffer: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(300),
            max_bytes: 256 * 1024 * 1024,
            answer_buffer: 1024,
        }
    }
}

impl CacheSettings {
    /// Sets the keep-alive time (brought into
    /// [`KeepAlive`](crate::bounded::KeepAlive)'s range: at most 30 days).
    #[must_use]
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = crate::bounded::KeepAlive::saturating(d).get();
        self
    }

    /// Sets the memory bound.
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Sets the per-request buffer.
    #[must_use]
    pub fn answer_buffer(mut self, n: usize) -> Self {
        self.answer_buffer = n;
        self
    }
}

/// A client-facing front of the hub. Implement it with [`async_trait`](crate::async_trait).
#[async_trait]
pub trait EventProvider: Send + Sync + 'static {
    /// Its name, unique among attached providers (used in logs and listings).
    fn name(&self) -> &str;

    /// The event types it brings; registered when it is attached.
    fn event_types(&self) -> Vec<EventTypeDef> {
        Vec::new()
    }

    /// Its level-1 cache settings.
    fn cache(&self) -> CacheSettings {
        CacheSettings::default()
    }

    /// Serves its clients until `link.stopped()` completes (the hub is shutting down), then
    /// returns. Publish and request through `link.hub()`.
    async fn run(self: Arc<Self>, link: ProviderLink);
}

/// What a provider is given: a hub handle whose requests keep their answers in the provider's
/// own cache, and the signal to stop.
#[derive(Clone)]
pub struct ProviderLink {
    pub(crate) name: Arc<str>,
    pub(crate) hub: HubHandle,
    pub(crate) stop: CancellationToken,
}

impl ProviderLink {
    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The handle to publish and request through (its requests use the provider's cache).
    pub fn hub(&self) -> &HubHandle {
        &self.hub
    }

    /// Completes when the hub stops taking input: finish what is in hand and return.
    pub fn stopped(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Whether the hub has asked the provider to stop.
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}
