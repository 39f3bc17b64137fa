//! Operating the hub: control messages to agents, a stateful hub's store and audit log, dead
//! letters and their redrive, and steps recorded from outside.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::FutureExt;

use super::Control;
use crate::ids::AgentId;
use crate::telemetry::TelemetryKind;

impl Control {
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
        let dispatch = crate::hub::dispatch::Dispatch {
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
