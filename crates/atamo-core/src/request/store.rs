//! Where requests live: running ones in a concurrent map; finished ones in a memory-bounded
//! keep-alive cache; expired ids as small tombstones so `poll` can say "expired" rather than
//! "unknown". One timer task owns every deadline and keep-alive expiry.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures_util::StreamExt;
use moka::notification::RemovalCause;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;

use super::entry::RequestEntry;
use super::types::RequestState;
use crate::ids::RequestId;
use crate::telemetry::{Bus, ExpiryReason, TelemetryKind};

/// Settings of the request store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreConfig {
    pub(crate) keep_alive: Duration,
    pub(crate) max_kept_bytes: u64,
    pub(crate) answer_buffer: usize,
    pub(crate) tombstones: u64,
}

enum Timer {
    KeepAlive(RequestId, Duration),
    Deadline(RequestId, Duration),
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
}

impl RequestStore {
    /// The store and its timer task (to be spawned by the hub and stopped by `stop`).
    pub(crate) fn new(
        config: StoreConfig,
        bus: Arc<Bus>,
        stop: CancellationToken,
    ) -> (
        Arc<Self>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
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
        });
        let task = run_timers(Arc::downgrade(&store), rx, stop);
        (store, task)
    }

    pub(crate) fn insert(&self, entry: Arc<RequestEntry>) {
        if let Some(d) = entry.options.deadline {
            let _ = self.timers.send(Timer::Deadline(entry.id, d));
        }
        self.active.insert(entry.id, entry);
    }

    /// Takes back a request that was never accepted.
    pub(crate) fn remove(&self, id: &RequestId) {
        self.active.remove(id);
    }

    /// Called by an entry once it has ended: it moves to the keep-alive cache.
    pub(crate) fn finished(&self, entry: &RequestEntry) {
        // Into the keep-alive cache first, then out of the running map: a concurrent lookup
        // finds it in one or the other, never in neither.
        let Some(e) = self.active.get(&entry.id).map(|e| e.clone()) else {
            return;
        };
        let id = e.id;
        let keep = e.options.keep_alive.unwrap_or(self.config.keep_alive);
        self.kept.insert(id, e);
        self.active.remove(&id);
        let _ = self.timers.send(Timer::KeepAlive(id, keep));
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

async fn run_timers(
    store: std::sync::Weak<RequestStore>,
    mut rx: mpsc::UnboundedReceiver<Timer>,
    stop: CancellationToken,
) {
    let mut queue: DelayQueue<Timer> = DelayQueue::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            cmd = rx.recv() => match cmd {
                Some(t) => {
                    let d = match &t {
                        Timer::KeepAlive(_, d) | Timer::Deadline(_, d) => *d,
                    };
                    queue.insert(t, d);
                }
                None => return,
            },
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let Some(store) = store.upgrade() else { return };
                match expired.into_inner() {
                    Timer::KeepAlive(id, _) => store.kept.invalidate(&id),
                    Timer::Deadline(id, _) => {
                        if let Some(e) = store.active.get(&id).map(|e| e.clone()) {
                            e.stop(RequestState::DeadlinePassed);
                        }
                    }
                }
            }
        }
    }
}
