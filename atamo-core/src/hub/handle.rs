//! The client's side: publishing events.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

pub use crate::publish::{PublishError, Receipt, TryPublishError};
use tokio::sync::mpsc::error::TrySendError;

use super::envelope::Envelope;
use super::routing::RuleOutcome;
use super::shared::Shared;
use crate::ids::RequestId;
use crate::message::{Event, Problem};
use crate::request::{
    AnswerStream, Found, RequestEntry, RequestOptions, RequestReceipt, RequestSnapshot,
    RequestState, RequestStatus, RequestStore, RequestUpdate, WaitError,
};
use crate::rules::PlannedAction;
use crate::telemetry::{Monitor, MonitorStream, TelemetryKind};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::routing::Verdict;

/// What the hub would do with an event, computed without doing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// Why the event would be rejected; empty when it would be accepted.
    pub problems: Vec<Problem>,
    /// Each matched rule and what would become of it.
    pub outcomes: Vec<RuleOutcome>,
}

impl DryRun {
    /// Whether the event would be accepted.
    pub fn accepted(&self) -> bool {
        self.problems.is_empty()
    }

    /// The actions that would be sent, one per agent call.
    pub fn actions(&self) -> impl Iterator<Item = &PlannedAction> {
        self.outcomes.iter().filter_map(|o| match &o.verdict {
            Verdict::Dispatch(a) => Some(a),
            _ => None,
        })
    }
}

/// The client's handle to a hub: publish events, monitor them, dry-run them.
///
/// Cheap to clone, `Send + Sync`: hand one to every task or thread that publishes.
///
/// A handle is the link of an event provider (see [`EventProvider`](crate::hub::EventProvider)):
/// requests sent through it keep their answers in that provider's level-1 cache. The handle
/// from [`Hub::handle`](crate::Hub::handle) belongs to the in-process provider, whose cache is
/// configured on the [`HubBuilder`](crate::HubBuilder).
#[derive(Clone)]
pub struct HubHandle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) store: Arc<RequestStore>,
}

impl HubHandle {
    pub(crate) fn from_shared(shared: &Arc<Shared>) -> Self {
        Self {
            shared: shared.clone(),
            store: shared.requests.clone(),
        }
    }

    fn prepare(&self, event: Event, monitor: Option<Monitor>) -> Result<Envelope, PublishError> {
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            return Err(PublishError::ShuttingDown { event });
        }
        if let Some(reason) = self.shared.components.refusal() {
            return Err(PublishError::Unavailable { event, reason });
        }
        let problems = self.shared.routing.load().check(&event);
        if !problems.is_empty() {
            tracing::debug!(event_id = %event.id(), event_type = %event.event_type(), ?problems, "event rejected");
            self.shared.bus.emit(TelemetryKind::Rejected {
                event: event.meta.clone(),
                problems: problems.clone().into(),
            });
            return Err(PublishError::Rejected { event, problems });
        }
        Ok(Envelope {
            event,
            monitor,
            request: None,
            ack: None,
        })
    }

    /// Queues an envelope. In a stateful hub, waits until the router has committed the event
    /// and returns its receipt (the first event's, for a duplicate).
    async fn send(&self, mut env: Envelope, receipt: Receipt) -> Result<Receipt, PublishError> {
        let committed = match &self.shared.durable {
            Some(_) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                env.ack = Some(tx);
                Some((rx, env.event.clone()))
            }
            None => None,
        };
        if let Err(e) = self.shared.ingress.send(env).await {
            return Err(self.not_taken(e.0.event));
        }
        let Some((rx, event)) = committed else {
            return Ok(receipt);
        };
        match rx.await {
            Ok(Ok(receipt)) => Ok(receipt),
            Ok(Err(error)) => Err(PublishError::Store { event, error }),
            Err(_) => Err(self.not_taken(event)),
        }
    }

    /// Why an event that passed the checks was not taken after all: the hub began to shut
    /// down, or (while it still accepts) the router or the committer stopped.
    fn not_taken(&self, event: Event) -> PublishError {
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            return PublishError::ShuttingDown { event };
        }
        let reason = self
            .shared
            .components
            .refusal()
            .unwrap_or_else(|| "router: it has stopped".to_owned());
        PublishError::Unavailable { event, reason }
    }

    fn receipt(event: &Event) -> Receipt {
        Receipt {
            event_id: event.id(),
            correlation_id: event.correlation_id(),
        }
    }

    /// Fire and forget: returns once the event is accepted (validated and queued). When the
    /// ingress queue is full this waits for room: backpressure, not loss.
    ///
    /// An invalid event is rejected with every problem listed, and a `rejected` telemetry
    /// event; the event comes back inside the error.
    ///
    /// In a stateful hub it returns once the event and its actions are committed to the store,
    /// and an event whose dedupe key was seen within the window gets the first event's receipt.
    pub async fn publish(&self, event: Event) -> Result<Receipt, PublishError> {
        let receipt = Self::receipt(&event);
        let env = self.prepare(event, None)?;
        self.send(env, receipt).await
    }

    /// Like [`publish`](Self::publish) but never waits: when the ingress queue is full the
    /// event comes back in [`TryPublishError::Full`].
    ///
    /// In a stateful hub the event is queued for its commit but not waited for, so a crash
    /// in the next moments can lose it, and a duplicate gets its own receipt: use `publish`
    /// when that matters.
    pub fn try_publish(&self, event: Event) -> Result<Receipt, TryPublishError> {
        let receipt = Self::receipt(&event);
        let env = self.prepare(event, None)?;
        match self.shared.ingress.try_send(env) {
            Ok(()) => Ok(receipt),
            Err(TrySendError::Full(env)) => Err(TryPublishError::Full { event: env.event }),
            Err(TrySendError::Closed(env)) => Err(self.not_taken(env.event).into()),
        }
    }

    /// Fire and monitor: like `publish`, and also returns a stream of this event's telemetry
    /// (accepted, rules matched, actions dispatched, their outcomes) that ends when every one of
    /// its actions has ended.
    pub async fn publish_monitored(
        &self,
        event: Event,
    ) -> Result<(Receipt, MonitorStream), PublishError> {
        let receipt = Self::receipt(&event);
        let (monitor, stream) = Monitor::new();
        let env = self.prepare(event, Some(monitor))?;
        let receipt = self.send(env, receipt).await?;
        Ok((receipt, stream))
    }

    /// What the hub would do with `event`: whether it would be accepted, which rules match and
    /// which actions would be sent. Nothing is sent and no telemetry is emitted.
    pub fn dry_run(&self, event: &Event) -> DryRun {
        let routing = self.shared.routing.load();
        let problems = routing.check(event);
        let mut outcomes = Vec::new();
        if problems.is_empty() {
            let mut planned = Vec::new();
            routing.plan(event, &mut Vec::new(), &mut planned);
            outcomes = planned.into_iter().map(|p| p.outcome).collect();
        }
        DryRun { problems, outcomes }
    }

    /// Sends a request: an event whose actions answer back. Returns a receipt with the request
    /// id as soon as the request is accepted; collect the answers with [`wait`](Self::wait),
    /// [`poll`](Self::poll) or [`subscribe`](Self::subscribe).
    pub async fn request(&self, event: Event) -> Result<RequestReceipt, PublishError> {
        self.request_with(event, RequestOptions::default()).await
    }

    /// [`request`](Self::request) with options: keep-alive, deadline, live feed.
    pub async fn request_with(
        &self,
        event: Event,
        options: RequestOptions,
    ) -> Result<RequestReceipt, PublishError> {
        let env = self.prepare(event, None)?;
        self.send_request(env, options).await
    }

    /// A request whose steps are also streamed to the caller, like
    /// [`publish_monitored`](Self::publish_monitored).
    pub async fn request_monitored(
        &self,
        event: Event,
        options: RequestOptions,
    ) -> Result<(RequestReceipt, MonitorStream), PublishError> {
        let (monitor, stream) = Monitor::new();
        let env = self.prepare(event, Some(monitor))?;
        Ok((self.send_request(env, options).await?, stream))
    }

    async fn send_request(
        &self,
        mut env: Envelope,
        mut options: RequestOptions,
    ) -> Result<RequestReceipt, PublishError> {
        if options.keep_alive.is_none() {
            // The request's own, else its type's, else (in the store) the provider's default.
            options.keep_alive = self
                .shared
                .routing
                .load()
                .event_types
                .get(env.event.event_type())
                .and_then(|t| t.keep_alive);
        }
        env.event.meta_mut().request = Some(RequestId::generate());
        let store = &self.store;
        let entry = Arc::new(RequestEntry::new(
            env.event.meta.clone(),
            options,
            store.config.answer_buffer,
            CancellationToken::new(),
            self.shared.bus.clone(),
            {
                let keeper: std::sync::Weak<RequestStore> = Arc::downgrade(store);
                keeper as std::sync::Weak<dyn crate::request::Keeper>
            },
        ));
        let receipt = RequestReceipt {
            request_id: entry.id,
            event_id: env.event.id(),
            correlation_id: env.event.correlation_id(),
        };
        store.insert(entry.clone());
        env.request = Some(entry);
        let sent = Receipt {
            event_id: receipt.event_id,
            correlation_id: receipt.correlation_id,
        };
        if let Err(e) = self.send(env, sent).await {
            store.remove(&receipt.request_id);
            return Err(e);
        }
        Ok(receipt)
    }

    /// A request's state and the answers so far, or whether it expired or is unknown.
    pub fn poll(&self, id: RequestId) -> RequestStatus {
        match self.store.find(&id) {
            Found::Live(e) => RequestStatus::Known(e.snapshot()),
            Found::Expired => RequestStatus::Expired { request_id: id },
            Found::Unknown => RequestStatus::Unknown { request_id: id },
        }
    }

    /// Follows a request: everything still kept, then live updates until it finishes. A late
    /// subscriber misses nothing that is still kept.
    pub fn subscribe(&self, id: RequestId) -> Result<AnswerStream, WaitError> {
        match self.store.find(&id) {
            Found::Live(e) => Ok(e.subscribe(true)),
            Found::Expired => Err(WaitError::Expired(id)),
            Found::Unknown => Err(WaitError::Unknown(id)),
        }
    }

    /// Waits until the request finishes (or `timeout` passes) and returns its state with every
    /// answer it received.
    pub async fn wait(
        &self,
        id: RequestId,
        timeout: Duration,
    ) -> Result<RequestSnapshot, WaitError> {
        let mut stream = self.subscribe(id)?;
        let mut answers = Vec::new();
        let collect = async {
            while let Some(update) = stream.next().await {
                if let RequestUpdate::Answer(a) = update {
                    answers.push(a);
                }
            }
        };
        let timed_out = tokio::time::timeout(timeout, collect).await.is_err();
        // From the entry the stream holds: the request may have left the cache meanwhile.
        let mut snapshot = stream.snapshot();
        if timed_out {
            return Err(WaitError::Timeout(Box::new(snapshot)));
        }
        snapshot.answers = answers;
        Ok(snapshot)
    }

    /// Cancels a running request: its agents see cancellation, it ends as `Cancelled`. Returns
    /// false when it had already ended or is not known.
    pub fn cancel(&self, id: RequestId) -> bool {
        match self.store.find(&id) {
            Found::Live(e) => e.stop(RequestState::Cancelled),
            _ => false,
        }
    }

    /// A request's answers as a stateful hub's store keeps them, one record per action, for
    /// the keep-alive time: what a client that comes back after the hub restarted (or after
    /// the request left the memory cache) can still collect. Empty for a stateless hub.
    pub async fn stored_answers(
        &self,
        id: RequestId,
    ) -> Result<Vec<crate::store::ResultRecord>, crate::store::StoreError> {
        match &self.shared.durable {
            Some(d) => d.store.results(id).await,
            None => Ok(Vec::new()),
        }
    }

    /// Whether the hub still accepts events: it is not shutting down, and every component it
    /// needs to keep them works (see [`Control::readiness`](crate::Control::readiness)).
    pub fn is_accepting(&self) -> bool {
        self.shared.lifecycle.accepting.load(Ordering::Acquire)
            && self.shared.components.refusal().is_none()
    }
}

#[async_trait::async_trait]
impl crate::publish::Publish for HubHandle {
    async fn publish(&self, event: Event) -> Result<Receipt, PublishError> {
        HubHandle::publish(self, event).await
    }
}
