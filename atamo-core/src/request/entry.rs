//! One request's state: its parts, its log of updates, its subscribers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ids::{ActionId, AgentId, RequestId};
use crate::message::request::{
    Answer, AnswerError, PartState, PartStatus, RequestOptions, RequestSnapshot, RequestState,
    RequestUpdate,
};
use crate::message::{EventMeta, Timestamp};
use crate::outcome::{AgentError, Reply};
use crate::telemetry::{Bus, TelemetryKind};

/// A request in flight or kept. Short critical sections under one mutex (never held across an
/// await); subscribers and producers wait on `Notify`s.
pub(crate) struct RequestEntry {
    pub(crate) id: RequestId,
    pub(crate) event: Arc<EventMeta>,
    pub(crate) options: RequestOptions,
    /// Fires when the request ends early (cancel, deadline, last watcher gone) or the hub
    /// abandons work: the agents' calls see it as cancellation.
    pub(crate) cancel: Arc<CancellationToken>,
    capacity: usize,
    inner: Mutex<Inner>,
    /// Something was appended or the request ended.
    changed: Notify,
    /// Room was made in the log, or the request ended.
    space: Notify,
    bus: Arc<Bus>,
    /// Told when the request has finished (the request store, which keeps it for its
    /// keep-alive time).
    keeper: Weak<dyn Keeper>,
    /// The calls this request takes part in; told when it ends early.
    calls: Mutex<Vec<Weak<dyn SharedCall>>>,
}

/// Keeps finished requests: told once when a request finishes.
pub(crate) trait Keeper: Send + Sync {
    /// `entry` has just finished.
    fn finished(&self, entry: &RequestEntry);
}

/// An agent call shared by identical requests: told when a member request ends early, so
/// that the call can be cancelled once no member is left.
pub(crate) trait SharedCall: Send + Sync {
    /// A member request ended early.
    fn member_ended(&self);
}

struct Inner {
    state: RequestState,
    parts: Vec<PartState>,
    routed: bool,
    /// Updates not yet trimmed; `base` is the index of the first.
    log: VecDeque<RequestUpdate>,
    base: u64,
    /// Each live subscriber's next index.
    cursors: Vec<(u64, u64)>,
    next_subscriber: u64,
    /// Subscribers that count as watching a live feed (`wait`'s own reader does not).
    watching: usize,
    /// A rough size of what is kept, for the keep-alive cache's memory bound.
    bytes: usize,
}

impl Inner {
    fn end(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// Drops updates every live subscriber has read. Without subscribers nothing is dropped:
    /// a client that comes back later gets everything still kept.
    fn trim(&mut self) {
        if let Some(min) = self.cursors.iter().map(|(_, c)| *c).min() {
            while self.base < min && !self.log.is_empty() {
                self.log.pop_front();
                self.base += 1;
            }
        }
    }
}

/// What to do once the entry's lock is released.
#[derive(Default)]
#[must_use]
struct After {
    finished: Option<RequestState>,
    cancel: bool,
}

impl RequestEntry {
    pub(crate) fn new(
        event: Arc<EventMeta>,
        options: RequestOptions,
        capacity: usize,
        cancel: CancellationToken,
        bus: Arc<Bus>,
        keeper: Weak<dyn Keeper>,
    ) -> Self {
        Self {
            id: event.request.unwrap_or_else(RequestId::generate),
            event,
            options,
            cancel: Arc::new(cancel),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                state: RequestState::Running,
                parts: Vec::new(),
                routed: false,
                log: VecDeque::new(),
                base: 0,
                cursors: Vec::new(),
                next_subscriber: 0,
                watching: 0,
                bytes: 0,
            }),
            changed: Notify::new(),
            space: Notify::new(),
            bus,
            keeper,
            calls: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn watch(&self, call: Weak<dyn SharedCall>) {
        let mut calls = match self.calls.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        calls.push(call);
    }

    pub(crate) fn is_final(&self) -> bool {
        self.lock().state.is_final()
    }

    /// An answer given before this request joined the call, replayed at once. Bounded by the
    /// call's history limit, so it may exceed the log's capacity by that much.
    pub(crate) fn replay_answer(&self, action: ActionId, payload: Arc<Value>) {
        let answer = {
            let mut inner = self.lock();
            if inner.state.is_final() {
                return;
            }
            let Some(i) = running_part(&inner, action) else {
                return;
            };
            self.push_answer(&mut inner, i, payload, false)
        };
        self.changed.notify_waiters();
        self.emit_answer(&answer);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The router registers each agent it dispatched to, before any of them can answer.
    pub(crate) fn add_part(&self, agent: AgentId, action: ActionId) {
        self.lock().parts.push(PartState {
            agent,
            action,
            status: PartStatus::Running,
            answers: 0,
        });
    }

    /// The router is done with the request; with no part it ends at once.
    pub(crate) fn routing_done(&self) {
        let after = {
            let mut inner = self.lock();
            inner.routed = true;
            if inner.parts.is_empty() && !inner.state.is_final() {
                self.finish_locked(&mut inner, RequestState::NoRoute)
            } else if inner.state.is_final() {
                After::default()
            } else {
                self.check_complete(&mut inner)
            }
        };
        self.after(after);
    }

    /// An agent's answer. Waits while the log is full of updates some subscriber (or, with
    /// none, anybody) has yet to read: backpressure on the producer, never a silent drop.
    pub(crate) async fn answer(
        &self,
        action: ActionId,
        payload: Arc<Value>,
    ) -> Result<(), AnswerError> {
        loop {
            let room = self.space.notified();
            {
                let mut inner = self.lock();
                if inner.state.is_final() {
                    return Err(AnswerError::Ended);
                }
                let Some(i) = running_part(&inner, action) else {
                    return Err(AnswerError::Ended);
                };
                if inner.log.len() >= self.capacity {
                    inner.trim();
                }
                if inner.log.len() < self.capacity {
                    let answer = self.push_answer(&mut inner, i, payload.clone(), false);
                    drop(inner);
                    self.changed.notify_waiters();
                    self.emit_answer(&answer);
                    return Ok(());
                }
            }
            tokio::select! {
                _ = room => {}
                _ = self.cancel.cancelled() => return Err(AnswerError::Ended),
            }
        }
    }

    fn push_answer(
        &self,
        inner: &mut Inner,
        part: usize,
        payload: Arc<Value>,
        last: bool,
    ) -> Answer {
        let p = &mut inner.parts[part];
        p.answers += 1;
        let answer = Answer {
            request_id: self.id,
            agent: p.agent.clone(),
            seq: p.answers,
            last,
            at: Timestamp::now(),
            payload,
        };
        inner.bytes += approx_size(&answer.payload) + 96;
        inner.log.push_back(RequestUpdate::Answer(answer.clone()));
        answer
    }

    fn emit_answer(&self, answer: &Answer) {
        self.bus.emit(TelemetryKind::AnswerReady {
            event: self.event.clone(),
            request_id: self.id,
            agent: answer.agent.clone(),
            seq: answer.seq,
            last: answer.last,
        });
    }

    /// The worker reports how an agent's call ended. A final reply's payload becomes the
    /// agent's last answer. Ignored once the request has ended.
    pub(crate) fn end_part(&self, action: ActionId, result: &Result<Reply, AgentError>) {
        let mut answer = None;
        let after = {
            let mut inner = self.lock();
            let Some(i) = running_part(&inner, action) else {
                return;
            };
            // The final answer may exceed the log's capacity by one per agent: a bounded
            // overshoot, so that a call's end never waits.
            if let Ok(Reply {
                payload: Some(payload),
            }) = result
            {
                answer = Some(self.push_answer(&mut inner, i, Arc::new(payload.clone()), true));
            }
            let status = match result {
                Ok(_) => PartStatus::Done,
                Err(error) => PartStatus::Failed {
                    error: error.clone(),
                },
            };
            inner.parts[i].status = status.clone();
            let agent = inner.parts[i].agent.clone();
            inner
                .log
                .push_back(RequestUpdate::PartEnded { agent, status });
            self.check_complete(&mut inner)
        };
        if let Some(a) = &answer {
            self.emit_answer(a);
        }
        self.changed.notify_waiters();
        self.after(after);
    }

    /// Ends the request early. Returns false when it had already ended.
    pub(crate) fn stop(&self, state: RequestState) -> bool {
        let after = {
            let mut inner = self.lock();
            if inner.state.is_final() {
                return false;
            }
            self.finish_locked(&mut inner, state)
        };
        self.after(after);
        true
    }

    fn check_complete(&self, inner: &mut Inner) -> After {
        if !inner.routed || inner.parts.iter().any(|p| p.status == PartStatus::Running) {
            return After::default();
        }
        let failed = inner
            .parts
            .iter()
            .filter(|p| matches!(p.status, PartStatus::Failed { .. }))
            .count();
        let of = inner.parts.len();
        let state = match failed {
            0 => RequestState::Complete,
            n if n == of => RequestState::Failed,
            failed => RequestState::PartiallyFailed { failed, of },
        };
        self.finish_locked(inner, state)
    }

    fn finish_locked(&self, inner: &mut Inner, state: RequestState) -> After {
        inner.state = state;
        let stopped: Vec<_> = inner
            .parts
            .iter_mut()
            .filter(|p| p.status == PartStatus::Running)
            .map(|p| {
                p.status = PartStatus::Stopped;
                p.agent.clone()
            })
            .collect();
        let cancel = !stopped.is_empty();
        for agent in stopped {
            inner.log.push_back(RequestUpdate::PartEnded {
                agent,
                status: PartStatus::Stopped,
            });
        }
        inner.log.push_back(RequestUpdate::Finished(state));
        After {
            finished: Some(state),
            cancel,
        }
    }

    fn after(&self, after: After) {
        let Some(state) = after.finished else {
            return;
        };
        if after.cancel {
            self.cancel.cancel();
            let calls = match self.calls.lock() {
                Ok(mut g) => std::mem::take(&mut *g),
                Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
            };
            for call in calls.iter().filter_map(Weak::upgrade) {
                call.member_ended();
            }
        }
        self.changed.notify_waiters();
        self.space.notify_waiters();
        self.bus.emit(TelemetryKind::RequestFinished {
            event: self.event.clone(),
            request_id: self.id,
            state,
        });
        if let Some(keeper) = self.keeper.upgrade() {
            keeper.finished(self);
        }
    }

    /// The state and everything still kept.
    pub(crate) fn snapshot(&self) -> RequestSnapshot {
        let inner = self.lock();
        RequestSnapshot {
            request_id: self.id,
            state: inner.state,
            parts: inner.parts.clone(),
            answers: inner
                .log
                .iter()
                .filter_map(|u| match u {
                    RequestUpdate::Answer(a) => Some(a.clone()),
                    _ => None,
                })
                .collect(),
            dropped_after_reading: inner.base,
        }
    }

    /// A rough size in bytes of what the entry keeps.
    pub(crate) fn weight(&self) -> u32 {
        u32::try_from(self.lock().bytes + 512).unwrap_or(u32::MAX)
    }

    /// A subscription that replays what is kept, then continues live. A watching subscription
    /// counts for live feeds (the last one leaving cancels the feed); a passive one (used by
    /// `wait`) only reads.
    pub(crate) fn subscribe(self: &Arc<Self>, watching: bool) -> AnswerStream {
        let (id, cursor) = {
            let mut inner = self.lock();
            let id = inner.next_subscriber;
            inner.next_subscriber += 1;
            let cursor = inner.base;
            inner.cursors.push((id, cursor));
            if watching {
                inner.watching += 1;
            }
            (id, cursor)
        };
        AnswerStream {
            entry: self.clone(),
            id,
            cursor,
            done: false,
            watching,
        }
    }

    /// Whether the request is a live feed still running (cancelled when the hub shuts down).
    pub(crate) fn is_running_feed(&self) -> bool {
        self.options.cancel_when_unwatched && !self.is_final()
    }
}

fn running_part(inner: &Inner, action: ActionId) -> Option<usize> {
    inner
        .parts
        .iter()
        .position(|p| p.action == action && p.status == PartStatus::Running)
}

/// A cheap estimate of a JSON value's size in memory, without serializing it.
fn approx_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 16,
        Value::String(s) => 24 + s.len(),
        Value::Array(items) => 24 + items.iter().map(approx_size).sum::<usize>(),
        Value::Object(map) => {
            48 + map
                .iter()
                .map(|(k, v)| 32 + k.len() + approx_size(v))
                .sum::<usize>()
        }
    }
}

/// A request's updates: first everything still kept, then live, until
/// [`RequestUpdate::Finished`]. Dropping it unsubscribes; for a live feed
/// ([`RequestOptions::live_feed`]) the last subscriber leaving cancels the request.
pub struct AnswerStream {
    entry: Arc<RequestEntry>,
    id: u64,
    cursor: u64,
    done: bool,
    watching: bool,
}

impl AnswerStream {
    /// The next update, or `None` after `Finished`.
    pub async fn next(&mut self) -> Option<RequestUpdate> {
        if self.done {
            return None;
        }
        loop {
            let changed = self.entry.changed.notified();
            {
                let mut inner = self.entry.lock();
                // Trimming never passes a live subscriber's cursor, so it is never behind
                // `base`; a new subscriber starts at `base`.
                if self.cursor < inner.end() {
                    let idx = usize::try_from(self.cursor.saturating_sub(inner.base))
                        .unwrap_or(usize::MAX);
                    let update = inner.log.get(idx).cloned();
                    self.cursor += 1;
                    self.set_cursor(&mut inner);
                    let was_full = inner.log.len() >= self.entry.capacity;
                    drop(inner);
                    if was_full {
                        self.entry.space.notify_waiters();
                    }
                    if matches!(update, Some(RequestUpdate::Finished(_))) {
                        self.done = true;
                    }
                    return update;
                }
            }
            changed.await;
        }
    }

    fn set_cursor(&self, inner: &mut Inner) {
        if let Some(c) = inner.cursors.iter_mut().find(|(id, _)| *id == self.id) {
            c.1 = self.cursor;
        }
    }

    pub(crate) fn snapshot(&self) -> RequestSnapshot {
        self.entry.snapshot()
    }

    /// The request this stream follows.
    pub fn request_id(&self) -> RequestId {
        self.entry.id
    }
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        let after = {
            let mut inner = self.entry.lock();
            inner.cursors.retain(|(id, _)| *id != self.id);
            if self.watching {
                inner.watching -= 1;
            }
            if self.watching
                && inner.watching == 0
                && self.entry.options.cancel_when_unwatched
                && !inner.state.is_final()
            {
                self.entry
                    .finish_locked(&mut inner, RequestState::Cancelled)
            } else {
                After::default()
            }
        };
        self.entry.space.notify_waiters();
        self.entry.after(after);
    }
}
