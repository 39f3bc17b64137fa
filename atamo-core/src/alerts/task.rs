//! The monitor's task: reads telemetry and health samples, evaluates each agent, and raises and
//! resolves alerts.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::hub::{Control, HubHandle, TryPublishError};
use crate::ids::AgentId;
use crate::message::{Event, Principal};
use crate::telemetry::{TelemetryBatch, TelemetryKind, TelemetryRecvError, TelemetrySubscriber};

use super::active::{ActiveAlert, Shared};
use super::config::AlertConfig;
use super::names::{ALERT_EVENT_TYPE, ALERT_GROUP, ALERT_USER};
use super::units::lock;
use super::window::{AgentState, Kind, Level, Measure};

/// The most alert events waiting for room in the hub's intake.
pub(super) const OUTBOX_CAPACITY: usize = 1024;
/// How soon alert events that found the hub's intake full are tried again.
pub(super) const RETRY_DELAY: Duration = Duration::from_millis(50);

pub(super) enum Flow {
    Continue,
    Stop,
}

/// The monitor's task.
pub(super) struct Task {
    pub(super) control: Control,
    pub(super) handle: HubHandle,
    pub(super) config: AlertConfig,
    pub(super) epoch: Instant,
    pub(super) agents: BTreeMap<AgentId, AgentState>,
    pub(super) active: BTreeMap<(AgentId, Kind), ActiveAlert>,
    pub(super) shared: Arc<Shared>,
    pub(super) outbox: VecDeque<Event>,
    pub(super) touched: Vec<AgentId>,
}

impl Task {
    /// The monitor's loop. Its windows and alerts live in `self`, kept by its supervisor
    /// (`monitor.rs`), so that a loop restarted after a panic goes on with them.
    pub(super) async fn run(&mut self, sub: &mut TelemetrySubscriber, stop: &CancellationToken) {
        let every = self.config.sample_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::debug!(?every, "alert monitor started");
        loop {
            let retry = !self.outbox.is_empty();
            // The tick comes first so that a steady stream of telemetry cannot starve it.
            let flow = tokio::select! {
                biased;
                () = stop.cancelled() => Flow::Stop,
                _ = tick.tick() => self.on_tick(Instant::now()),
                r = sub.recv_batch() => match r {
                    Ok(batch) => self.on_batch(&batch, Instant::now()),
                    Err(TelemetryRecvError::Lagged { missed }) => {
                        self.shared.missed.fetch_add(missed, Ordering::Relaxed);
                        tracing::warn!(
                            missed,
                            "alert monitor fell behind telemetry; the calls in the missed steps \
                             are not in its windows"
                        );
                        Flow::Continue
                    }
                    Err(_) => Flow::Stop,
                },
                () = tokio::time::sleep(RETRY_DELAY), if retry => Flow::Continue,
            };
            if let Flow::Stop = flow {
                break;
            }
            self.flush();
        }
        tracing::debug!("alert monitor stopped");
    }

    pub(super) fn sec(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs()
    }

    /// The agent's state, made when the monitor first sees it.
    pub(super) fn ensure(&mut self, id: &AgentId, now: Instant) -> &mut AgentState {
        let (config, epoch) = (&self.config, self.epoch);
        self.agents.entry(id.clone()).or_insert_with(|| {
            let since = now.duration_since(epoch);
            // Watched from the first whole second after it was first seen.
            let start_sec = since.as_secs() + u64::from(since.subsec_nanos() > 0);
            AgentState::new(config.thresholds_for(id).clone(), start_sec)
        })
    }

    pub(super) fn on_batch(&mut self, batch: &TelemetryBatch, now: Instant) -> Flow {
        let sec = self.sec(now);
        for ev in &batch.events {
            match &ev.kind {
                TelemetryKind::ActionSucceeded { action, elapsed } => {
                    self.call(&action.agent, sec, false, *elapsed, now);
                }
                // A failed attempt that will be retried is a failed call all the same.
                TelemetryKind::ActionFailed {
                    action, elapsed, ..
                }
                | TelemetryKind::ActionRetrying {
                    action, elapsed, ..
                } => {
                    self.call(&action.agent, sec, true, *elapsed, now);
                }
                TelemetryKind::AgentRegistered { agent } => {
                    self.ensure(agent, now);
                }
                TelemetryKind::AgentUnregistered { agent } => {
                    self.forget(agent);
                }
                TelemetryKind::ShutdownStarted { .. } | TelemetryKind::Stopped { .. } => {
                    return Flow::Stop;
                }
                _ => {}
            }
        }
        let mut touched = std::mem::take(&mut self.touched);
        for id in &touched {
            let measures = match self.agents.get_mut(id) {
                Some(state) => {
                    state.touched = false;
                    [
                        (Kind::ErrorRate, state.error_rate(sec)),
                        (Kind::Latency, state.latency(sec)),
                        (Kind::Throughput, state.throughput(sec)),
                    ]
                }
                None => continue,
            };
            for (kind, m) in measures {
                self.apply(id, kind, m, now);
            }
        }
        touched.clear();
        self.touched = touched;
        Flow::Continue
    }

    pub(super) fn call(
        &mut self,
        agent: &AgentId,
        sec: u64,
        failed: bool,
        elapsed: Duration,
        now: Instant,
    ) {
        let state = self.ensure(agent, now);
        state.record(sec, failed, elapsed);
        if !state.touched {
            state.touched = true;
            self.touched.push(agent.clone());
        }
    }

    pub(super) fn on_tick(&mut self, now: Instant) -> Flow {
        let health = self.control.health();
        if !health.accepting {
            return Flow::Stop;
        }
        let sec = self.sec(now);
        for agent in &health.agents {
            self.ensure(&agent.id, now).queue = Some(agent.queue);
        }
        let present: HashSet<&AgentId> = health.agents.iter().map(|a| &a.id).collect();
        let gone: Vec<AgentId> = self
            .agents
            .keys()
            .filter(|id| !present.contains(id))
            .cloned()
            .collect();
        for id in &gone {
            self.forget(id);
        }
        let ids: Vec<AgentId> = self.agents.keys().cloned().collect();
        for id in ids {
            let measures = match self.agents.get_mut(&id) {
                Some(state) => {
                    state.prune(sec);
                    [
                        (Kind::ErrorRate, state.error_rate(sec)),
                        (Kind::Latency, state.latency(sec)),
                        (Kind::Throughput, state.throughput(sec)),
                        (Kind::Queue, state.queue_depth(now)),
                    ]
                }
                None => continue,
            };
            for (kind, m) in measures {
                self.apply(&id, kind, m, now);
            }
        }
        Flow::Continue
    }

    /// Forgets an agent that is no longer registered, resolving its active alerts.
    pub(super) fn forget(&mut self, id: &AgentId) {
        if self.agents.remove(id).is_none() {
            return;
        }
        let kinds: Vec<Kind> = self
            .active
            .keys()
            .filter(|(a, _)| a == id)
            .map(|(_, k)| *k)
            .collect();
        for kind in kinds {
            if let Some(alert) = self.active.remove(&(id.clone(), kind)) {
                let detail = format!("agent `{id}` is no longer registered");
                self.emit(kind, id, false, detail, alert.value, alert.threshold);
            }
        }
        self.publish_active();
    }

    pub(super) fn apply(&mut self, id: &AgentId, kind: Kind, m: Measure, now: Instant) {
        let key = (id.clone(), kind);
        match m.level {
            Level::Alarm if !self.active.contains_key(&key) => {
                let detail = m.describe(kind, true);
                self.active.insert(
                    key,
                    ActiveAlert {
                        alert: kind.alert(),
                        agent: id.clone(),
                        since: now,
                        value: m.value,
                        threshold: m.threshold,
                        detail: detail.clone(),
                    },
                );
                self.emit(kind, id, true, detail, m.value, m.threshold);
                self.publish_active();
            }
            Level::Clear if self.active.contains_key(&key) => {
                self.active.remove(&key);
                let detail = m.describe(kind, false);
                self.emit(kind, id, false, detail, m.value, m.threshold);
                self.publish_active();
            }
            _ => {}
        }
    }

    pub(super) fn publish_active(&self) {
        *lock(&self.shared.active) = self.active.values().cloned().collect();
    }

    pub(super) fn emit(
        &mut self,
        kind: Kind,
        agent: &AgentId,
        raised: bool,
        detail: String,
        value: f64,
        threshold: f64,
    ) {
        let alert = kind.alert();
        if raised {
            tracing::warn!(%alert, %agent, value, threshold, %detail, "alert raised");
        } else {
            tracing::info!(%alert, %agent, value, threshold, %detail, "alert resolved");
        }
        self.control.record(TelemetryKind::Alert {
            alert,
            agent: Some(agent.clone()),
            raised,
            detail: detail.clone(),
        });
        let payload = json!({
            "alert": alert,
            "agent": agent.as_str(),
            "raised": raised,
            "detail": detail,
            "value": value,
            "threshold": threshold,
        });
        let principal = Principal::user(ALERT_USER).in_group(ALERT_GROUP);
        if self.outbox.len() >= OUTBOX_CAPACITY {
            self.outbox.pop_front();
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert outbox full; the oldest alert event was dropped");
        }
        self.outbox
            .push_back(Event::new(ALERT_EVENT_TYPE, principal, payload));
    }

    /// Hands waiting alert events to the hub, in order, until its intake is full.
    pub(super) fn flush(&mut self) {
        while let Some(event) = self.outbox.pop_front() {
            match self.handle.try_publish(event) {
                Ok(_) => {}
                Err(TryPublishError::Full { event }) => {
                    self.outbox.push_front(event);
                    return;
                }
                Err(e) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "alert event not published");
                }
            }
        }
    }
}
