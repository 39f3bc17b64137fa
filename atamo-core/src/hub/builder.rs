//! Configuring and starting a hub.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::components::Components;
use super::control::Control;
use super::definitions::{ActionTypeDef, ConfigError, ConfigProblem, EventTypeDef};
use super::durable::{self, StoreSettings};
use super::lifecycle::{Lifecycle, Tasks};
use super::router;
use super::routing::Routing;
use super::running::Hub;
use super::shared::Shared;
use super::supervise;
use crate::agent::AgentSpec;
use crate::ids::ProviderId;
use crate::request::{RequestStore, StoreConfig};
use crate::rules::{ProviderScope, RuleProvider};
use crate::telemetry::Bus;

impl Hub {
    /// Starts configuring a hub.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
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
        // 0 is refused by `build`; past a million the queue would only hold memory.
        self.ingress_capacity = n.min(crate::bounded::QueueCapacity::MAX.get());
        self
    }

    /// How many telemetry batches each subscriber may fall behind before it misses some
    /// (default 1024; a batch holds the steps of up to a few hundred messages).
    pub fn telemetry_capacity(mut self, n: usize) -> Self {
        // Past a million batches a subscriber would hold gigabytes; the channel's own limit
        // is far above.
        self.telemetry_capacity = n.min(1 << 20);
        self
    }

    /// How many dead letters are kept (default 10,000); beyond it the oldest are dropped.
    pub fn dead_letter_capacity(mut self, n: usize) -> Self {
        self.dead_letters = n;
        self
    }

    /// How long in-flight actions may take to finish once shutdown begins (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = crate::bounded::Grace::saturating(grace).get();
        self
    }

    /// How long a finished request's answers are kept for clients that come back (default
    /// 5 minutes; a request may set its own with
    /// [`RequestOptions::keep_alive`](crate::RequestOptions::keep_alive)).
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.store.keep_alive = crate::bounded::KeepAlive::saturating(keep_alive).get();
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
        let lifecycle = Lifecycle::new();
        let store_stop = lifecycle.store_stop.clone();
        let (durable, settles) = match self.durable {
            Some((store, settings)) => {
                let (d, rx) = durable::Durable::new(store, settings);
                (Some(d), Some(rx))
            }
            None => (None, None),
        };
        let components = Components::new(durable.as_ref().map(|d| d.store.clone()));
        let (requests, timers) = RequestStore::new(self.store, bus.clone(), store_stop.clone());
        let timers = runtime.spawn(
            supervise::timers(timers, components.register("request_timers", false))
                .instrument(tracing::info_span!("request_timers")),
        );
        let tasks = Tasks::default();
        tasks.track_side(timers);
        let shared = Arc::new(Shared {
            routing: ArcSwap::from_pointee(Routing::default()),
            control_lock: Mutex::new(()),
            ingress: tx,
            bus,
            lifecycle,
            tasks,
            runtime: runtime.clone(),
            requests: requests.clone(),
            stores: Mutex::new(vec![Arc::downgrade(&requests)]),
            event_providers: Mutex::new(Vec::new()),
            dead_letters: crate::failure::DeadLetters::new(self.dead_letters),
            durable,
            components,
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
            shared.lifecycle.accepting.store(false, Ordering::Release);
            shared.lifecycle.abort.cancel();
            store_stop.cancel();
            return Err(ConfigError { problems });
        }
        if let (Some(d), Some(rx)) = (&shared.durable, settles) {
            let writer = durable::start(&shared, d, rx);
            shared.tasks.set_settler(writer);
        }
        let component = shared.components.register("router", true);
        let task = runtime.spawn(
            router::supervised(shared.clone(), rx, component)
                .instrument(tracing::info_span!("hub_router")),
        );
        Ok(Hub::new(shared, task, self.grace))
    }
}
