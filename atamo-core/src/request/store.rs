//! Where requests live: running ones in a concurrent map; finished ones in a memory-bounded
//! keep-alive cache; expired ids as small tombstones so `poll` can say "expired" rather than
//! "unknown". One timer task owns every deadline and keep-alive expiry.
//!
//! A request that finishes stays in the running map and is only queued (a push under a short
//! lock); the timer task moves what finished into the cache and expires what is due on one
//! tick every [`SWEEP`]. Inserting into the cache and waking the timer task per request were
//! measured to be the largest costs on a request's round trip; batched, they leave it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use dashmap::DashMap;
use futures_util::StreamExt;
use moka::notification::RemovalCause;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;

use super::entry::{Keeper, RequestEntry};
use crate::ids::RequestId;
use crate::message::request::RequestState;
use crate::telemetry::{Bus, ExpiryReason, TelemetryKind};

/// Settings of the request store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreConfig {
    pub(crate) keep_alive: Duration,
    pub(crate) max_kept_bytes: u64,
    pub(crate) answer_buffer: usize,
    pub(crate) tombstones: u64,
}

/// How often finished requests are moved into the cache and expired ones dropped: the
/// precision of keep-alive times.
pub(crate) const SWEEP: Duration = Duration::from_millis(100);

enum Timer {
    Deadline(RequestId, Duration),
}

/// A finished request waiting to be moved into the keep-alive cache.
struct Finished {
    id: RequestId,
    keep: Duration,
}

pub(crate) enum Found {
    Live(Arc<RequestEntry>),
    Expired,
    Unknown,
}

pub(crate) struct RequestStore {
    pub(crate) config: StoreConfig,
    active: DashMap<RequestId, Arc<RequestEntry>>,
    kept: moka::sync::Cache<RequestId, Arc<RequestEntry>>,
    expired: moka::sync::Cache<RequestId, ()>,
    timers: mpsc::UnboundedSender<Timer>,
    finished: std::sync::Mutex<Vec<Finished>>,
}

impl RequestStore {
    /// The store and its timers (run by a task the hub spawns and supervises; stopped by
    /// `stop`).
    pub(crate) fn new(
        config: StoreConfig,
        bus: Arc<Bus>,
        stop: CancellationToken,
    ) -> (Arc<Self>, Timers) {
        let (tx, rx) = mpsc::unbounded_channel();
        let expired = moka::sync::Cache::builder()
            .max_capacity(config.tombstones)
            .build();
        let tombstones = expired.clone();
        let kept = moka::sync::Cache::builder()
            .max_capacity(config.max_kept_bytes)
            .weigher(|_id: &RequestId, e: &Arc<RequestEntry>| e.weight())
            .eviction_listener(move |id: Arc<RequestId>, e: Arc<RequestEntry>, cause| {
                let reason = match cause {
                    // Explicit removal is the keep-alive timer's.
                    RemovalCause::Explicit | RemovalCause::Expired => ExpiryReason::KeepAlive,
                    RemovalCause::Size => ExpiryReason::Memory,
                    RemovalCause::Replaced => return,
                };
                tombstones.insert(*id, ());
                bus.emit(TelemetryKind::RequestExpired {
                    event: e.event.clone(),
                    request_id: *id,
                    reason,
                });
            })
            .build();
        let store = Arc::new(Self {
            config,
            active: DashMap::new(),
            kept,
            expired,
            timers: tx,
            finished: std::sync::Mutex::new(Vec::new()),
        });
        let timers = Timers {
            store: Arc::downgrade(&store),
            rx,
            stop,
            deadlines: DelayQueue::new(),
            expiries: BinaryHeap::new(),
        };
        (store, timers)
    }

    pub(crate) fn insert(&self, entry: Arc<RequestEntry>) {
        if let Some(d) = entry.options.deadline {
            let _ = self.timers.send(Timer::Deadline(entry.id, d.get()));
        }
        self.active.insert(entry.id, entry);
    }

    /// Takes back a request that was never accepted.
    pub(crate) fn remove(&self, id: &RequestId) {
        self.active.remove(id);
    }

    /// Moves finished requests into the cache (into the cache first, then out of the running
    /// map: a concurrent lookup finds it in one or the other, never in neither), and returns
    /// when each one's keep-alive ends.
    fn sweep_finished(&self) -> Vec<(RequestId, Duration)> {
        let batch = match self.finished.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let mut due = Vec::with_capacity(batch.len());
        for f in batch {
            if let Some(e) = self.active.get(&f.id).map(|e| e.clone()) {
                self.kept.insert(f.id, e);
                self.active.remove(&f.id);
                due.push((f.id, f.keep));
            }
        }
        due
    }

    pub(crate) fn find(&self, id: &RequestId) -> Found {
        if let Some(e) = self.active.get(id) {
            return Found::Live(e.clone());
        }
        if let Some(e) = self.kept.get(id) {
            return Found::Live(e);
        }
        if self.expired.contains_key(id) {
            Found::Expired
        } else {
            Found::Unknown
        }
    }

    /// Cancels every live feed still running: at shutdown, nobody will be left to watch them.
    pub(crate) fn cancel_live_feeds(&self) -> usize {
        let feeds: Vec<_> = self
            .active
            .iter()
            .filter(|e| e.is_running_feed())
            .map(|e| e.clone())
            .collect();
        feeds
            .iter()
            .filter(|e| e.stop(RequestState::Cancelled))
            .count()
    }

    /// Requests still running.
    pub(crate) fn running(&self) -> usize {
        self.active.len()
    }

    /// Finished requests whose answers are kept.
    pub(crate) fn kept(&self) -> u64 {
        self.kept.run_pending_tasks();
        self.kept.entry_count()
    }
}

/// A request store's deadlines and keep-alive expiries, and the loop that keeps them. What it
/// holds lives outside the loop's future, so that a loop restarted after a panic goes on with
/// every deadline and expiry.
pub(crate) struct Timers {
    store: std::sync::Weak<RequestStore>,
    rx: mpsc::UnboundedReceiver<Timer>,
    stop: CancellationToken,
    deadlines: DelayQueue<RequestId>,
    /// Keep-alive expiries, earliest first.
    expiries: BinaryHeap<Reverse<(Instant, RequestId)>>,
}

impl Timers {
    /// Runs until `stop` fires or the store is gone.
    pub(crate) async fn run(&mut self) {
        let Self {
            store,
            rx,
            stop,
            deadlines,
            expiries,
        } = self;
        run_timers(store, rx, stop, deadlines, expiries).await;
    }
}

async fn run_timers(
    store: &std::sync::Weak<RequestStore>,
    rx: &mut mpsc::UnboundedReceiver<Timer>,
    stop: &CancellationToken,
    deadlines: &mut DelayQueue<RequestId>,
    expiries: &mut BinaryHeap<Reverse<(Instant, RequestId)>>,
) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            cmd = rx.recv() => match cmd {
                Some(Timer::Deadline(id, d)) => {
                    deadlines.insert(id, d);
                }
                None => return,
            },
            Some(expired) = deadlines.next(), if !deadlines.is_empty() => {
                let Some(store) = store.upgrade() else { return };
                let id = expired.into_inner();
                if let Some(e) = store.active.get(&id).map(|e| e.clone()) {
                    e.stop(RequestState::DeadlinePassed);
                }
            }
            _ = tick.tick() => {
                let Some(store) = store.upgrade() else { return };
                let now = Instant::now();
                let moved = store.sweep_finished();
                if !moved.is_empty() {
                    // Applies the memory bound now (evictions are reported), not whenever moka
                    // next does its housekeeping.
                    store.kept.run_pending_tasks();
                }
                for (id, keep) in moved {
                    // A keep-alive is at most 30 days; should the clock still overflow, the
                    // answers are kept until the hub stops.
                    if let Some(at) = now.checked_add(keep) {
                        expiries.push(Reverse((at, id)));
                    }
                }
                while let Some(Reverse((at, id))) = expiries.peek().copied() {
                    if at > now {
                        break;
                    }
                    expiries.pop();
                    store.kept.invalidate(&id);
                }
            }
        }
    }
}

impl Keeper for RequestStore {
    /// Called by an entry once it has ended: queued to move to the keep-alive cache on the
    /// next sweep (until then it is found in the running map).
    fn finished(&self, entry: &RequestEntry) {
        let keep = entry
            .options
            .keep_alive
            .map_or(self.config.keep_alive, |k| k.get());
        let mut finished = match self.finished.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        finished.push(Finished { id: entry.id, keep });
    }
}
