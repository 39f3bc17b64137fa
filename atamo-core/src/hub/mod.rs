//! The hub: [`Hub`] owns the running tasks, [`HubHandle`] publishes, [`Control`] registers and
//! watches.

mod control;
mod durable;
mod handle;
mod provider;
mod router;
mod routing;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::telemetry::ShutdownReport;
pub use control::{
    ActionTypeDef, AgentHealth, ConfigError, ConfigProblem, Control, EventTypeDef, HealthSnapshot,
    ProviderInfo, QueueDepth,
};
pub use durable::StoreSettings;
pub use handle::{DryRun, HubHandle, PublishError, Receipt, TryPublishError};
pub use provider::{CacheSettings, EventProvider, ProviderLink};
pub use routing::{RuleOutcome, Verdict};

use crate::agent::AgentSpec;
use crate::ids::ProviderId;
use crate::request::{RequestStore, StoreConfig};
use crate::rules::{ProviderScope, RuleProvider};
use crate::telemetry::{Bus, TelemetryKind};
use handle::Envelope;
use router::{Router, RouterReport};
use routing::Routing;
use worker::WorkerReport;

/// State shared by the hub's tasks and handles.
pub(crate) struct Shared {
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) ingress: mpsc::Sender<Envelope>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) accepting: AtomicBool,
    pub(crate) control_lock: Mutex<()>,
    /// Shutdown began: the router stops intake and routes what it holds.
    pub(crate) drain: CancellationToken,
    /// The router is done: workers stop once their queue is empty.
    pub(crate) intake_done: CancellationToken,
    /// The deadline passed: workers abandon what they hold; agents see it as cancellation.
    pub(crate) abort: CancellationToken,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) requests: Arc<RequestStore>,
    /// Stops the request stores' timer tasks, last of all.
    pub(crate) store_stop: CancellationToken,
    workers: Mutex<Vec<JoinHandle<WorkerReport>>>,
    /// Event providers' tasks and request stores' timer tasks.
    side_tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) event_providers: Mutex<Vec<Arc<str>>>,
    /// Every request store (the in-process one and each provider's).
    pub(crate) stores: Mutex<Vec<std::sync::Weak<RequestStore>>>,
    /// Actions that failed for good.
    pub(crate) dead_letters: crate::failure::DeadLetters,
    /// In a stateful hub: the store and its settings.
    pub(crate) durable: Option<Arc<durable::Durable>>,
    /// The stateful hub's settle writer, awaited once the workers are done.
    settler: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    pub(crate) fn track(&self, task: JoinHandle<WorkerReport>) {
        let mut workers = match self.workers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        workers.retain(|t| !t.is_finished());
        workers.push(task);
    }

    pub(crate) fn track_side(&self, task: JoinHandle<()>) {
        let mut tasks = match self.side_tasks.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    fn take_side_tasks(&self) -> Vec<JoinHandle<()>> {
        let mut tasks = match self.side_tasks.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *tasks)
    }

    fn take_workers(&self) -> Vec<JoinHandle<WorkerReport>> {
        let mut workers = match self.workers.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::take(&mut *workers)
    }
}

/// A running hub. Owns its tasks: keep it, and [`shutdown`](Hub::shutdown) or
/// [`run_until`](Hub::run_until) it to stop gracefully. Hand out [`HubHandle`]s to publishers and
/// a [`Control`] to the controller.
///
/// Dropping a `Hub` without shutting it down starts the same graceful stop in the background
/// (intake closes; queued work still runs) but nobody learns what was abandoned.
pub struct Hub {
    shared: Arc<Shared>,
    router: Option<JoinHandle<RouterReport>>,
    grace: Duration,
}

impl Hub {
    /// Starts configuring a hub.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// A handle for publishing.
    pub fn handle(&self) -> HubHandle {
        HubHandle::from_shared(&self.shared)
    }

    /// The controller's handle.
    pub fn control(&self) -> Control {
        Control {
            shared: self.shared.clone(),
        }
    }

    /// Runs until `signal` completes (for example `tokio::signal::ctrl_c()`), then shuts down
    /// gracefully.
    pub async fn run_until<F: std::future::Future>(self, signal: F) -> ShutdownReport {
        signal.await;
        self.shutdown().await
    }

    /// Stops intake, lets accepted events be routed and in-flight actions finish within the
    /// grace period, then abandons what is left, reporting each abandoned action in telemetry.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let started = Instant::now();
        let shared = self.shared.clone();
        shared.accepting.store(false, Ordering::Release);
        shared
            .bus
            .emit(TelemetryKind::ShutdownStarted { grace: self.grace });
        tracing::info!(grace = ?self.grace, "hub shutting down");
        shared.drain.cancel();
        // Live feeds never end on their own, and nobody will be left to watch them.
        let stores = match shared.stores.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let feeds: usize = stores
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|s| s.cancel_live_feeds())
            .sum();
        if feeds > 0 {
            tracing::info!(feeds, "live feeds cancelled for shutdown");
        }
        let deadline = tokio::time::sleep(self.grace);
        tokio::pin!(deadline);

        let mut report = ShutdownReport::default();
        let router = self.router.take();
        let mut wait_all = std::pin::pin!(async {
            let r = match router {
                Some(r) => r.await.unwrap_or_default(),
                None => RouterReport::default(),
            };
            // Workers registered while the router drained are picked up by the second take.
            let mut w = WorkerReport::default();
            loop {
                let tasks = shared.take_workers();
                if tasks.is_empty() {
                    break;
                }
                for t in tasks {
                    w.abandoned += t.await.unwrap_or_default().abandoned;
                }
            }
            // Settles of the last actions are written before the hub says it has stopped.
            if let Some(d) = &shared.durable {
                d.stop.cancel();
                let settler = match shared.settler.lock() {
                    Ok(mut g) => g.take(),
                    Err(poisoned) => poisoned.into_inner().take(),
                };
                if let Some(settler) = settler {
                    let _ = settler.await;
                }
            }
            (r, w)
        });
        let (r, w) = tokio::select! {
            done = &mut wait_all => done,
            _ = &mut deadline => {
                report.deadline_passed = true;
                shared.abort.cancel();
                wait_all.await
            }
        };
        // Providers were told to stop when intake closed; timers stop now. What is still
        // running once the deadline has passed is aborted.
        shared.store_stop.cancel();
        for mut task in shared.take_side_tasks() {
            if !report.deadline_passed {
                tokio::select! {
                    _ = &mut task => continue,
                    _ = &mut deadline => {
                        report.deadline_passed = true;
                        shared.abort.cancel();
                    }
                }
            }
            task.abort();
        }
        report.events_drained = r.drained;
        report.actions_abandoned = r.abandoned + w.abandoned;
        report.elapsed = started.elapsed();
        tracing::info!(?report, "hub stopped");
        shared.bus.emit(TelemetryKind::Stopped {
            report: report.clone(),
        });
        report
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.router.is_some() {
            self.shared.accepting.store(false, Ordering::Release);
            self.shared.drain.cancel();
            self.shared.store_stop.cancel();
            if let Some(d) = &self.shared.durable {
                d.stop.cancel();
            }
        }
    }
}

/// Configures and starts a [`Hub`].
///
/// ```
/// use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, EventTypeDef, Hub, Reply};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::builder()
///     .event_type(EventTypeDef::new("order.created").requiring(["order.id"])?)
///     .action_type(ActionTypeDef::new("log"))
///     .agent(AgentSpec::new("logger", agent_fn(|_, _| async { Ok(Reply::done()) })).handles(["log"]))
///     .build()?;
/// assert_eq!(hub.control().agents().len(), 1);
/// hub.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use]
pub struct HubBuilder {
    ingress_capacity: usize,
    telemetry_capacity: usize,
    grace: Duration,
    store: StoreConfig,
    event_types: Vec<EventTypeDef>,
    action_types: Vec<ActionTypeDef>,
    agents: Vec<AgentSpec>,
    providers: Vec<(ProviderId, Arc<dyn RuleProvider>, ProviderScope)>,
    dead_letters: usize,
    durable: Option<(Arc<dyn crate::store::Store>, StoreSettings)>,
}

impl Default for HubBuilder {
    fn default() -> Self {
        Self {
            ingress_capacity: 8192,
            telemetry_capacity: 1024,
            grace: Duration::from_secs(10),
            store: StoreConfig {
                keep_alive: Duration::from_secs(300),
                max_kept_bytes: 256 * 1024 * 1024,
                answer_buffer: 1024,
                tombstones: 1_000_000,
            },
            event_types: Vec::new(),
            action_types: Vec::new(),
            agents: Vec::new(),
            providers: Vec::new(),
            dead_letters: 10_000,
            durable: None,
        }
    }
}

impl HubBuilder {
    /// How many accepted events may wait for routing (default 8192). When full, `publish` waits
    /// and `try_publish` hands the event back.
    pub fn ingress_capacity(mut self, n: usize) -> Self {
        self.ingress_capacity = n;
        self
    }

    /// How many telemetry batches each subscriber may fall behind before it misses some
    /// (default 1024; a batch holds the steps of up to a few hundred messages).
    pub fn telemetry_capacity(mut self, n: usize) -> Self {
        self.telemetry_capacity = n;
        self
    }

    /// How many dead letters are kept (default 10,000); beyond it the oldest are dropped.
    pub fn dead_letter_capacity(mut self, n: usize) -> Self {
        self.dead_letters = n;
        self
    }

    /// How long in-flight actions may take to finish once shutdown begins (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a finished request's answers are kept for clients that come back (default
    /// 5 minutes; a request may set its own with
    /// [`RequestOptions::keep_alive`](crate::RequestOptions::keep_alive)).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.store.keep_alive = keep_alive;
        self
    }

    /// The memory bound of the keep-alive cache, in (estimated) bytes (default 256 MiB). When
    /// it is reached the least useful requests are evicted early, reported as
    /// `request_expired` with reason `memory`.
    pub fn keep_alive_memory(mut self, bytes: u64) -> Self {
        self.store.max_kept_bytes = bytes;
        self
    }

    /// How many unread updates one request may hold before its agents' `answer` waits
    /// (default 1024).
    pub fn answer_buffer(mut self, n: usize) -> Self {
        self.store.answer_buffer = n;
        self
    }

    /// Makes the hub stateful: events are committed to `store` before their clients are
    /// answered, their actions are carried out at least once across crashes, request answers
    /// are kept in it for the keep-alive time, and every step goes to its audit log.
    ///
    /// Without a store the hub is stateless: faster, and what is in flight is lost with the
    /// process.
    pub fn store(self, store: Arc<dyn crate::store::Store>) -> Self {
        self.store_with(store, StoreSettings::default())
    }

    /// [`store`](Self::store) with settings: node name, lease time, dedupe window, retention.
    pub fn store_with(
        mut self,
        store: Arc<dyn crate::store::Store>,
        settings: StoreSettings,
    ) -> Self {
        self.durable = Some((store, settings));
        self
    }

    /// Registers an event type.
    pub fn event_type(mut self, def: EventTypeDef) -> Self {
        self.event_types.push(def);
        self
    }

    /// Registers an action type.
    pub fn action_type(mut self, def: ActionTypeDef) -> Self {
        self.action_types.push(def);
        self
    }

    /// Registers an agent.
    pub fn agent(mut self, spec: AgentSpec) -> Self {
        self.agents.push(spec);
        self
    }

    /// Registers a rule provider.
    pub fn provider(
        mut self,
        id: impl Into<ProviderId>,
        provider: impl RuleProvider,
        scope: ProviderScope,
    ) -> Self {
        self.providers.push((id.into(), Arc::new(provider), scope));
        self
    }

    /// Starts the hub. Must be called inside a tokio runtime (the hub's tasks run on it).
    /// Every problem in the configuration is reported, not only the first.
    pub fn build(self) -> Result<Hub, ConfigError> {
        let mut problems = Vec::new();
        if self.ingress_capacity == 0 {
            problems.push(ConfigProblem::Setting(
                "ingress capacity must be at least 1".into(),
            ));
        }
        if self.telemetry_capacity == 0 {
            problems.push(ConfigProblem::Setting(
                "telemetry capacity must be at least 1".into(),
            ));
        }
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt),
            Err(_) => {
                problems.push(ConfigProblem::Setting(
                    "Hub::build must be called inside a tokio runtime".into(),
                ));
                None
            }
        };
        let (Some(runtime), true) = (runtime, problems.is_empty()) else {
            return Err(ConfigError { problems });
        };
        if self.store.answer_buffer == 0 {
            problems.push(ConfigProblem::Setting(
                "answer buffer must be at least 1".into(),
            ));
            return Err(ConfigError { problems });
        }
        let (tx, rx) = mpsc::channel(self.ingress_capacity);
        let bus = Arc::new(Bus::new(self.telemetry_capacity));
        let store_stop = CancellationToken::new();
        let (durable, settles) = match self.durable {
            Some((store, settings)) => {
                let (d, rx) = durable::Durable::new(store, settings);
                (Some(d), Some(rx))
            }
            None => (None, None),
        };
        let (requests, timers) = RequestStore::new(self.store, bus.clone(), store_stop.clone());
        let timers = runtime.spawn(timers.instrument(tracing::info_span!("request_timers")));
        let shared = Arc::new(Shared {
            routing: ArcSwap::from_pointee(Routing::default()),
            ingress: tx,
            bus,
            requests: requests.clone(),
            store_stop: store_stop.clone(),
            side_tasks: Mutex::new(vec![timers]),
            event_providers: Mutex::new(Vec::new()),
            stores: Mutex::new(vec![Arc::downgrade(&requests)]),
            accepting: AtomicBool::new(true),
            control_lock: Mutex::new(()),
            drain: CancellationToken::new(),
            intake_done: CancellationToken::new(),
            abort: CancellationToken::new(),
            runtime: runtime.clone(),
            workers: Mutex::new(Vec::new()),
            dead_letters: crate::failure::DeadLetters::new(self.dead_letters),
            durable,
            settler: Mutex::new(None),
        });
        let control = Control {
            shared: shared.clone(),
        };
        // The hub's own event types, so that rules can route failures and status changes.
        let mut event_types = self.event_types;
        for builtin in [
            crate::failure::EXHAUSTED_EVENT,
            crate::failure::STATUS_CHANGED_EVENT,
        ] {
            if !event_types.iter().any(|d| d.name.as_str() == builtin) {
                event_types
                    .push(EventTypeDef::new(builtin).described("published by the hub itself"));
            }
        }
        let results = event_types
            .into_iter()
            .map(|d| control.register_event_type(d))
            .chain(
                self.action_types
                    .into_iter()
                    .map(|d| control.register_action_type(d)),
            )
            .chain(self.agents.into_iter().map(|s| control.register_agent(s)))
            .chain(
                self.providers
                    .into_iter()
                    .map(|(id, p, scope)| control.register_provider_arc(id, p, scope)),
            )
            .collect::<Vec<_>>();
        for r in results {
            if let Err(e) = r {
                problems.extend(e.problems);
            }
        }
        if !problems.is_empty() {
            // Stop the workers already started; they hold nothing yet.
            shared.accepting.store(false, Ordering::Release);
            shared.abort.cancel();
            store_stop.cancel();
            return Err(ConfigError { problems });
        }
        if let (Some(d), Some(rx)) = (&shared.durable, settles) {
            let writer = durable::start(&shared, d, rx);
            match shared.settler.lock() {
                Ok(mut g) => *g = Some(writer),
                Err(poisoned) => *poisoned.into_inner() = Some(writer),
            }
        }
        let router = Router::new(shared.clone());
        let task = runtime.spawn(router.run(rx).instrument(tracing::info_span!("hub_router")));
        Ok(Hub {
            shared,
            router: Some(task),
            grace: self.grace,
        })
    }
}
