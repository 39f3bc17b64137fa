//! An accepted event on its way from a client to the router.

use std::sync::Arc;

use crate::message::Event;
use crate::publish::Receipt;
use crate::request::RequestEntry;
use crate::telemetry::Monitor;

/// An event on its way from a client to the router.
pub(crate) struct Envelope {
    pub(crate) event: Event,
    pub(crate) monitor: Option<Monitor>,
    pub(crate) request: Option<Arc<RequestEntry>>,
    /// In a stateful hub: where the router answers once the event is committed.
    pub(crate) ack: Option<Ack>,
}

/// The router's answer to a publisher waiting for the commit.
pub(crate) type Ack = tokio::sync::oneshot::Sender<Result<Receipt, crate::store::StoreError>>;
