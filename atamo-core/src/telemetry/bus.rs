use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{audit_record, Monitor, TelemetryEvent, TelemetryKind};
use crate::ids::EventId;
use crate::message::Timestamp;
use crate::store::AuditRecord;

/// A run of telemetry events sent together. Stages of the hub buffer their events and publish
/// them once per batch of work, which keeps telemetry cheap at high rates.
#[derive(Debug)]
pub struct TelemetryBatch {
    /// The sequence number of the first event; events are numbered from 0 in publish order.
    pub first_seq: u64,
    /// The events, in order.
    pub events: Vec<TelemetryEvent>,
}

/// Why a subscriber got no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryRecvError {
    /// The subscriber fell behind and `missed` events were dropped for it; receiving goes on.
    #[error("telemetry subscriber lagged and missed {missed} events")]
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
    /// The hub is gone; no more telemetry will come.
    #[error("telemetry closed")]
    Closed,
}

/// The controller's view of all telemetry. Get one from
/// [`Control::subscribe`](crate::Control::subscribe).
///
/// Each subscriber has its own bounded buffer (in batches, set by
/// [`HubBuilder::telemetry_capacity`](crate::HubBuilder::telemetry_capacity)). A subscriber
/// that falls behind never slows the hub: it misses the oldest events and the next `recv` says
/// how many.
pub struct TelemetrySubscriber {
    rx: broadcast::Receiver<Arc<TelemetryBatch>>,
    next_seq: Option<u64>,
    /// The batch `recv` is handing out event by event.
    current: Option<(Arc<TelemetryBatch>, usize)>,
    /// A batch received right after a gap: the gap is reported first, then this batch.
    pending: Option<Arc<TelemetryBatch>>,
    count: Arc<AtomicUsize>,
}

impl Drop for TelemetrySubscriber {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TelemetrySubscriber {
    /// The next event, a lag notice, or `Closed`.
    pub async fn recv(&mut self) -> Result<TelemetryEvent, TelemetryRecvError> {
        loop {
            if let Some((batch, idx)) = &mut self.current {
                if let Some(ev) = batch.events.get(*idx) {
                    *idx += 1;
                    return Ok(ev.clone());
                }
                self.current = None;
            }
            let batch = self.recv_batch().await?;
            self.current = Some((batch, 0));
        }
    }

    /// The next whole batch (cheaper than `recv` when every event is wanted), a lag notice, or
    /// `Closed`. After a lag notice, the next call returns the batch that followed the gap.
    /// Do not mix with `recv` on the same subscriber mid-batch.
    pub async fn recv_batch(&mut self) -> Result<Arc<TelemetryBatch>, TelemetryRecvError> {
        if let Some(batch) = self.pending.take() {
            return Ok(batch);
        }
        loop {
            match self.rx.recv().await {
                Ok(batch) => {
                    let expected = self.next_seq.unwrap_or(batch.first_seq);
                    self.next_seq = Some(batch.first_seq + batch.events.len() as u64);
                    if batch.first_seq > expected {
                        // The events in between were overwritten before we read them; report
                        // them, and hand this batch out next.
                        let missed = batch.first_seq - expected;
                        self.pending = Some(batch);
                        return Err(TelemetryRecvError::Lagged { missed });
                    }
                    return Ok(batch);
                }
                // The exact count comes from the sequence gap of the next batch.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Err(TelemetryRecvError::Closed),
            }
        }
    }
}

/// The hub's telemetry fan-out: a broadcast of batches, numbered so that lag can be counted in
/// events.
pub(crate) struct Bus {
    tx: broadcast::Sender<Arc<TelemetryBatch>>,
    // Numbering and sending happen under one lock so that sequence order is send order, which
    // is what lets a subscriber count exactly what it missed. One lock per batch, not per event.
    next_seq: Mutex<u64>,
    // Subscribers alive. `broadcast::Sender::receiver_count` takes a lock; this is read on
    // every emit.
    subscribers: Arc<AtomicUsize>,
}

impl Bus {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            next_seq: Mutex::new(0),
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn subscribe(&self) -> TelemetrySubscriber {
        // Under the sequence lock, so the subscriber knows the number of the first event it
        // can receive and counts a lag even before its first batch.
        let seq = lock(&self.next_seq);
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        TelemetrySubscriber {
            rx: self.tx.subscribe(),
            next_seq: Some(*seq),
            current: None,
            pending: None,
            count: self.subscribers.clone(),
        }
    }

    pub(crate) fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Publishes a batch. Without subscribers the events are dropped (nobody is listening).
    pub(crate) fn publish(&self, events: Vec<TelemetryEvent>) {
        if events.is_empty() {
            return;
        }
        let mut seq = lock(&self.next_seq);
        let first_seq = *seq;
        *seq += events.len() as u64;
        // An error only means there is no subscriber right now.
        let _ = self.tx.send(Arc::new(TelemetryBatch { first_seq, events }));
    }

    pub(crate) fn emit(&self, kind: TelemetryKind) {
        if !self.has_subscribers() {
            return;
        }
        self.publish(vec![TelemetryEvent {
            at: Timestamp::now(),
            kind,
        }]);
    }
}

fn lock(m: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Steps taken out of a [`Sink`], waiting for their batch to be committed.
pub(crate) struct SinkParts {
    buf: Vec<TelemetryEvent>,
    deferred: Vec<(TelemetryEvent, Monitor)>,
}

impl SinkParts {
    /// Forgets the steps of events `keep` refuses (steps concerning no event stay).
    pub(crate) fn retain_events(&mut self, keep: impl Fn(EventId) -> bool) {
        let keep_step = |ev: &TelemetryEvent| ev.event_id().is_none_or(&keep);
        self.buf.retain(keep_step);
        self.deferred.retain(|(ev, _)| keep_step(ev));
    }
}

/// A stage's buffer of telemetry, flushed to the bus once per batch of work.
///
/// In a stateful hub every step is also kept for the audit log (taken with
/// [`take_audit`](Self::take_audit) and written with the stage's store batch), and the router
/// defers its monitors' steps until its batch is committed, so that a step of an event the store
/// refused (a duplicate) reaches nobody.
pub(crate) struct Sink {
    bus: Arc<Bus>,
    buf: Vec<TelemetryEvent>,
    enabled: bool,
    now: Timestamp,
    audit: Option<Vec<AuditRecord>>,
    deferred: Option<Vec<(TelemetryEvent, Monitor)>>,
}

impl Sink {
    pub(crate) fn new(bus: Arc<Bus>) -> Self {
        Self {
            bus,
            buf: Vec::new(),
            enabled: true,
            now: Timestamp::now(),
            audit: None,
            deferred: None,
        }
    }

    /// Keeps every step for the audit log too.
    pub(crate) fn with_audit(mut self, audit: bool) -> Self {
        self.audit = audit.then(Vec::new);
        self
    }

    /// Sends monitors their steps at [`flush`](Self::flush) rather than at once.
    pub(crate) fn deferring_monitors(mut self, defer: bool) -> Self {
        self.deferred = defer.then(Vec::new);
        self
    }

    /// Takes the steps buffered for the bus and the deferred monitors, to be flushed later
    /// with [`flush_parts`](Self::flush_parts).
    pub(crate) fn take_parts(&mut self) -> SinkParts {
        SinkParts {
            buf: std::mem::take(&mut self.buf),
            deferred: self
                .deferred
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
        }
    }

    /// Sends steps taken earlier with [`take_parts`](Self::take_parts): to their monitors, then
    /// to the bus.
    pub(crate) fn flush_parts(&mut self, parts: SinkParts) {
        for (ev, m) in parts.deferred {
            m.send(ev);
        }
        self.bus.publish(parts.buf);
    }

    /// The audit records of the steps since the last call.
    pub(crate) fn take_audit(&mut self) -> Vec<AuditRecord> {
        self.audit.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts a batch of work: checks whether anyone listens (an unwatched hub builds no
    /// telemetry for the bus) and reads the clock. Steps of one batch share its timestamp; a
    /// batch takes microseconds, and a clock read per step cost a measurable share of routing.
    pub(crate) fn begin(&mut self) {
        self.enabled = self.bus.has_subscribers();
        self.now = Timestamp::now();
    }

    /// The time of the current batch (read by [`begin`](Self::begin)).
    pub(crate) fn now(&self) -> Timestamp {
        self.now
    }

    /// Records a step for the bus and for the message's monitor, if it has one.
    pub(crate) fn emit(&mut self, kind: TelemetryKind, monitor: Option<&Monitor>) {
        if !self.enabled && monitor.is_none() && self.audit.is_none() {
            return;
        }
        let ev = TelemetryEvent { at: self.now, kind };
        if let Some(a) = &mut self.audit {
            a.push(audit_record(&ev));
        }
        if let Some(m) = monitor {
            match &mut self.deferred {
                Some(d) => d.push((ev.clone(), m.clone())),
                None => m.send(ev.clone()),
            }
        }
        if self.enabled {
            self.buf.push(ev);
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Some(d) = &mut self.deferred {
            for (ev, m) in d.drain(..) {
                m.send(ev);
            }
        }
        if !self.buf.is_empty() {
            let cap = self.buf.capacity();
            let events = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
            self.bus.publish(events);
        }
    }
}
