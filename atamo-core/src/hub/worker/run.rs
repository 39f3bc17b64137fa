//! The worker task: takes dispatched actions from the agent's queue in batches and runs up to
//! `concurrency` calls at once, with the breaker, retries, coalescing, probes and settling of
//! the files beside this one.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::availability::Availability;
use super::call::{Calls, Done};
use super::coalesce::{Coalescer, GroupRef};
use super::dead_letter::dead_letter;
use super::held::{reroute, Held};
use super::probe::{ProbeSchedule, RunningProbe};
use super::retry::{self, Retries, Retry};
use super::settle::Settler;
use crate::agent::{Agent, AgentInfo, CallContext};
use crate::hub::dispatch::Dispatch;
use crate::hub::handle::HubHandle;
use crate::hub::lifecycle::WorkerReport;
use crate::hub::routing::AgentStats;
use crate::outcome::AgentError;
use crate::publish::Publisher;
use crate::request::{CallGroup, RequestSink, RequestState};
use crate::telemetry::{AbandonReason, Sink, TelemetryKind};

const BATCH: usize = 256;

pub(crate) struct Worker {
    info: Arc<AgentInfo>,
    pub(super) agent: Arc<dyn Agent>,
    stats: Arc<AgentStats>,
    hub: HubHandle,
    /// What calls publish their follow-up events through.
    publisher: Publisher,
    // Shared by every call of this worker: cloning an `Arc` is cheaper than cloning a token.
    cancel: Arc<CancellationToken>,
    /// Shared calls and recent results of identical requests.
    coalescer: Coalescer,
    /// Failed calls waiting for their next attempt.
    retries: Retries,
    /// The breaker and the status: whether the agent takes calls.
    availability: Availability,
    /// Actions waiting for the agent to take calls again.
    held: VecDeque<Held>,
    /// Where outcomes go: nowhere, or a stateful hub's store.
    settler: Settler,
}

impl Worker {
    pub(crate) fn new(
        info: Arc<AgentInfo>,
        agent: Arc<dyn Agent>,
        stats: Arc<AgentStats>,
        hub: HubHandle,
    ) -> Self {
        let cancel = Arc::new(hub.shared.lifecycle.abort.clone());
        let settler = Settler::new(
            hub.shared.durable.clone(),
            hub.shared.requests.config.keep_alive,
        );
        Self {
            availability: Availability::new(info.clone(), stats.clone(), hub.clone()),
            info,
            agent,
            stats,
            publisher: Publisher::new(Arc::new(hub.clone())),
            hub,
            cancel,
            coalescer: Coalescer::default(),
            retries: Retries::default(),
            held: VecDeque::new(),
            settler,
        }
    }

    fn idle(&self, inflight: &Calls<'_>) -> bool {
        inflight.is_empty() && self.retries.is_empty() && self.held.is_empty()
    }

    /// The worker's loop. Its calls in flight and its queue are kept by its supervisor
    /// (`supervise.rs`), so that a loop restarted after a panic goes on with them.
    pub(super) async fn run(
        &mut self,
        inflight: &mut Calls<'_>,
        rx: &mut mpsc::Receiver<Dispatch>,
    ) -> WorkerReport {
        let shared = self.hub.shared.clone();
        let mut sink = Sink::new(shared.bus.clone()).with_audit(self.settler.keeps());
        let mut buf = Vec::with_capacity(BATCH);
        let mut closed = false;
        let mut report = WorkerReport::default();
        let concurrency = self.info.concurrency.max(1);
        let hold_cap = self.info.queue_capacity.max(1);
        let stats = self.stats.clone();
        let mut schedule = self.info.health_check.map(ProbeSchedule::new);
        let mut probe: Option<RunningProbe> = None;
        loop {
            if closed && self.idle(inflight) {
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
            let open_until = self.availability.open_until();
            tokio::select! {
                biased;
                _ = shared.lifecycle.abort.cancelled() => {
                    sink.begin();
                    report.abandoned = self.abandon(inflight, rx, &mut sink);
                    sink.flush();
                    self.settler.write(&mut sink).await;
                    break;
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    sink.begin();
                    self.finish(done, &mut sink);
                    // Collect whatever else is ready without waiting.
                    while let Some(done) = inflight.ready() {
                        self.finish(done, &mut sink);
                    }
                    if !self.held.is_empty() {
                        self.release(inflight, &mut sink);
                    }
                }
                _ = tokio::time::sleep_until(open_until.unwrap_or_else(Instant::now)), if open_until.is_some() => {
                    sink.begin();
                    self.availability.half_open();
                    self.release(inflight, &mut sink);
                }
                _ = async {
                    match schedule.as_mut() {
                        Some(s) => s.due().await,
                        None => std::future::pending::<()>().await,
                    }
                }, if schedule.is_some() && probe.is_none() => {
                    probe = schedule.as_ref().map(|s| s.start(&self.agent));
                }
                (outcome, elapsed) = async {
                    match probe.as_mut() {
                        Some(running) => running.await,
                        None => std::future::pending().await,
                    }
                }, if probe.is_some() => {
                    probe = None;
                    let Some(outcome) = outcome else {
                        // The agent has no probe: stop asking.
                        schedule = None;
                        continue;
                    };
                    sink.begin();
                    self.availability.checked(outcome, elapsed, &mut sink);
                    if !self.held.is_empty() {
                        self.release(inflight, &mut sink);
                    }
                }
                // An operator's change matters only to actions held meanwhile (new ones read
                // the status as they come).
                _ = stats.status.changed.notified(), if !self.held.is_empty() => {
                    sink.begin();
                    self.release(inflight, &mut sink);
                }
                Some(retry) = self.retries.due(), if !self.retries.is_empty() && room > 0 => {
                    sink.begin();
                    self.admit(Held::Retry(retry), inflight, &mut sink);
                }
                n = rx.recv_many(&mut buf, intake), if intake > 0 && !closed => {
                    if n == 0 {
                        closed = true;
                    } else {
                        sink.begin();
                        for d in buf.drain(..) {
                            self.admit(Held::New(d), inflight, &mut sink);
                        }
                    }
                }
                _ = shared.lifecycle.intake_done.cancelled(), if rx.is_empty() && self.idle(inflight) => break,
            }
            sink.flush();
            self.settler.write(&mut sink).await;
        }
        report
    }

    /// Starts `held` if the agent takes calls (and nothing older waits), sends it to its
    /// fallback if a rule named one, or keeps it for later.
    fn admit(&mut self, held: Held, inflight: &mut Calls<'_>, sink: &mut Sink) {
        if self.held.is_empty() && self.availability.may_call(held.dispatch().action.id()) {
            self.run_held(held, inflight, sink);
            return;
        }
        let routing = self.hub.shared.routing.load();
        let availability = &self.availability;
        if let Some(held) = reroute(&routing, held, || availability.unavailable_reason(), sink) {
            self.held.push_back(held);
        }
    }

    fn run_held(&mut self, held: Held, inflight: &mut Calls<'_>, sink: &mut Sink) {
        match held {
            Held::New(d) => self.start(d, inflight, sink),
            Held::Retry(Retry { dispatch, group }) => self.attempt(dispatch, group, inflight, sink),
        }
    }

    /// Starts held actions while the agent takes calls and there is room.
    fn release(&mut self, inflight: &mut Calls<'_>, sink: &mut Sink) {
        let concurrency = self.info.concurrency.max(1);
        while inflight.len() < concurrency {
            let Some(next) = self.held.front() else { break };
            if !self.availability.may_call(next.dispatch().action.id()) {
                break;
            }
            if let Some(held) = self.held.pop_front() {
                self.run_held(held, inflight, sink);
            }
        }
    }

    /// A new action: shared with an identical request's call when it can be, else called.
    fn start(&mut self, d: Dispatch, inflight: &mut Calls<'_>, sink: &mut Sink) {
        let (d, group) = match d.request.clone() {
            None => (d, None),
            Some(entry) => {
                let shared = self
                    .coalescer
                    .share(d, &entry, &self.stats, &mut self.settler, sink);
                let Some((d, key)) = shared else {
                    return;
                };
                let group = CallGroup::new(
                    &entry,
                    d.action.id(),
                    self.hub.shared.lifecycle.abort.child_token(),
                );
                let key = key.map(|(key, identity)| {
                    self.coalescer.open(key, identity, &group);
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
        inflight: &mut Calls<'_>,
        sink: &mut Sink,
    ) {
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &group {
            // The request went away while the call waited for a retry.
            if g.group.cancel.is_cancelled() {
                self.finish((d, Duration::ZERO, Err(AgentError::Cancelled), group), sink);
                return;
            }
        }
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
        let action = d.action.clone();
        if let Some(done) = inflight.start(
            self.info.call_timeout.map(|t| t.get()),
            action,
            ctx,
            d,
            group,
            started,
        ) {
            self.finish(done, sink);
        }
    }

    /// The pause before the next attempt of `d`, if `error` may be retried under its policy
    /// (and neither the hub nor the request has gone away).
    fn retry_delay(
        &self,
        d: &Dispatch,
        error: &AgentError,
        group: Option<&GroupRef>,
    ) -> Option<Duration> {
        #[cfg(test)]
        crate::hub::supervise::faults::worker_retry(d.action.meta.action_type.as_str());
        if self.hub.shared.lifecycle.abort.is_cancelled()
            || group.is_some_and(|g| g.group.cancel.is_cancelled())
        {
            return None;
        }
        let policy = d.retry.as_ref().unwrap_or(&self.info.retry);
        retry::delay(policy, d.action.meta.attempt, error, d.first_attempt)
    }

    fn finish(&mut self, (d, elapsed, result, group): Done, sink: &mut Sink) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.availability.observe(d.action.id(), &result);
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
                self.settler.retry_later(&d, after, error);
                let retry = Retry {
                    dispatch: d.next_attempt(),
                    group,
                };
                self.retries.schedule(retry, after);
                return;
            }
        }
        let mut followers = Vec::new();
        let history = match &group {
            Some(g) if self.settler.keeps() => g.group.history(),
            _ => None,
        };
        if let Some(GroupRef { group, key }) = group {
            // Every member request, the leader's first, gets the call's end.
            for (entry, action) in group.close() {
                entry.end_part(action, &result);
            }
            if let Some(key) = key {
                let (identity, joined) = self.coalescer.close(key, &group);
                followers = joined;
                // A call whose requesters all went away may have stopped early: its answers
                // are not a result to reuse.
                let whole = !group.cancel.is_cancelled();
                if let (Ok(reply), Some(ttl), true, Some(identity)) =
                    (&result, d.sharing.result_ttl, whole, identity)
                {
                    self.coalescer
                        .remember(key, identity, &group, reply, ttl.get());
                }
            }
        }
        if let Err(error) = &result {
            if !matches!(error, AgentError::Cancelled) {
                dead_letter(&self.hub, &d, error, sink);
            }
        }
        self.settler.ended(
            std::iter::once(&d).chain(followers.iter()),
            history.as_deref(),
            &result,
        );
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

    /// The shutdown deadline passed: every running and queued action is reported abandoned
    /// (and, in a stateful hub, given back for another node or a restart).
    fn abandon(
        &mut self,
        inflight: &mut Calls<'_>,
        rx: &mut mpsc::Receiver<Dispatch>,
        sink: &mut Sink,
    ) -> u64 {
        let mut n = 0;
        let settler = &mut self.settler;
        let mut report = |d: Dispatch, sink: &mut Sink| {
            n += 1;
            settler.release(&d);
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
        for call in inflight.iter_mut() {
            if let Some(g) = &call.group {
                g.group.cancel.cancel();
            }
            if let Some(d) = call.last_poll() {
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                report(d, sink);
            }
        }
        for d in self.coalescer.drain_waiting() {
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
        for retry in self.retries.drain() {
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
        if n > 0 {
            tracing::warn!(agent = %self.info.id, abandoned = n, "shutdown deadline passed; actions abandoned");
        }
        n
    }
}
