//! The controller's side: registering what the hub routes with, listing it, and watching it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::definitions::{
    duplicate, not_found, ActionTypeDef, ConfigError, ConfigProblem, EventTypeDef, ProviderInfo,
};
use super::handle::HubHandle;
use super::health::{AgentHealth, HealthSnapshot, QueueDepth};
use super::provider::{EventProvider, ProviderLink};
use super::routing::{AgentEntry, AgentStats, ProviderEntry, Routing};
use super::shared::Shared;
use super::worker::Worker;
use crate::agent::{AgentInfo, AgentSpec};
use crate::ids::{ActionType, AgentId, EventType, ProviderId, RuleId};
use crate::request::{RequestStore, StoreConfig};
use crate::rules::{ProviderScope, RuleInfo, RuleProvider};
use crate::telemetry::{TelemetryKind, TelemetrySubscriber};

/// The controller's handle: registers and removes event types, action types, agents and rule
/// providers at runtime, lists them, reports health and hands out telemetry subscriptions.
///
/// Every change is atomic: the router sees the registry before or after it, never halfway.
/// Cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Routing) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let _serial = match self.shared.control_lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**self.shared.routing.load()).clone();
        let out = f(&mut next)?;
        next.reindex();
        self.shared.routing.store(Arc::new(next));
        Ok(out)
    }

    /// Registers an event type.
    pub fn register_event_type(&self, def: EventTypeDef) -> Result<(), ConfigError> {
        def.name.validate().map_err(ConfigProblem::from)?;
        self.update(|r| {
            if r.event_types.contains_key(&def.name) {
                return Err(duplicate("event type", &def.name).into());
            }
            r.event_types.insert(def.name.clone(), Arc::new(def));
            Ok(())
        })
    }

    /// Removes an event type; events of that type are rejected from then on.
    pub fn unregister_event_type(&self, name: &EventType) -> Result<EventTypeDef, ConfigError> {
        self.update(|r| {
            r.event_types
                .remove(name)
                .map(|d| (*d).clone())
                .ok_or_else(|| not_found("event type", name).into())
        })
    }

    /// Registers an action type.
    pub fn register_action_type(&self, def: ActionTypeDef) -> Result<(), ConfigError> {
        def.name.validate().map_err(ConfigProblem::from)?;
        self.update(|r| {
            if r.action_types.contains_key(&def.name) {
                return Err(duplicate("action type", &def.name).into());
            }
            r.action_types.insert(def.name.clone(), def);
            Ok(())
        })
    }

    /// Removes an action type that no agent handles.
    pub fn unregister_action_type(&self, name: &ActionType) -> Result<ActionTypeDef, ConfigError> {
        self.update(|r| {
            if let Some(a) = r.agents.values().find(|a| a.info.handles.contains(name)) {
                return Err(ConfigProblem::ActionTypeInUse {
                    action_type: name.clone(),
                    agent: a.info.id.clone(),
                }
                .into());
            }
            r.action_types
                .remove(name)
                .ok_or_else(|| not_found("action type", name).into())
        })
    }

    /// Registers an agent and starts its worker. Every problem with the spec is reported.
    pub fn register_agent(&self, spec: AgentSpec) -> Result<(), ConfigError> {
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            return Err(ConfigProblem::ShuttingDown.into());
        }
        let AgentSpec { info, agent } = spec;
        let id = info.id.clone();
        let stats = Arc::new(AgentStats::default());
        let (tx, rx) = mpsc::channel(info.queue_capacity.max(1));
        let info = Arc::new(info);
        self.update(|r| {
            let mut problems = Vec::new();
            if let Err(e) = info.id.validate() {
                problems.push(e.into());
            }
            if r.agents.contains_key(&info.id) {
                problems.push(duplicate("agent", &info.id));
            }
            if info.handles.is_empty() {
                problems.push(ConfigProblem::NoActionTypes {
                    agent: info.id.clone(),
                });
            }
            for t in &info.handles {
                if !r.action_types.contains_key(t) {
                    problems.push(ConfigProblem::UnknownActionType {
                        agent: info.id.clone(),
                        action_type: t.clone(),
                    });
                }
            }
            for (what, n) in [
                ("concurrency", info.concurrency),
                ("queue capacity", info.queue_capacity),
            ] {
                if n == 0 {
                    problems.push(ConfigProblem::ZeroLimit {
                        agent: info.id.clone(),
                        what,
                    });
                }
            }
            if !problems.is_empty() {
                return Err(ConfigError { problems });
            }
            let entry = AgentEntry {
                info: info.clone(),
                agent: agent.clone(),
                tx,
                stats: stats.clone(),
            };
            r.agents.insert(info.id.clone(), Arc::new(entry));
            Ok(())
        })?;
        let worker = Worker::new(info, agent, stats, HubHandle::from_shared(&self.shared));
        let span = tracing::info_span!("agent_worker", agent = %id);
        let task = self.shared.runtime.spawn(worker.run(rx).instrument(span));
        self.shared.tasks.track_worker(task);
        tracing::debug!(agent = %id, "agent registered");
        self.shared
            .bus
            .emit(TelemetryKind::AgentRegistered { agent: id });
        Ok(())
    }

    /// Removes an agent. Actions already queued for it are still delivered; its worker then
    /// stops.
    pub fn unregister_agent(&self, id: &AgentId) -> Result<AgentInfo, ConfigError> {
        let info = self.update(|r| {
            r.agents
                .remove(id)
                .map(|e| (*e.info).clone())
                .ok_or_else(|| not_found("agent", id).into())
        })?;
        self.shared
            .bus
            .emit(TelemetryKind::AgentUnregistered { agent: id.clone() });
        Ok(info)
    }

    /// Registers a rule provider for all events or for some event types.
    pub fn register_provider(
        &self,
        id: impl Into<ProviderId>,
        provider: impl RuleProvider,
        scope: ProviderScope,
    ) -> Result<(), ConfigError> {
        self.register_provider_arc(id, Arc::new(provider), scope)
    }

    /// Registers a rule provider already behind an `Arc`.
    pub fn register_provider_arc(
        &self,
        id: impl Into<ProviderId>,
        provider: Arc<dyn RuleProvider>,
        scope: ProviderScope,
    ) -> Result<(), ConfigError> {
        let id = id.into();
        self.update(|r| {
            let mut problems = Vec::new();
            if let Err(e) = id.validate() {
                problems.push(e.into());
            }
            if r.providers.iter().any(|p| p.id == id) {
                problems.push(duplicate("provider", &id));
            }
            if let ProviderScope::EventTypes(types) = &scope {
                for t in types {
                    if !r.event_types.contains_key(t) {
                        problems.push(ConfigProblem::UnknownScopeType {
                            provider: id.clone(),
                            event_type: t.clone(),
                        });
                    }
                }
            }
            if !problems.is_empty() {
                return Err(ConfigError { problems });
            }
            r.providers.push(Arc::new(ProviderEntry {
                id: id.clone(),
                provider,
                scope,
            }));
            Ok(())
        })?;
        self.shared
            .bus
            .emit(TelemetryKind::ProviderRegistered { provider: id });
        Ok(())
    }

    /// Removes a rule provider.
    pub fn unregister_provider(&self, id: &ProviderId) -> Result<(), ConfigError> {
        self.update(|r| {
            let before = r.providers.len();
            r.providers.retain(|p| &p.id != id);
            if r.providers.len() == before {
                return Err(not_found("provider", id).into());
            }
            Ok(())
        })?;
        self.shared.bus.emit(TelemetryKind::ProviderUnregistered {
            provider: id.clone(),
        });
        Ok(())
    }

    /// Attaches an event provider: registers the event types it brings (all or none, every
    /// problem reported), gives it its own level-1 cache, and runs it until the hub stops.
    pub fn attach(&self, provider: impl EventProvider) -> Result<(), ConfigError> {
        self.attach_arc(Arc::new(provider))
    }

    /// [`attach`](Self::attach) for a provider already behind an `Arc`.
    pub fn attach_arc(&self, provider: Arc<dyn EventProvider>) -> Result<(), ConfigError> {
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            return Err(ConfigProblem::ShuttingDown.into());
        }
        let name: Arc<str> = Arc::from(provider.name());
        let cache = provider.cache();
        let types = provider.event_types();
        {
            let mut names = match self.shared.event_providers.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let mut problems = Vec::new();
            if name.is_empty() {
                problems.push(ConfigProblem::Setting(
                    "event provider name is empty".into(),
                ));
            }
            if names.contains(&name) {
                problems.push(duplicate("event provider", &name));
            }
            if cache.answer_buffer == 0 {
                problems.push(ConfigProblem::Setting(format!(
                    "event provider `{name}`: answer buffer must be at least 1"
                )));
            }
            if !problems.is_empty() {
                return Err(ConfigError { problems });
            }
            self.update(|r| {
                let mut problems = Vec::new();
                for def in &types {
                    if let Err(e) = def.name.validate() {
                        problems.push(e.into());
                    } else if r.event_types.contains_key(&def.name) {
                        problems.push(duplicate("event type", &def.name));
                    }
                }
                if !problems.is_empty() {
                    return Err(ConfigError { problems });
                }
                for def in types {
                    r.event_types.insert(def.name.clone(), Arc::new(def));
                }
                Ok(())
            })?;
            names.push(name.clone());
        }
        let store_config = StoreConfig {
            keep_alive: cache.keep_alive,
            max_kept_bytes: cache.max_bytes,
            answer_buffer: cache.answer_buffer,
            tombstones: 1_000_000,
        };
        let (store, timers) = RequestStore::new(
            store_config,
            self.shared.bus.clone(),
            self.shared.lifecycle.store_stop.clone(),
        );
        match self.shared.stores.lock() {
            Ok(mut g) => g.push(Arc::downgrade(&store)),
            Err(poisoned) => poisoned.into_inner().push(Arc::downgrade(&store)),
        }
        let span = tracing::info_span!("event_provider", provider = %name);
        let timers = self.shared.runtime.spawn(timers.instrument(span.clone()));
        self.shared.tasks.track_side(timers);
        let link = ProviderLink {
            name: name.clone(),
            hub: HubHandle {
                shared: self.shared.clone(),
                store,
            },
            stop: self.shared.lifecycle.drain.clone(),
        };
        let task = self
            .shared
            .runtime
            .spawn(provider.run(link).instrument(span));
        self.shared.tasks.track_side(task);
        tracing::debug!(provider = %name, "event provider attached");
        Ok(())
    }

    /// The names of the attached event providers (the in-process one is not listed).
    pub fn event_providers(&self) -> Vec<String> {
        match self.shared.event_providers.lock() {
            Ok(g) => g.iter().map(|n| n.to_string()).collect(),
            Err(poisoned) => poisoned
                .into_inner()
                .iter()
                .map(|n| n.to_string())
                .collect(),
        }
    }

    /// The registered event types, by name.
    pub fn event_types(&self) -> Vec<EventTypeDef> {
        let r = self.shared.routing.load();
        let mut v: Vec<_> = r.event_types.values().map(|d| (**d).clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The registered action types, by name.
    pub fn action_types(&self) -> Vec<ActionTypeDef> {
        self.shared
            .routing
            .load()
            .action_types
            .values()
            .cloned()
            .collect()
    }

    /// The registered agents, by id.
    pub fn agents(&self) -> Vec<AgentInfo> {
        let r = self.shared.routing.load();
        let mut v: Vec<_> = r.agents.values().map(|a| (*a.info).clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The registered rule providers, in the order they are asked.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.shared
            .routing
            .load()
            .providers
            .iter()
            .map(|p| ProviderInfo {
                id: p.id.clone(),
                scope: p.scope.clone(),
            })
            .collect()
    }

    /// Every rule every provider lists, with the provider that holds it.
    pub fn rules(&self) -> Vec<(ProviderId, RuleInfo)> {
        let r = self.shared.routing.load();
        r.providers
            .iter()
            .flat_map(|p| p.provider.rules().into_iter().map(|i| (p.id.clone(), i)))
            .collect()
    }

    /// Looks up one rule by id across providers.
    pub fn rule(&self, id: &RuleId) -> Option<(ProviderId, RuleInfo)> {
        self.rules().into_iter().find(|(_, r)| &r.id == id)
    }

    /// Queue depths, agents and in-flight actions now.
    pub fn health(&self) -> HealthSnapshot {
        let r = self.shared.routing.load();
        let mut agents: Vec<_> = r
            .agents
            .values()
            .map(|a| AgentHealth {
                id: a.info.id.clone(),
                queue: QueueDepth {
                    len: a.tx.max_capacity() - a.tx.capacity(),
                    capacity: a.tx.max_capacity(),
                },
                in_flight: a.stats.in_flight.load(Ordering::Relaxed),
                succeeded: a.stats.succeeded.load(Ordering::Relaxed),
                failed: a.stats.failed.load(Ordering::Relaxed),
            })
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let ingress = &self.shared.ingress;
        HealthSnapshot {
            accepting: self.shared.lifecycle.accepting.load(Ordering::Acquire),
            ingress: QueueDepth {
                len: ingress.max_capacity() - ingress.capacity(),
                capacity: ingress.max_capacity(),
            },
            in_flight_actions: agents.iter().map(|a| a.in_flight).sum(),
            queued_actions: agents.iter().map(|a| a.queue.len).sum(),
            agents,
            telemetry_subscribers: self.shared.bus.subscriber_count(),
            requests_running: self.shared.requests.running(),
            requests_kept: self.shared.requests.kept(),
        }
    }

    /// Subscribes to all telemetry from now on.
    pub fn subscribe(&self) -> TelemetrySubscriber {
        self.shared.bus.subscribe()
    }

    /// Every agent's status.
    pub fn agent_statuses(&self) -> Vec<crate::failure::AgentStatus> {
        self.shared
            .routing
            .load()
            .agents
            .values()
            .map(|e| e.stats.status.visible(&e.info))
            .collect()
    }

    /// One agent's status.
    pub fn agent_status(&self, id: &AgentId) -> Option<crate::failure::AgentStatus> {
        let routing = self.shared.routing.load();
        let e = routing.agents.get(id)?;
        Some(e.stats.status.visible(&e.info))
    }

    /// Sets an agent's status by hand: `Offline` stops its traffic (its actions wait, or go to
    /// a rule's fallback), `Online` lets traffic through whatever its circuit says. The manual
    /// status wins over automatic changes until [`Control::clear_agent_status`].
    pub fn set_agent_status(
        &self,
        id: &AgentId,
        state: crate::failure::AgentState,
        reason: impl Into<String>,
    ) -> Result<(), ConfigError> {
        self.change_status(id, Some((state, reason.into())))
    }

    /// Hands an agent's status back to its circuit breaker and health checks.
    pub fn clear_agent_status(&self, id: &AgentId) -> Result<(), ConfigError> {
        self.change_status(id, None)
    }

    fn change_status(
        &self,
        id: &AgentId,
        manual: Option<(crate::failure::AgentState, String)>,
    ) -> Result<(), ConfigError> {
        let routing = self.shared.routing.load();
        let e = routing
            .agents
            .get(id)
            .ok_or_else(|| ConfigError::from(not_found("agent", id)))?;
        if let Some((from, status)) = e.stats.status.set_manual(&e.info, manual) {
            super::worker::announce(&HubHandle::from_shared(&self.shared), from, status);
        }
        Ok(())
    }

    /// Sends an agent a control message and waits (up to `timeout`) for its acknowledgement.
    /// Both the message and the outcome are recorded in telemetry.
    pub async fn send_control(
        &self,
        id: &AgentId,
        message: serde_json::Value,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value, crate::agent::AgentError> {
        let agent = {
            let routing = self.shared.routing.load();
            let Some(entry) = routing.agents.get(id) else {
                return Err(crate::agent::AgentError::permanent(format!(
                    "agent `{id}` is not registered"
                )));
            };
            entry.agent.clone()
        };
        let reply = agent.control(message.clone());
        let outcome =
            match tokio::time::timeout(timeout, AssertUnwindSafe(reply).catch_unwind()).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => Err(crate::agent::AgentError::Panicked {
                    message: crate::outcome::panic_message(&*panic),
                }),
                Err(_) => Err(crate::agent::AgentError::Timeout { after: timeout }),
            };
        self.shared.bus.emit(TelemetryKind::AgentControlled {
            agent: id.clone(),
            message,
            outcome: outcome.clone(),
        });
        outcome
    }

    /// The store of a stateful hub (`None` for a stateless one): its audit log, dead letters,
    /// stats and integrity check.
    pub fn store(&self) -> Option<Arc<dyn crate::store::Store>> {
        self.shared.durable.as_ref().map(|d| d.store.clone())
    }

    /// This node's name in the store of a stateful hub.
    pub fn node(&self) -> Option<crate::store::NodeId> {
        self.shared.durable.as_ref().map(|d| d.node().clone())
    }

    /// Settles the store refused because this node's lease had been taken over (the action
    /// had been given to another node, whose outcome counts).
    pub fn lost_leases(&self) -> u64 {
        self.shared
            .durable
            .as_ref()
            .map_or(0, |d| d.lost_leases.load(Ordering::Relaxed))
    }

    /// The audit log of a stateful hub: every step of every message, newest first, filtered
    /// by `query`. A stateless hub keeps no audit log and answers with an empty page.
    pub async fn audit(
        &self,
        query: crate::store::AuditQuery,
    ) -> Result<crate::store::Page<crate::store::AuditRecord>, crate::store::StoreError> {
        match &self.shared.durable {
            Some(d) => d.store.audit(query).await,
            None => Ok(crate::store::Page {
                items: Vec::new(),
                next: None,
            }),
        }
    }

    /// The actions that failed for good, oldest first.
    pub fn dead_letters(&self) -> Vec<crate::failure::DeadLetter> {
        self.shared.dead_letters.list()
    }

    /// One dead letter, by its action's id.
    pub fn dead_letter(&self, action: crate::ids::ActionId) -> Option<crate::failure::DeadLetter> {
        self.shared.dead_letters.get(action)
    }

    /// Sends a dead letter to its agent again, as attempt 1 of the same action (same id), and
    /// removes it from the store. Its request, if it had one, has ended long ago: answers go
    /// nowhere, the outcome shows in telemetry. Waits while the agent's queue is full.
    pub async fn redrive(
        &self,
        action: crate::ids::ActionId,
    ) -> Result<(), crate::failure::RedriveError> {
        use crate::failure::RedriveError;
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            return Err(RedriveError::ShuttingDown);
        }
        if let Some(durable) = &self.shared.durable {
            // A durable dead letter is made ready in the store, and the next claim runs it.
            match durable.store.redrive(action).await {
                Ok(true) => {
                    let letter = self.shared.dead_letters.take(action);
                    if let Some(letter) = letter {
                        self.shared.bus.emit(TelemetryKind::ActionRedriven {
                            action: letter.action.meta.clone(),
                        });
                    }
                    durable.wake.notify_one();
                    return Ok(());
                }
                Ok(false) => {}
                Err(error) => return Err(RedriveError::Store(error)),
            }
        }
        let letter = self
            .shared
            .dead_letters
            .take(action)
            .ok_or(RedriveError::NotFound(action))?;
        let agent = letter.action.agent().clone();
        let Some(entry) = self.shared.routing.load().agents.get(&agent).cloned() else {
            self.shared.dead_letters.put_back(letter);
            return Err(RedriveError::AgentGone(agent));
        };
        let mut meta = (*letter.action.meta).clone();
        meta.attempt = 1;
        let action = crate::message::Action {
            meta: Arc::new(meta),
            payload: letter.action.payload.clone(),
        };
        self.shared.bus.emit(TelemetryKind::ActionRedriven {
            action: action.meta.clone(),
        });
        let dispatch = super::dispatch::Dispatch {
            action,
            monitor: None,
            request: None,
            sharing: Default::default(),
            retry: None,
            fallback: None,
            first_attempt: None,
            lease: None,
        };
        if let Err(returned) = entry.tx.send(dispatch).await {
            let d = returned.0;
            self.shared
                .dead_letters
                .put_back(crate::failure::DeadLetter {
                    action: d.action,
                    ..letter
                });
            return Err(RedriveError::AgentGone(agent));
        }
        Ok(())
    }

    /// Records a step that happened outside the hub's own machinery (a plugin loaded, an
    /// agent's process restarted, an alert) in the telemetry stream.
    pub fn record(&self, kind: TelemetryKind) {
        self.shared.bus.emit(kind);
    }
}
