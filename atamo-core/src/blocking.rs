//! A blocking facade for code that is not async: a desktop UI thread, a C host, a script.
//!
//! [`BlockingHub`] publishes and sends requests from a plain thread and never asks its caller
//! to await. What comes back arrives on [`crossbeam_channel::Receiver`]s: telemetry batches
//! ([`BlockingHub::telemetry`]) and each request's answers ([`BlockingRequest::updates`]). A UI
//! loop drains them with `try_recv` every frame; a worker thread may block on `recv` or
//! `recv_timeout`.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//!
//! use atamo_core::blocking::{BlockingHub, TelemetryItem};
//! use atamo_core::request::RequestUpdate;
//! use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
//! use atamo_core::{async_trait, Action, ActionTypeDef, Agent, AgentError, AgentSpec,
//!     CallContext, Event, EventTypeDef, Hub, Principal, Reply};
//! use serde_json::json;
//!
//! /// Looks customers up; counts its calls.
//! struct Customers {
//!     calls: AtomicU64,
//! }
//!
//! #[async_trait]
//! impl Agent for Customers {
//!     async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
//!         self.calls.fetch_add(1, Ordering::Relaxed);
//!         let id = action.payload()["id"].clone();
//!         ctx.answer(json!({"id": id, "name": "Ada"})).await.ok();
//!         Ok(Reply::done())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = |e: &Event, _: &atamo_core::Principal, out: &mut Vec<Proposal>| {
//!     let id = json!({"id": e.payload()["id"].clone()});
//!     out.push(Proposal::action("lookup".into(), PlannedAction::new("customers", "find", id)));
//! };
//! // No runtime here: the facade starts its own.
//! let hub = BlockingHub::start(
//!     Hub::builder()
//!         .event_type(EventTypeDef::new("customer.find").requiring(["id"])?)
//!         .action_type(ActionTypeDef::new("find"))
//!         .agent(AgentSpec::new("customers", Customers { calls: AtomicU64::new(0) }).handles(["find"]))
//!         .provider("rules", rules, ProviderScope::AllEvents),
//! )?;
//! let telemetry = hub.telemetry(64);
//!
//! let request = hub.request(Event::new("customer.find", Principal::user("alice"), json!({"id": 42})))?;
//! // A UI would `try_recv` once per frame; here we simply wait.
//! let mut names = Vec::new();
//! while let Ok(update) = request.updates.recv_timeout(Duration::from_secs(5)) {
//!     match update {
//!         RequestUpdate::Answer(a) => names.push(a.payload["name"].clone()),
//!         RequestUpdate::Finished { .. } => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(names, [json!("Ada")]);
//!
//! // The controller's view: every step, in batches.
//! let mut steps = Vec::new();
//! while !steps.contains(&"request_finished") {
//!     match telemetry.recv_timeout(Duration::from_secs(5))? {
//!         TelemetryItem::Batch(batch) => steps.extend(batch.events.iter().map(|e| e.name())),
//!         TelemetryItem::Missed(n) => panic!("{n} steps missed"),
//!     }
//! }
//! assert!(steps.starts_with(&["accepted", "rule_matched", "action_dispatched"]));
//! hub.shutdown();
//! # Ok(()) }
//! ```
//!
//! # Which thread does what
//! The hub runs on a tokio runtime: its own two worker threads with [`BlockingHub::start`], or
//! one the application already has with [`BlockingHub::new`]. The facade's methods block the
//! calling thread only as long as the same call would await (`publish` waits for room in the
//! hub's intake, and in a stateful hub for the commit); [`try_publish`](BlockingHub::try_publish)
//! never blocks. They must not be called from async code on a runtime thread (they would block
//! it): use the [`HubHandle`] there.
//!
//! # Backpressure
//! - Telemetry never slows the hub: when the receiver is full, batches are dropped and the
//!   next item the receiver gets is [`TelemetryItem::Missed`] with how many steps it lost.
//! - Request answers are never dropped: when a request's receiver is full, the forwarding
//!   waits for room, and so in turn does the agent producing the answers (as with
//!   [`HubHandle::subscribe`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::hub::supervise::spawn_logged;
use crate::hub::{ConfigError, Control, Hub, HubBuilder, HubHandle, ShutdownReport};
use crate::ids::RequestId;
use crate::message::Event;
use crate::publish::{PublishError, Receipt, TryPublishError};
use crate::request::{
    RequestOptions, RequestReceipt, RequestSnapshot, RequestStatus, RequestUpdate, WaitError,
};
use crate::telemetry::{TelemetryBatch, TelemetryRecvError};

pub use crossbeam_channel;

/// How many updates a request's receiver holds before the forwarding waits.
pub const REQUEST_BUFFER: usize = 256;

/// How often a full request receiver is looked at again.
const ROOM_POLL: Duration = Duration::from_millis(2);

/// What a telemetry receiver gets.
#[derive(Debug, Clone)]
pub enum TelemetryItem {
    /// Steps, in the order the hub took them.
    Batch(Arc<TelemetryBatch>),
    /// This many steps were lost because the receiver was full (or the subscription fell
    /// behind); those that follow are complete again.
    Missed(u64),
}

/// A request sent through the facade: its receipt, and its updates as they come.
#[derive(Debug)]
pub struct BlockingRequest {
    /// The ids of the request and of its event.
    pub receipt: RequestReceipt,
    /// Every update: what was answered before the request was followed (nothing is missed),
    /// then each answer as it comes, then [`RequestUpdate::Finished`]. The channel then
    /// disconnects.
    pub updates: Receiver<RequestUpdate>,
}

impl BlockingRequest {
    /// The request's id.
    pub fn id(&self) -> RequestId {
        self.receipt.request_id
    }
}

/// Why [`BlockingHub::start`] did not start a hub.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The runtime's threads could not be started.
    #[error("cannot start the hub's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The hub's configuration is wrong; every problem is listed.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A hub driven from plain threads; see the [module documentation](self).
pub struct BlockingHub {
    /// The runtime the hub runs on.
    runtime: tokio::runtime::Handle,
    /// That runtime, when the facade started it (and stops it).
    owned: Option<tokio::runtime::Runtime>,
    /// The hub itself, when the facade started it.
    hub: Option<Hub>,
    handle: HubHandle,
    control: Control,
}

impl std::fmt::Debug for BlockingHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingHub")
            .field("owns_hub", &self.hub.is_some())
            .finish_non_exhaustive()
    }
}

impl BlockingHub {
    /// Starts `builder`'s hub on a runtime of its own (two worker threads named `atamo-hub`).
    /// [`shutdown`](Self::shutdown) stops both.
    pub fn start(builder: HubBuilder) -> Result<Self, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("atamo-hub")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let hub = runtime.block_on(async { builder.build() })?;
        Ok(Self {
            handle: hub.handle(),
            control: hub.control(),
            hub: Some(hub),
            runtime: runtime.handle().clone(),
            owned: Some(runtime),
        })
    }

    /// A facade over a hub that runs on `runtime` (the application's own); the application
    /// keeps the [`Hub`] and shuts it down.
    pub fn new(hub: &Hub, runtime: tokio::runtime::Handle) -> Self {
        Self {
            handle: hub.handle(),
            control: hub.control(),
            hub: None,
            runtime,
            owned: None,
        }
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The async handle, for code of the application that does run on the runtime.
    pub fn handle(&self) -> &HubHandle {
        &self.handle
    }

    /// The controller's handle (registering, listing, health, dead letters). Its methods
    /// that are not `async` may be called from any thread.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// Publishes `event`, fire and forget; blocks while the hub's intake is full (and, in a
    /// stateful hub, until the event is committed). See [`HubHandle::publish`].
    pub fn publish(&self, event: Event) -> Result<Receipt, PublishError> {
        self.block_on(self.handle.publish(event))
    }

    /// Publishes `event` without ever blocking; a full hub hands it back. See
    /// [`HubHandle::try_publish`].
    pub fn try_publish(&self, event: Event) -> Result<Receipt, TryPublishError> {
        self.handle.try_publish(event)
    }

    /// Sends a request; its answers arrive on the returned [`BlockingRequest::updates`].
    pub fn request(&self, event: Event) -> Result<BlockingRequest, PublishError> {
        self.request_with(event, RequestOptions::default())
    }

    /// [`request`](Self::request) with options (keep-alive, deadline, live feed: a live feed
    /// is cancelled when its receiver is dropped).
    pub fn request_with(
        &self,
        event: Event,
        options: RequestOptions,
    ) -> Result<BlockingRequest, PublishError> {
        let receipt = self.block_on(self.handle.request_with(event, options))?;
        let (tx, updates) = crossbeam_channel::bounded(REQUEST_BUFFER);
        // Followed at once, so nothing is missed: the request is running or kept.
        if let Ok(mut stream) = self.handle.subscribe(receipt.request_id) {
            spawn_logged(&self.runtime, "blocking_request_updates", async move {
                while let Some(update) = stream.next().await {
                    if !send_when_room(&tx, update).await {
                        // The receiver went away: stop following (a live feed ends).
                        return;
                    }
                }
            });
        }
        Ok(BlockingRequest { receipt, updates })
    }

    /// Blocks until request `id` finishes (or `timeout` passes) and returns its state with
    /// every answer. See [`HubHandle::wait`].
    pub fn wait(&self, id: RequestId, timeout: Duration) -> Result<RequestSnapshot, WaitError> {
        self.block_on(self.handle.wait(id, timeout))
    }

    /// A request's state and answers so far, now. See [`HubHandle::poll`].
    pub fn poll(&self, id: RequestId) -> RequestStatus {
        self.handle.poll(id)
    }

    /// Cancels a running request. See [`HubHandle::cancel`].
    pub fn cancel(&self, id: RequestId) -> bool {
        self.handle.cancel(id)
    }

    /// Every telemetry step from now on, in batches, on a receiver holding at most `capacity`
    /// items. A receiver that is not drained fast enough loses batches, never slows the hub,
    /// and is told how many steps it lost ([`TelemetryItem::Missed`]). Dropping the receiver
    /// ends the subscription at the next batch.
    pub fn telemetry(&self, capacity: usize) -> Receiver<TelemetryItem> {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let mut subscriber = self.control.subscribe();
        spawn_logged(&self.runtime, "blocking_telemetry", async move {
            let mut missed = 0u64;
            loop {
                let batch = match subscriber.recv_batch().await {
                    Ok(batch) => batch,
                    Err(TelemetryRecvError::Lagged { missed: n }) => {
                        missed += n;
                        continue;
                    }
                    Err(_) => return,
                };
                if missed > 0 {
                    match tx.try_send(TelemetryItem::Missed(missed)) {
                        Ok(()) => missed = 0,
                        Err(TrySendError::Full(_)) => {
                            missed += batch.events.len() as u64;
                            continue;
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                let steps = batch.events.len() as u64;
                match tx.try_send(TelemetryItem::Batch(batch)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => missed += steps,
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
        });
        rx
    }

    /// Stops the hub gracefully, if the facade started it, and then its runtime; returns the
    /// hub's shutdown report (`None` for a facade over the application's hub, which the
    /// application shuts down itself).
    pub fn shutdown(mut self) -> Option<ShutdownReport> {
        let report = self.hub.take().map(|hub| self.block_on(hub.shutdown()));
        if let Some(rt) = self.owned.take() {
            // Anything left (forwarders of receivers nobody reads) is stopped with the threads.
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        report
    }
}

impl Drop for BlockingHub {
    /// Without [`shutdown`](BlockingHub::shutdown), an owned hub begins its graceful stop
    /// (intake closes) and its runtime is stopped in the background, without blocking the
    /// dropping thread.
    fn drop(&mut self) {
        drop(self.hub.take());
        if let Some(rt) = self.owned.take() {
            rt.shutdown_background();
        }
    }
}

/// Sends `update` once the receiver has room; false when the receiver is gone.
async fn send_when_room(tx: &Sender<RequestUpdate>, mut update: RequestUpdate) -> bool {
    loop {
        match tx.try_send(update) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                update = back;
                tokio::time::sleep(ROOM_POLL).await;
            }
        }
    }
}
