//! Publishing as the hub's clients and agents see it: what comes back when an event is
//! accepted ([`Receipt`]) or not ([`PublishError`], [`TryPublishError`], each handing the event
//! back), and [`Publisher`], the narrow handle an agent publishes its follow-up events through.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::ids::{CorrelationId, EventId};
use crate::message::{Event, Problem};

/// What the hub hands back once it has accepted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The event's id.
    pub event_id: EventId,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
}

/// Why `publish` did not accept an event. The event comes back so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event is invalid; every problem is listed.
    #[error("event rejected: {}", join(.problems))]
    Rejected {
        /// The event, unchanged.
        event: Event,
        /// Everything wrong with it.
        problems: Vec<Problem>,
    },
    /// The hub is shutting down and accepts no more events.
    #[error("the hub is shutting down and accepts no more events")]
    ShuttingDown {
        /// The event, unchanged.
        event: Event,
    },
    /// The hub cannot accept and keep events now: a component it needs has failed (its
    /// router, a stateful hub's settle writer, its store). Nothing of the event was taken;
    /// [`Control::readiness`](crate::Control::readiness) says the same.
    #[error("the hub cannot accept and keep events now: {reason}")]
    Unavailable {
        /// The event, unchanged.
        event: Event,
        /// Why, one part per component (`store: the disk is full`).
        reason: String,
    },
    /// A stateful hub could not commit the event to its store; nothing of it was kept or
    /// sent. Trying again later may work.
    #[error("the event could not be stored: {error}")]
    Store {
        /// The event, unchanged.
        event: Event,
        /// The store's error.
        #[source]
        error: crate::store::StoreError,
    },
}

impl PublishError {
    /// The event that was not accepted.
    pub fn into_event(self) -> Event {
        match self {
            Self::Rejected { event, .. }
            | Self::ShuttingDown { event }
            | Self::Unavailable { event, .. }
            | Self::Store { event, .. } => event,
        }
    }
}

/// Why `try_publish` did not accept an event. The event comes back so nothing is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryPublishError {
    /// The ingress queue is full right now; try again later or use `publish` to wait.
    #[error("the hub's ingress queue is full")]
    Full {
        /// The event, unchanged.
        event: Event,
    },
    /// The event is invalid or the hub is stopping.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl TryPublishError {
    /// The event that was not accepted.
    pub fn into_event(self) -> Event {
        match self {
            Self::Full { event } => event,
            Self::Publish(e) => e.into_event(),
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Something that accepts events: the hub, as an agent sees it.
#[async_trait]
pub(crate) trait Publish: Send + Sync + 'static {
    /// Publishes `event` as [`HubHandle::publish`](crate::HubHandle::publish) does.
    async fn publish(&self, event: Event) -> Result<Receipt, PublishError>;
}

/// A handle that publishes events into the hub and can do nothing else: what an agent's
/// [`CallContext`](crate::CallContext) carries for its follow-up events. Cheap to clone.
#[derive(Clone)]
pub struct Publisher(Arc<dyn Publish>);

impl Publisher {
    pub(crate) fn new(inner: Arc<dyn Publish>) -> Self {
        Self(inner)
    }

    /// Publishes `event`: fire and forget, as
    /// [`HubHandle::publish`](crate::HubHandle::publish). Waits while the hub is full.
    pub async fn publish(&self, event: Event) -> Result<Receipt, PublishError> {
        self.0.publish(event).await
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}
