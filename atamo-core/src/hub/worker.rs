//! One long-lived task per agent: takes dispatched actions from the agent's queue in batches and
//! runs up to `concurrency` calls at once.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatch;
use super::durable::Durable;
use super::handle::HubHandle;
use super::lifecycle::WorkerReport;
use super::routing::AgentStats;
use crate::agent::{Agent, AgentError, AgentInfo, CallContext, Reply};
use crate::outcome::panic_message;

/// A call in flight, owning what it borrows.
type AgentFuture = Pin<Box<dyn Future<Output = Result<Reply, AgentError>> + Send + 'static>>;

/// A health probe in flight: `None` when the agent has no probe.
type ProbeFuture =
    Pin<Box<dyn Future<Output = Option<Result<Value, AgentError>>> + Send + 'static>>;
use crate::failure::{
    AgentState, AgentStatus, BreakerPolicy, EXHAUSTED_EVENT, RETRIES_EXHAUSTED_ALERT,
    STATUS_CHANGED_EVENT,
};
use crate::ids::{ActionId, ActionType, TenantId, UserId};
use crate::message::Action;
use crate::message::Timestamp;
use crate::message::{Event, Origin};
use crate::publish::Publisher;
use crate::request::{CallGroup, RequestEntry, RequestSink, RequestState};
use crate::rules::ShareScope;
use crate::store::{later, ResultRecord, Settlement, WriteBatch};
use crate::telemetry::{AbandonReason, Sink, TelemetryKind};
use tokio_util::time::DelayQueue;

const BATCH: usize = 256;

/// A failed call waiting for its next attempt.
struct Retry {
    dispatch: Dispatch,
    group: Option<GroupRef>,
}

/// An action waiting for its agent to take calls again (circuit open, or offline by hand).
enum Held {
    New(Dispatch),
    Retry(Retry),
}

impl Held {
    fn dispatch(&self) -> &Dispatch {
        match self {
            Held::New(d) => d,
            Held::Retry(r) => &r.dispatch,
        }
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen { probe: Option<ActionId> },
}

/// A circuit breaker over the agent's recent calls (see [`BreakerPolicy`]).
struct Breaker {
    policy: BreakerPolicy,
    /// The last `window` outcomes, true for a failure.
    window: std::collections::VecDeque<bool>,
    failures: usize,
    consecutive: u32,
    circuit: Circuit,
}

impl Breaker {
    fn new(policy: BreakerPolicy) -> Self {
        Self {
            window: std::collections::VecDeque::with_capacity(policy.window.max(1)),
            policy,
            failures: 0,
            consecutive: 0,
            circuit: Circuit::Closed,
        }
    }

    /// Records an outcome; returns why the circuit should open, if it should.
    fn record(&mut self, failed: bool) -> Option<String> {
        if self.window.len() >= self.policy.window.max(1) && self.window.pop_front() == Some(true) {
            self.failures -= 1;
        }
        self.window.push_back(failed);
        if failed {
            self.failures += 1;
            self.consecutive += 1;
        } else {
            self.consecutive = 0;
        }
        if !failed {
            return None;
        }
        if self.policy.consecutive_failures > 0
            && self.consecutive >= self.policy.consecutive_failures
        {
            return Some(format!("{} failures in a row", self.consecutive));
        }
        let n = self.window.len();
        if n >= self.policy.min_calls.max(1)
            && self.failures as f64 / n as f64 >= self.policy.failure_ratio
        {
            return Some(format!("{} of the last {n} calls failed", self.failures));
        }
        None
    }

    fn reset(&mut self) {
        self.window.clear();
        self.failures = 0;
        self.consecutive = 0;
    }
}

pub(crate) struct Worker {
    info: Arc<AgentInfo>,
    agent: Arc<dyn Agent>,
    stats: Arc<AgentStats>,
    hub: HubHandle,
    /// What calls publish their follow-up events through.
    publisher: Publisher,
    // Shared by every call of this worker: cloning an `Arc` is cheaper than cloning a token.
    cancel: Arc<CancellationToken>,
    /// Calls in flight that identical requests may join, by coalescing key. Owned by this task.
    calls: HashMap<u64, (Identity, Arc<CallGroup>)>,
    /// The dispatches of requests that joined a call in flight, by its key.
    waiting: HashMap<u64, Vec<Dispatch>>,
    /// Answers of recent successful shareable calls, for rules with a result TTL.
    recent: HashMap<u64, (Identity, Recent)>,
    /// When each failed call waiting for its next attempt is due, by key into `waiting_retry`.
    retries: DelayQueue<u64>,
    /// Failed calls waiting for their next attempt (kept here so shutdown can list them).
    waiting_retry: HashMap<u64, Retry>,
    next_retry: u64,
    /// The circuit breaker, when the agent has one.
    breaker: Option<Breaker>,
    /// Actions waiting for the agent to take calls again.
    held: std::collections::VecDeque<Held>,
    /// Whether the automatic status is `Online` (saves a lock per successful call).
    online: bool,
    /// In a stateful hub: the store, and the settles of this round, written at its end.
    durable: Option<Arc<Durable>>,
    settles: WriteBatch,
}

/// A recent call's answers, reusable until `until`.
struct Recent {
    until: Instant,
    from: ActionId,
    answers: Vec<Arc<Value>>,
    last: Option<Value>,
}

/// The most recent results kept per agent; beyond it, expired ones are pruned and new ones are
/// not kept until there is room.
const RECENT_CAP: usize = 10_000;

/// A request call's group and the key it is found under.
struct GroupRef {
    group: Arc<CallGroup>,
    key: Option<u64>,
}

type Done = (
    Dispatch,
    Duration,
    Result<Reply, AgentError>,
    Option<GroupRef>,
);

/// A running call. Polled once inline first: an agent that completes without waiting never
/// touches the `FuturesUnordered`.
struct InFlight {
    fut: CatchUnwind<AssertUnwindSafe<AgentFuture>>,
    dispatch: Option<Dispatch>,
    group: Option<GroupRef>,
    started: Instant,
}

impl Future for InFlight {
    type Output = Done;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let result = match Pin::new(&mut self.fut).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(panic)) => Err(AgentError::Panicked {
                message: panic_message(&*panic),
            }),
        };
        match self.dispatch.take() {
            Some(d) => Poll::Ready((d, self.started.elapsed(), result, self.group.take())),
            // Polled again after completion: nothing more to give.
            None => Poll::Pending,
        }
    }
}

impl Worker {
    pub(crate) fn new(
        info: Arc<AgentInfo>,
        agent: Arc<dyn Agent>,
        stats: Arc<AgentStats>,
        hub: HubHandle,
    ) -> Self {
        let cancel = Arc::new(hub.shared.lifecycle.abort.clone());
        let durable = hub.shared.durable.clone();
        let breaker = info.breaker.clone().map(Breaker::new);
        Self {
            info,
            agent,
            stats,
            publisher: Publisher::new(Arc::new(hub.clone())),
            hub,
            cancel,
            calls: HashMap::new(),
            waiting: HashMap::new(),
            recent: HashMap::new(),
            retries: DelayQueue::new(),
            waiting_retry: HashMap::new(),
            next_retry: 0,
            breaker,
            held: std::collections::VecDeque::new(),
            online: false,
            durable,
            settles: WriteBatch::default(),
        }
    }

    /// Records how a durable action's attempt ended, to be written at the end of the round.
    fn settle(&mut self, d: &Dispatch, outcome: Settlement) {
        if let (Some(durable), Some(lease)) = (&self.durable, d.lease) {
            let settle = durable.settle_of(lease, &d.action, outcome);
            self.settles.settles.push(settle);
        }
    }

    /// Keeps a durable request's answers in the store for its keep-alive time.
    fn keep_result(
        &mut self,
        d: &Dispatch,
        history: Option<&[Arc<Value>]>,
        result: &Result<Reply, AgentError>,
    ) {
        let (Some(_), Some(_), Some(entry)) = (&self.durable, d.lease, &d.request) else {
            return;
        };
        let keep = entry
            .options
            .keep_alive
            .unwrap_or(self.hub.shared.requests.config.keep_alive);
        let outcome = match result {
            Ok(reply) => Ok(reply.payload.clone().unwrap_or(Value::Null)),
            Err(e) => Err(serde_json::to_value(e).unwrap_or(Value::Null)),
        };
        self.settles.results.push(ResultRecord {
            request: entry.id,
            action: d.action.id(),
            agent: d.action.agent().clone(),
            tenant: d.action.principal().tenant.clone(),
            answers: history
                .unwrap_or_default()
                .iter()
                .map(|a| (**a).clone())
                .collect(),
            outcome,
            expires_at: later(Timestamp::now(), keep),
        });
    }

    /// Writes the round's settles, results and audit records.
    async fn write_settles(&mut self, sink: &mut Sink) {
        let Some(durable) = &self.durable else {
            return;
        };
        let mut batch = std::mem::take(&mut self.settles);
        batch.audit = sink.take_audit();
        durable.settle(batch).await;
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Dispatch>) -> WorkerReport {
        let shared = self.hub.shared.clone();
        let mut sink = Sink::new(shared.bus.clone()).with_audit(self.durable.is_some());
        let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
        let mut buf = Vec::with_capacity(BATCH);
        let mut closed = false;
        let mut report = WorkerReport::default();
        let concurrency = self.info.concurrency.max(1);
        let hold_cap = self.info.queue_capacity.max(1);
        let stats = self.stats.clone();
        // The health probe: one at a time, every `interval`, failing after `timeout`.
        let mut health = self.info.health_check.map(|h| {
            let mut tick = tokio::time::interval_at(Instant::now() + h.interval, h.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            (tick, h.timeout)
        });
        let mut probe: Option<(Instant, ProbeFuture)> = None;
        loop {
            if closed && inflight.is_empty() && self.retries.is_empty() && self.held.is_empty() {
                break;
            }
            let room = concurrency.saturating_sub(inflight.len()).min(BATCH);
            // While the agent takes no calls, new actions are taken off the queue into `held`
            // (so routing for other agents goes on) until `held` is as large as the queue.
            let intake = if self.held.is_empty() {
                room
            } else {
                hold_cap.saturating_sub(self.held.len()).min(BATCH)
            };
            let open_until = match self.breaker.as_ref().map(|b| b.circuit) {
                Some(Circuit::Open { until }) => Some(until),
                _ => None,
            };
            tokio::select! {
                biased;
                _ = shared.lifecycle.abort.cancelled() => {
                    sink.begin();
                    report.abandoned = self.abandon(&mut inflight, &mut rx, &mut sink);
                    sink.flush();
                    self.write_settles(&mut sink).await;
                    break;
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    sink.begin();
                    self.finish(done, &mut sink);
                    // Collect whatever else is ready without waiting.
                    while let Some(Some(done)) = inflight.next().now_or_never() {
                        self.finish(done, &mut sink);
                    }
                    if !self.held.is_empty() {
                        self.release(&mut inflight, &mut sink);
                    }
                }
                _ = tokio::time::sleep_until(open_until.unwrap_or_else(Instant::now)), if open_until.is_some() => {
                    sink.begin();
                    self.half_open(&mut sink);
                    self.release(&mut inflight, &mut sink);
                }
                _ = async {
                    match health.as_mut() {
                        Some((tick, _)) => { tick.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                }, if health.is_some() && probe.is_none() => {
                    let timeout = health.as_ref().map(|(_, t)| *t).unwrap_or_default();
                    let agent = self.agent.clone();
                    let check: ProbeFuture = Box::pin(async move {
                        match tokio::time::timeout(timeout, AssertUnwindSafe(agent.health()).catch_unwind()).await {
                            Ok(Ok(Some(outcome))) => Some(outcome),
                            // No probe to run.
                            Ok(Ok(None)) => None,
                            Ok(Err(panic)) => Some(Err(AgentError::Panicked { message: panic_message(&*panic) })),
                            Err(_) => Some(Err(AgentError::Timeout { after: timeout })),
                        }
                    });
                    probe = Some((Instant::now(), check));
                }
                outcome = async {
                    match probe.as_mut() {
                        Some((_, check)) => check.await,
                        None => std::future::pending().await,
                    }
                }, if probe.is_some() => {
                    let elapsed = probe.take().map(|(at, _)| at.elapsed()).unwrap_or_default();
                    let Some(outcome) = outcome else {
                        // The agent has no probe: stop asking.
                        health = None;
                        continue;
                    };
                    sink.begin();
                    self.checked(outcome, elapsed, &mut sink);
                    if !self.held.is_empty() {
                        self.release(&mut inflight, &mut sink);
                    }
                }
                // An operator's change matters only to actions held meanwhile (new ones read
                // the status as they come).
                _ = stats.status.changed.notified(), if !self.held.is_empty() => {
                    sink.begin();
                    self.release(&mut inflight, &mut sink);
                }
                Some(retry) = self.retries.next(), if !self.retries.is_empty() && room > 0 => {
                    sink.begin();
                    if let Some(retry) = self.waiting_retry.remove(&retry.into_inner()) {
                        self.admit(Held::Retry(retry), &mut inflight, &mut sink);
                    }
                }
                n = rx.recv_many(&mut buf, intake), if intake > 0 && !closed => {
                    if n == 0 {
                        closed = true;
                    } else {
                        sink.begin();
                        for d in buf.drain(..) {
                            self.admit(Held::New(d), &mut inflight, &mut sink);
                        }
                    }
                }
                _ = shared.lifecycle.intake_done.cancelled(), if rx.is_empty() && inflight.is_empty() && self.retries.is_empty() && self.held.is_empty() => break,
            }
            sink.flush();
            if self.durable.is_some() {
                self.write_settles(&mut sink).await;
            }
        }
        report
    }

    /// Whether the agent takes a call now; in half-open state, the first one asking becomes
    /// the probe.
    fn may_call(&mut self, action: ActionId) -> bool {
        match self.stats.status.manual() {
            Some(AgentState::Offline) => return false,
            Some(_) => return true,
            None => {}
        }
        let Some(breaker) = &mut self.breaker else {
            return true;
        };
        match breaker.circuit {
            Circuit::Closed => true,
            Circuit::Open { .. } | Circuit::HalfOpen { probe: Some(_) } => false,
            Circuit::HalfOpen { probe: None } => {
                breaker.circuit = Circuit::HalfOpen {
                    probe: Some(action),
                };
                true
            }
        }
    }

    /// Starts `held` if the agent takes calls (and nothing older waits), sends it to its
    /// fallback if a rule named one, or keeps it for later.
    fn admit(&mut self, held: Held, inflight: &mut FuturesUnordered<InFlight>, sink: &mut Sink) {
        if self.held.is_empty() && self.may_call(held.dispatch().action.id()) {
            self.run_held(held, inflight, sink);
            return;
        }
        match self.reroute(held, sink) {
            None => {}
            Some(held) => self.held.push_back(held),
        }
    }

    fn run_held(&mut self, held: Held, inflight: &mut FuturesUnordered<InFlight>, sink: &mut Sink) {
        match held {
            Held::New(d) => self.start(d, inflight, sink),
            Held::Retry(Retry { dispatch, group }) => self.attempt(dispatch, group, inflight, sink),
        }
    }

    /// Starts held actions while the agent takes calls and there is room.
    fn release(&mut self, inflight: &mut FuturesUnordered<InFlight>, sink: &mut Sink) {
        let concurrency = self.info.concurrency.max(1);
        while inflight.len() < concurrency {
            let Some(next) = self.held.front() else { break };
            if !self.may_call(next.dispatch().action.id()) {
                break;
            }
            if let Some(held) = self.held.pop_front() {
                self.run_held(held, inflight, sink);
            }
        }
    }

    /// Sends a new action the agent cannot take now to the fallback agent its rule named, if
    /// that agent is registered, handles the action type and has room. Returns it otherwise.
    fn reroute(&self, held: Held, sink: &mut Sink) -> Option<Held> {
        let Held::New(d) = held else {
            return Some(held);
        };
        let Some(fallback) = d.fallback.clone() else {
            return Some(Held::New(d));
        };
        let routing = self.hub.shared.routing.load();
        let Some(entry) = routing
            .agents
            .get(&fallback)
            .filter(|e| e.info.handles.contains(d.action.action_type()))
        else {
            return Some(Held::New(d));
        };
        let from = d.action.agent().clone();
        let mut meta = (*d.action.meta).clone();
        meta.agent = fallback;
        let rerouted = Dispatch {
            action: Action {
                meta: Arc::new(meta),
                payload: d.action.payload.clone(),
            },
            fallback: None,
            ..d
        };
        let action = rerouted.action.meta.clone();
        let monitor = rerouted.monitor.clone();
        match entry.tx.try_send(rerouted) {
            Ok(()) => {
                sink.emit(
                    TelemetryKind::ActionRerouted {
                        action,
                        from,
                        reason: self.unavailable_reason(),
                    },
                    monitor.as_ref(),
                );
                None
            }
            Err(err) => {
                // The fallback is full or gone: keep it here, for its own agent.
                let mut d = match err {
                    mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
                };
                let mut meta = (*d.action.meta).clone();
                meta.agent = from;
                d.action.meta = Arc::new(meta);
                Some(Held::New(d))
            }
        }
    }

    fn unavailable_reason(&self) -> String {
        if self.stats.status.manual() == Some(AgentState::Offline) {
            "the agent was set offline".to_owned()
        } else {
            "the agent's circuit is open".to_owned()
        }
    }

    /// The cool-down has passed: let one probe through.
    fn half_open(&mut self, _sink: &mut Sink) {
        self.online = false;
        if let Some(breaker) = &mut self.breaker {
            breaker.circuit = Circuit::HalfOpen { probe: None };
        }
        self.set_status(AgentState::Degraded, "circuit half-open: probing");
    }

    fn set_status(&self, state: AgentState, reason: impl Into<String>) {
        if let Some((from, status)) = self.stats.status.set_auto(&self.info, state, reason) {
            announce(&self.hub, from, status);
        }
    }

    /// A health probe ended: recorded, and counted like a call (by the breaker while its
    /// circuit is closed, or by the status when the agent has no breaker).
    fn checked(&mut self, outcome: Result<Value, AgentError>, elapsed: Duration, sink: &mut Sink) {
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
            Some(breaker) if breaker.circuit == Circuit::Closed => {
                if let Some(why) = breaker.record(failed) {
                    let until = Instant::now() + breaker.policy.cool_down;
                    breaker.circuit = Circuit::Open { until };
                    self.online = false;
                    self.set_status(
                        AgentState::Offline,
                        format!("circuit open: {why} ({reason})"),
                    );
                } else if failed {
                    self.online = false;
                    self.set_status(AgentState::Degraded, reason);
                } else if !self.online {
                    self.online = true;
                    self.set_status(AgentState::Online, "health check passed");
                }
            }
            // Open or half-open: only a call decides.
            Some(_) => {}
            None if failed => {
                self.online = false;
                self.set_status(AgentState::Degraded, reason);
            }
            None => {
                if !self.online {
                    self.online = true;
                    self.set_status(AgentState::Online, "health check passed");
                }
            }
        }
    }

    /// Feeds a call's outcome to the breaker and the status.
    fn observe(&mut self, action: ActionId, result: &Result<Reply, AgentError>) {
        // Only a retryable failure says something about the agent; a permanent error is about
        // the action (the agent did answer), a cancellation about the client.
        let failed = match result {
            Ok(_) => false,
            Err(e) if e.is_retryable() => true,
            Err(AgentError::Cancelled) => {
                if let Some(b) = &mut self.breaker {
                    if b.circuit
                        == (Circuit::HalfOpen {
                            probe: Some(action),
                        })
                    {
                        // The probe told nothing: let the next call probe.
                        b.circuit = Circuit::HalfOpen { probe: None };
                    }
                }
                return;
            }
            Err(_) => {
                let probing = self.breaker.as_ref().is_some_and(|b| {
                    b.circuit
                        == (Circuit::HalfOpen {
                            probe: Some(action),
                        })
                });
                if !probing {
                    return;
                }
                false
            }
        };
        let Some(breaker) = &mut self.breaker else {
            if !failed && !self.online {
                self.online = true;
                self.set_status(AgentState::Online, "calls succeed");
            }
            return;
        };
        let verdict = match breaker.circuit {
            Circuit::HalfOpen { probe: Some(p) } if p == action => {
                if failed {
                    Some("the probe call failed".to_owned())
                } else {
                    breaker.circuit = Circuit::Closed;
                    breaker.reset();
                    None
                }
            }
            Circuit::Closed => breaker.record(failed),
            // Calls started before the circuit opened: they no longer decide anything.
            _ => None,
        };
        match verdict {
            Some(reason) => {
                let until = Instant::now() + breaker.policy.cool_down;
                breaker.circuit = Circuit::Open { until };
                self.online = false;
                self.set_status(AgentState::Offline, format!("circuit open: {reason}"));
            }
            None if !failed && !self.online && breaker.circuit == Circuit::Closed => {
                self.online = true;
                self.set_status(AgentState::Online, "calls succeed");
            }
            None => {}
        }
    }

    /// For a shareable request: answers it from a recent identical call, or joins it to an
    /// identical call in flight. Returns the dispatch back when it needs a call of its own,
    /// with the key a new call is to be found under.
    fn share(
        &mut self,
        d: Dispatch,
        entry: &Arc<RequestEntry>,
        sink: &mut Sink,
    ) -> Option<(Dispatch, Option<(u64, Identity)>)> {
        let Some((key, identity)) = Identity::of(&d) else {
            return Some((d, None));
        };
        let now = Instant::now();
        let recent = self
            .recent
            .get(&key)
            .filter(|(id, r)| r.until > now && *id == identity)
            .map(|(_, r)| r);
        if let Some(recent) = recent {
            for answer in &recent.answers {
                entry.replay_answer(d.action.id(), answer.clone());
            }
            let reply = Ok(Reply {
                payload: recent.last.clone(),
            });
            entry.end_part(d.action.id(), &reply);
            let from = recent.from;
            let answers = recent.answers.clone();
            self.keep_result(&d, Some(&answers), &reply);
            self.settle(&d, Settlement::Done);
            sink.emit(
                TelemetryKind::ActionServedFromCache {
                    action: d.action.meta.clone(),
                    from,
                },
                d.monitor.as_ref(),
            );
            self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if let Some((_, group)) = self.calls.get(&key).filter(|(id, _)| *id == identity) {
            if group.join(entry, d.action.id()) {
                sink.emit(
                    TelemetryKind::ActionCoalesced {
                        action: d.action.meta.clone(),
                        into: group.leader,
                    },
                    d.monitor.as_ref(),
                );
                // The follower's dispatch (and its monitor) lives until the shared call ends.
                self.waiting.entry(key).or_default().push(d);
                return None;
            }
        }
        Some((d, Some((key, identity))))
    }

    fn start(&mut self, d: Dispatch, inflight: &mut FuturesUnordered<InFlight>, sink: &mut Sink) {
        let (d, group) = match d.request.clone() {
            None => (d, None),
            Some(entry) => {
                let Some((d, key)) = self.share(d, &entry, sink) else {
                    return;
                };
                let group = CallGroup::new(
                    &entry,
                    d.action.id(),
                    self.hub.shared.lifecycle.abort.child_token(),
                );
                let key = key.map(|(key, identity)| {
                    // A colliding call already in the map keeps it; this one is simply not
                    // joinable.
                    self.calls
                        .entry(key)
                        .or_insert_with(|| (identity, group.clone()));
                    key
                });
                (d, Some(GroupRef { group, key }))
            }
        };
        self.attempt(d, group, inflight, sink);
    }

    /// Calls the agent for one attempt of `d`, with the request's call group if it has one.
    fn attempt(
        &mut self,
        mut d: Dispatch,
        group: Option<GroupRef>,
        inflight: &mut FuturesUnordered<InFlight>,
        sink: &mut Sink,
    ) {
        if let Some(g) = &group {
            // The request went away while the call waited for a retry.
            if g.group.cancel.is_cancelled() {
                self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
                self.finish((d, Duration::ZERO, Err(AgentError::Cancelled), group), sink);
                return;
            }
        }
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let ctx = CallContext {
            agent: self.info.clone(),
            action: d.action.meta.clone(),
            publisher: self.publisher.clone(),
            cancel: match &group {
                Some(g) => g.group.cancel.clone(),
                None => self.cancel.clone(),
            },
            // A call has a group exactly when its dispatch carries a request.
            request: group
                .as_ref()
                .zip(d.request.as_ref())
                .map(|(g, r)| RequestSink {
                    group: g.group.clone(),
                    request_id: r.id,
                }),
        };
        let started = Instant::now();
        d.first_attempt.get_or_insert(started);
        // The agent's future borrows the agent: the call owns its `Arc` so that it can run
        // beside the worker's other calls.
        let agent = self.agent.clone();
        let action = d.action.clone();
        let fut: AgentFuture = match self.info.call_timeout {
            None => Box::pin(async move { agent.call(action, ctx).await }),
            Some(limit) => Box::pin(async move {
                match tokio::time::timeout(limit, agent.call(action, ctx)).await {
                    Ok(result) => result,
                    Err(_) => Err(AgentError::Timeout { after: limit }),
                }
            }),
        };
        let mut call = InFlight {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            dispatch: Some(d),
            group,
            started,
        };
        match Pin::new(&mut call).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(done) => self.finish(done, sink),
            Poll::Pending => inflight.push(call),
        }
    }

    /// The pause before the next attempt of `d`, if `error` may be retried under its policy.
    fn retry_delay(
        &self,
        d: &Dispatch,
        error: &AgentError,
        group: Option<&GroupRef>,
    ) -> Option<Duration> {
        if !error.is_retryable() || self.hub.shared.lifecycle.abort.is_cancelled() {
            return None;
        }
        if group.is_some_and(|g| g.group.cancel.is_cancelled()) {
            return None;
        }
        let policy = d.retry.as_ref().unwrap_or(&self.info.retry);
        let attempt = d.action.meta.attempt;
        if attempt >= policy.max_attempts {
            return None;
        }
        let mut delay = policy.delay_before(attempt + 1);
        if let AgentError::Retry {
            after: Some(hint), ..
        } = error
        {
            // The other side said when: never sooner than that.
            delay = delay.max(*hint);
        }
        if let (Some(limit), Some(first)) = (policy.max_elapsed, d.first_attempt) {
            if first.elapsed() + delay > limit {
                return None;
            }
        }
        Some(delay)
    }

    fn finish(&mut self, (d, elapsed, result, group): Done, sink: &mut Sink) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.observe(d.action.id(), &result);
        if let Err(error) = &result {
            if let Some(after) = self.retry_delay(&d, error, group.as_ref()) {
                let next_attempt = d.action.meta.attempt + 1;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                sink.emit(
                    TelemetryKind::ActionRetrying {
                        action: d.action.meta.clone(),
                        error: error.clone(),
                        next_attempt,
                        after,
                        elapsed,
                    },
                    d.monitor.as_ref(),
                );
                if let Some(durable) = &self.durable {
                    let held = durable.held_retry(
                        Timestamp::now(),
                        after,
                        serde_json::to_value(error).unwrap_or(Value::Null),
                    );
                    self.settle(&d, held);
                }
                // The request's call group stays open across attempts: its members (and any
                // identical request joining meanwhile) get the outcome of the last attempt.
                let key = self.next_retry;
                self.next_retry += 1;
                self.waiting_retry.insert(
                    key,
                    Retry {
                        dispatch: d.next_attempt(),
                        group,
                    },
                );
                self.retries.insert(key, after);
                return;
            }
        }
        let mut followers = Vec::new();
        let history = match (&self.durable, &group) {
            (Some(_), Some(g)) => g.group.history(),
            _ => None,
        };
        if let Some(GroupRef { group, key }) = group {
            // Every member request, the leader's first, gets the call's end.
            for (entry, action) in group.close() {
                entry.end_part(action, &result);
            }
            if let Some(key) = key {
                let mut identity = None;
                if self
                    .calls
                    .get(&key)
                    .is_some_and(|(_, g)| Arc::ptr_eq(g, &group))
                {
                    identity = self.calls.remove(&key).map(|(id, _)| id);
                    followers = self.waiting.remove(&key).unwrap_or_default();
                }
                // A call whose requesters all went away may have stopped early: its answers
                // are not a result to reuse.
                let whole = !group.cancel.is_cancelled();
                if let (Ok(reply), Some(ttl), true, Some(identity)) =
                    (&result, d.sharing.result_ttl, whole, identity)
                {
                    self.remember(key, identity, &group, reply, ttl);
                }
            }
        }
        if let Err(error) = &result {
            if !matches!(error, AgentError::Cancelled) {
                self.dead_letter(&d, error, sink);
            }
        }
        if self.durable.is_some() {
            let outcome = match &result {
                Err(AgentError::Cancelled) | Ok(_) => Settlement::Done,
                Err(error) => Settlement::Dead {
                    error: serde_json::to_value(error).unwrap_or(Value::Null),
                },
            };
            for f in std::iter::once(&d).chain(followers.iter()) {
                self.keep_result(f, history.as_deref(), &result);
                self.settle(f, outcome.clone());
            }
        }
        for f in std::iter::once(d).chain(followers) {
            let action = f.action.meta;
            let kind = match &result {
                Ok(_) => {
                    self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    TelemetryKind::ActionSucceeded { action, elapsed }
                }
                Err(error) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(agent = %self.info.id, action = %action.id, %error, "action failed");
                    TelemetryKind::ActionFailed {
                        action,
                        error: error.clone(),
                        elapsed,
                    }
                }
            };
            sink.emit(kind, f.monitor.as_ref());
        }
    }

    /// An action failed for good: keep it as a dead letter, raise the alert, and publish the
    /// `atamo.action.exhausted` event for the same user and correlation id (unless the action
    /// was itself handling such an event, so that failures never feed on themselves).
    fn dead_letter(&self, d: &Dispatch, error: &AgentError, sink: &mut Sink) {
        let meta = &d.action.meta;
        let attempts = meta.attempt;
        self.hub
            .shared
            .dead_letters
            .push(d.action.clone(), error.clone(), attempts);
        sink.emit(
            TelemetryKind::ActionDeadLettered {
                action: meta.clone(),
                error: error.clone(),
                attempts,
            },
            d.monitor.as_ref(),
        );
        sink.emit(
            TelemetryKind::Alert {
                alert: RETRIES_EXHAUSTED_ALERT.to_owned(),
                agent: Some(meta.agent.clone()),
                raised: true,
                detail: format!(
                    "action `{}` ({}) failed after {attempts} attempt(s): {error}",
                    meta.id, meta.action_type
                ),
            },
            // An alert is the controller's, not a step of the client's event.
            None,
        );
        let event_type = meta.event.event_type.as_str();
        if event_type == EXHAUSTED_EVENT || event_type == STATUS_CHANGED_EVENT {
            return;
        }
        let payload = serde_json::json!({
            "action_id": meta.id,
            "action_type": meta.action_type,
            "agent": meta.agent,
            "attempts": attempts,
            "error": error,
            "event_id": meta.event.id,
            "event_type": meta.event.event_type,
            "payload": d.action.payload(),
        });
        let mut event = Event::builder(EXHAUSTED_EVENT, meta.event.principal.clone())
            .payload(payload)
            .correlation_id(meta.event.correlation_id)
            .build();
        // Like an agent's own follow-up: never routed back to the agent that failed.
        event.meta_mut().origin = Some(Origin {
            agent: meta.agent.clone(),
            action: meta.id,
        });
        let hub = self.hub.clone();
        self.hub.shared.runtime.spawn(async move {
            if let Err(err) = hub.publish(event).await {
                tracing::debug!(%err, "exhausted event not published");
            }
        });
    }

    /// Keeps a successful shared call's answers for identical requests within `ttl`.
    fn remember(
        &mut self,
        key: u64,
        identity: Identity,
        group: &CallGroup,
        reply: &Reply,
        ttl: Duration,
    ) {
        let Some(answers) = group.history() else {
            return;
        };
        let now = Instant::now();
        if self.recent.len() >= RECENT_CAP {
            self.recent.retain(|_, (_, r)| r.until > now);
            if self.recent.len() >= RECENT_CAP {
                return;
            }
        }
        self.recent.insert(
            key,
            (
                identity,
                Recent {
                    until: now + ttl,
                    from: group.leader,
                    answers,
                    last: reply.payload.clone(),
                },
            ),
        );
    }

    /// The shutdown deadline passed: every running and queued action is reported abandoned.
    fn abandon(
        &mut self,
        inflight: &mut FuturesUnordered<InFlight>,
        rx: &mut mpsc::Receiver<Dispatch>,
        sink: &mut Sink,
    ) -> u64 {
        let mut n = 0;
        let durable = self.durable.clone();
        let mut released = Vec::new();
        let mut report = |d: Dispatch, sink: &mut Sink| {
            n += 1;
            // Given back: another node, or this one after a restart, carries it out.
            if let (Some(durable), Some(lease)) = (&durable, d.lease) {
                released.push(durable.settle_of(lease, &d.action, Settlement::Release));
            }
            if let Some(r) = &d.request {
                r.stop(RequestState::Cancelled);
            }
            sink.emit(
                TelemetryKind::ActionAbandoned {
                    action: d.action.meta,
                    reason: AbandonReason::ShutdownDeadline,
                },
                d.monitor.as_ref(),
            );
        };
        // The cancellation token has fired: one last poll lets each call see it and run its
        // cancellation branch (cleanup) before it is dropped.
        let mut cx = Context::from_waker(Waker::noop());
        for call in inflight.iter_mut() {
            if let Some(g) = &call.group {
                g.group.cancel.cancel();
            }
            let _ = Pin::new(&mut call.fut).poll(&mut cx);
            if let Some(d) = call.dispatch.take() {
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                report(d, sink);
            }
        }
        for d in self.waiting.drain().flat_map(|(_, v)| v) {
            report(d, sink);
        }
        for held in std::mem::take(&mut self.held) {
            match held {
                Held::New(d) => report(d, sink),
                Held::Retry(retry) => {
                    if let Some(g) = &retry.group {
                        g.group.cancel.cancel();
                    }
                    report(retry.dispatch, sink)
                }
            }
        }
        self.retries.clear();
        for (_, retry) in self.waiting_retry.drain() {
            if let Some(g) = &retry.group {
                g.group.cancel.cancel();
            }
            report(retry.dispatch, sink);
        }
        inflight.clear();
        rx.close();
        while let Ok(d) = rx.try_recv() {
            report(d, sink);
        }
        self.settles.settles.extend(released);
        if n > 0 {
            tracing::warn!(agent = %self.info.id, abandoned = n, "shutdown deadline passed; actions abandoned");
        }
        n
    }
}

/// Tells everyone an agent's status changed: telemetry, and an `atamo.agent.status_changed`
/// event from the hub itself (user `atamo`, group `atamo.controller`) that rules can route,
/// for example to the agent's owner.
pub(crate) fn announce(hub: &HubHandle, from: AgentState, status: AgentStatus) {
    tracing::info!(agent = %status.agent, ?from, to = ?status.state, reason = %status.reason, "agent status changed");
    let payload = serde_json::json!({
        "agent": status.agent,
        "from": from,
        "to": status.state,
        "reason": status.reason,
        "manual": status.manual,
        "owner": status.owner,
        "version": status.version,
    });
    hub.shared
        .bus
        .emit(TelemetryKind::AgentStatusChanged { from, status });
    let event = Event::new(
        STATUS_CHANGED_EVENT,
        crate::message::Principal::user("atamo").in_group("atamo.controller"),
        payload,
    );
    let publisher = hub.clone();
    hub.shared.runtime.spawn(async move {
        if let Err(err) = publisher.publish(event).await {
            tracing::debug!(%err, "status event not published");
        }
    });
}

/// What makes two shareable requests identical for one agent: the action type, who may share
/// (per the rule's scope) and the payload. Looked up by a 64-bit hash and then compared in
/// full, so a hash collision can never hand one request another's data.
#[derive(PartialEq)]
struct Identity {
    action_type: ActionType,
    scope: ShareScope,
    user: Option<UserId>,
    tenant: Option<TenantId>,
    payload: Arc<Value>,
}

impl Identity {
    fn of(d: &Dispatch) -> Option<(u64, Self)> {
        let p = d.action.principal();
        let (user, tenant) = match d.sharing.scope {
            ShareScope::Off => return None,
            ShareScope::User => (Some(p.user.clone()), p.tenant.clone()),
            ShareScope::Tenant => (None, p.tenant.clone()),
            ShareScope::Global => (None, None),
        };
        let id = Self {
            action_type: d.action.action_type().clone(),
            scope: d.sharing.scope,
            user,
            tenant,
            payload: d.action.payload.clone(),
        };
        let mut h = std::hash::DefaultHasher::new();
        id.action_type.hash(&mut h);
        id.scope.hash(&mut h);
        id.user.hash(&mut h);
        id.tenant.hash(&mut h);
        hash_value(&id.payload, &mut h);
        Some((h.finish(), id))
    }
}

/// Hashes a JSON value by content (serde_json's maps iterate in key order, so equal values
/// hash alike). `serde_json::Value` does not implement `Hash`, and serializing it to a string
/// for a key cost more than routing the request.
fn hash_value(v: &Value, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            if let Some(i) = n.as_i64() {
                i.hash(h);
            } else if let Some(u) = n.as_u64() {
                u.hash(h);
            } else if let Some(f) = n.as_f64() {
                f.to_bits().hash(h);
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_value(item, h);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            for (k, v) in map {
                k.hash(h);
                hash_value(v, h);
            }
        }
    }
}

#[cfg(test)]
mod breaker_tests {
    use super::{Breaker, BreakerPolicy};

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            window: 10,
            min_calls: 6,
            failure_ratio: 0.5,
            consecutive_failures: 0,
            ..BreakerPolicy::default()
        }
    }

    #[test]
    fn the_failure_ratio_counts_only_once_the_window_has_enough_calls() {
        let mut b = Breaker::new(policy());
        // 3 failures in 5 calls: over the ratio, but fewer calls than the minimum.
        for failed in [true, false, true, false, true] {
            assert_eq!(b.record(failed), None);
        }
        // The sixth call makes 3 of 6: the ratio is reached.
        assert_eq!(
            b.record(false),
            None,
            "3 of 6 failed, but this call succeeded"
        );
        assert_eq!(
            b.record(true).as_deref(),
            Some("4 of the last 7 calls failed")
        );
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut b = Breaker::new(policy());
        for _ in 0..4 {
            assert_eq!(b.record(true), None, "too few calls yet");
        }
        for _ in 0..10 {
            assert_eq!(b.record(false), None);
        }
        // The four failures have left the 10-call window: one new failure is 1 in 10.
        assert_eq!(b.record(true), None);
        assert_eq!((b.failures, b.window.len()), (1, 10));
    }

    #[test]
    fn consecutive_failures_open_it_whatever_the_window_says() {
        let mut b = Breaker::new(BreakerPolicy {
            consecutive_failures: 3,
            ..policy()
        });
        assert_eq!(b.record(true), None);
        assert_eq!(b.record(true), None);
        assert_eq!(b.record(true).as_deref(), Some("3 failures in a row"));
    }
}
