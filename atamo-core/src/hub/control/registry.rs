//! Registering and removing event types, action types, agents, rule providers and event
//! providers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::Control;
use crate::agent::{AgentInfo, AgentSpec};
use crate::hub::definitions::{
    duplicate, not_found, ActionTypeDef, ConfigError, ConfigProblem, EventTypeDef,
};
use crate::hub::handle::HubHandle;
use crate::hub::provider::{EventProvider, ProviderLink};
use crate::hub::routing::{AgentEntry, AgentStats, ProviderEntry};
use crate::hub::supervise;
use crate::hub::worker::Worker;
use crate::ids::{ActionType, AgentId, EventType, ProviderId};
use crate::request::{RequestStore, StoreConfig};
use crate::rules::{ProviderScope, RuleProvider};
use crate::telemetry::TelemetryKind;

impl Control {
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
        let component = self
            .shared
            .components
            .register(format!("agent_worker:{id}"), false);
        let task = self
            .shared
            .runtime
            .spawn(worker.supervised(rx, component).instrument(span));
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
            keep_alive: crate::bounded::KeepAlive::saturating(cache.keep_alive).get(),
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
        let components = &self.shared.components;
        let timers = supervise::timers(
            timers,
            components.register(format!("request_timers:{name}"), false),
        );
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
        let component = components.register(format!("event_provider:{name}"), false);
        let task = self
            .shared
            .runtime
            .spawn(supervise::provider(provider, link, component).instrument(span));
        self.shared.tasks.track_side(task);
        tracing::debug!(provider = %name, "event provider attached");
        Ok(())
    }
}
