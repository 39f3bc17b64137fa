//! Whether the agent takes calls: its circuit breaker, and its status (automatic, from the
//! outcomes of calls and health probes, or set by an operator).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::breaker::Breaker;
use super::status::announce;
use crate::agent::AgentInfo;
use crate::hub::handle::HubHandle;
use crate::hub::routing::AgentStats;
use crate::ids::ActionId;
use crate::outcome::{AgentError, Reply};
use crate::status::AgentState;
use crate::telemetry::{Sink, TelemetryKind};

pub(super) struct Availability {
    info: Arc<AgentInfo>,
    stats: Arc<AgentStats>,
    /// Where status changes are announced.
    hub: HubHandle,
    /// The circuit breaker, when the agent has one.
    breaker: Option<Breaker>,
    /// Whether the automatic status is `Online` (saves a lock per successful call).
    online: bool,
}

impl Availability {
    pub(super) fn new(info: Arc<AgentInfo>, stats: Arc<AgentStats>, hub: HubHandle) -> Self {
        let breaker = info.breaker.clone().map(Breaker::new);
        Self {
            info,
            stats,
            hub,
            breaker,
            online: false,
        }
    }

    /// Whether the agent takes a call now; in half-open state, the first one asking becomes
    /// the probe.
    pub(super) fn may_call(&mut self, action: ActionId) -> bool {
        match self.stats.status.manual() {
            Some(AgentState::Offline) => return false,
            Some(_) => return true,
            None => {}
        }
        match &mut self.breaker {
            None => true,
            Some(breaker) => breaker.admits(action),
        }
    }

    /// Until when the circuit stays open, if it is open.
    pub(super) fn open_until(&self) -> Option<Instant> {
        self.breaker.as_ref().and_then(Breaker::open_until)
    }

    /// Why the agent takes no calls now.
    pub(super) fn unavailable_reason(&self) -> String {
        if self.stats.status.manual() == Some(AgentState::Offline) {
            "the agent was set offline".to_owned()
        } else {
            "the agent's circuit is open".to_owned()
        }
    }

    /// The cool-down has passed: let one probe through.
    pub(super) fn half_open(&mut self) {
        self.online = false;
        if let Some(breaker) = &mut self.breaker {
            breaker.half_open();
        }
        self.set_status(AgentState::Degraded, "circuit half-open: probing");
    }

    fn set_status(&self, state: AgentState, reason: impl Into<String>) {
        if let Some((from, status)) = self.stats.status.set_auto(&self.info, state, reason) {
            announce(&self.hub, from, status);
        }
    }

    fn set_online(&mut self, reason: &str) {
        if !self.online {
            self.online = true;
            self.set_status(AgentState::Online, reason);
        }
    }

    fn open(&mut self, reason: String) {
        if let Some(breaker) = &mut self.breaker {
            breaker.open();
        }
        self.online = false;
        self.set_status(AgentState::Offline, reason);
    }

    /// A health probe ended: recorded, and counted like a call (by the breaker while its
    /// circuit is closed, or by the status when the agent has no breaker).
    pub(super) fn checked(
        &mut self,
        outcome: Result<Value, AgentError>,
        elapsed: Duration,
        sink: &mut Sink,
    ) {
        let failed = outcome.is_err();
        let reason = match &outcome {
            Err(e) => format!("health check failed: {e}"),
            Ok(_) => String::new(),
        };
        sink.emit(
            TelemetryKind::AgentHealthChecked {
                agent: self.info.id.clone(),
                outcome,
                elapsed,
            },
            None,
        );
        match &mut self.breaker {
            Some(breaker) if breaker.is_closed() => {
                if let Some(why) = breaker.record_probe(failed) {
                    self.open(format!("circuit open: {why} ({reason})"));
                } else if failed {
                    self.online = false;
                    self.set_status(AgentState::Degraded, reason);
                } else {
                    self.set_online("health check passed");
                }
            }
            // Open or half-open: only a call decides.
            Some(_) => {}
            None if failed => {
                self.online = false;
                self.set_status(AgentState::Degraded, reason);
            }
            None => self.set_online("health check passed"),
        }
    }

    /// Feeds a call's outcome to the breaker and the status.
    pub(super) fn observe(&mut self, action: ActionId, result: &Result<Reply, AgentError>) {
        // Only a retryable failure says something about the agent; a permanent error is about
        // the action (the agent did answer), a cancellation about the client.
        let failed = match result {
            Ok(_) => false,
            Err(e) if e.is_retryable() => true,
            Err(AgentError::Cancelled) => {
                if let Some(b) = &mut self.breaker {
                    b.probe_cancelled(action);
                }
                return;
            }
            Err(_) => {
                let probing = self.breaker.as_ref().is_some_and(|b| b.is_probe(action));
                if !probing {
                    return;
                }
                false
            }
        };
        let Some(breaker) = &mut self.breaker else {
            if !failed {
                self.set_online("calls succeed");
            }
            return;
        };
        match breaker.judge(action, failed) {
            Some(reason) => self.open(format!("circuit open: {reason}")),
            None if !failed && breaker.is_closed() => self.set_online("calls succeed"),
            None => {}
        }
    }
}
