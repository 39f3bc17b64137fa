//! Listing what is registered, the hub's health, its components and readiness, agents'
//! statuses, and telemetry.

use std::sync::atomic::Ordering;

use super::Control;
use crate::agent::AgentInfo;
use crate::hub::definitions::not_found;
use crate::hub::definitions::{ActionTypeDef, ConfigError, EventTypeDef, ProviderInfo};
use crate::hub::handle::HubHandle;
use crate::hub::health::{AgentHealth, HealthSnapshot, QueueDepth};
use crate::ids::{AgentId, ProviderId, RuleId};
use crate::rules::RuleInfo;
use crate::status::{ComponentStatus, NotReady, Readiness};
use crate::telemetry::TelemetrySubscriber;

impl Control {
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

    /// Every long-lived component of the hub and how it is doing, by name: the router, each
    /// agent's worker, the request stores' timers, the event providers, an alert monitor, and
    /// in a stateful hub its committer, settle writer, claimer, heartbeat, pruner and store
    /// (the store's [`condition`](crate::store::Maintenance::condition), read now).
    pub fn components(&self) -> Vec<ComponentStatus> {
        self.shared.components.list()
    }

    /// Whether the hub can accept work and keep it, with the reasons when it cannot: it is
    /// shutting down, or an essential component is not working (the router or the committer
    /// stopped, the settle writer keeps panicking, the store's condition is failed). While
    /// it cannot, publishing is refused with
    /// [`PublishError::Unavailable`](crate::PublishError::Unavailable).
    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if !self.shared.lifecycle.accepting.load(Ordering::Acquire) {
            reasons.push(NotReady {
                component: "hub".into(),
                reason: "shutting down".into(),
            });
        }
        reasons.extend(self.shared.components.reasons());
        Readiness::from_reasons(reasons)
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
            crate::hub::worker::announce(&HubHandle::from_shared(&self.shared), from, status);
        }
        Ok(())
    }
}
