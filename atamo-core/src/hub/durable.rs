//! The stateful hub's side of the store: settings, the settle writer, and the node's
//! background tasks (claiming ready actions, heartbeating leases, pruning).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::worker::Dispatch;
use super::Shared;
use crate::message::{Action, ActionMeta, Event, EventMeta, Origin, Timestamp};
use crate::rules::Sharing;
use crate::store::{
    later, ActionRecord, Claimed, Durability, EventHeader, EventRecord, NodeId, OriginRecord,
    Retention, Settle, Settlement, Store, WriteBatch,
};

/// How a stateful hub uses its store.
///
/// ```
/// use std::time::Duration;
/// use atamo_core::hub::StoreSettings;
///
/// let settings = StoreSettings::default()
///     .lease(Duration::from_secs(10))
///     .dedupe_window(Duration::from_secs(3600));
/// assert_eq!(settings.lease_time(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreSettings {
    pub(crate) node: NodeId,
    pub(crate) lease: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) claim_batch: usize,
    pub(crate) dedupe_window: Duration,
    pub(crate) default: Durability,
    pub(crate) retention: Retention,
    pub(crate) prune_interval: Duration,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            node: NodeId::generate(),
            lease: Duration::from_secs(30),
            claim_interval: Duration::from_millis(500),
            claim_batch: 256,
            dedupe_window: Duration::from_secs(24 * 3600),
            default: Durability::Durable,
            retention: Retention::default(),
            prune_interval: Duration::from_secs(60),
        }
    }
}

impl StoreSettings {
    /// This node's name in the store (default: host, process id and a random part).
    pub fn node(mut self, node: NodeId) -> Self {
        self.node = node;
        self
    }

    /// How long a node holds an action before another may take it over (default 30 s). The
    /// node renews its leases every third of this while it works; after a crash, its actions
    /// are taken over once their leases end.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// The lease time.
    pub fn lease_time(&self) -> Duration {
        self.lease
    }

    /// How often the node looks for ready actions (retries due, redriven actions, actions of
    /// nodes that died) when nothing wakes it sooner (default 500 ms).
    pub fn claim_interval(mut self, every: Duration) -> Self {
        self.claim_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How many ready actions one claim takes at most (default 256).
    pub fn claim_batch(mut self, n: usize) -> Self {
        self.claim_batch = n.max(1);
        self
    }

    /// How long a dedupe key blocks a second event with the same key (default 24 hours).
    pub fn dedupe_window(mut self, window: Duration) -> Self {
        self.dedupe_window = window;
        self
    }

    /// Whether events are durable unless their type or rule says otherwise (default
    /// `Durable`).
    pub fn default_durability(mut self, durability: Durability) -> Self {
        self.default = durability;
        self
    }

    /// How long audit entries, events and finished actions are kept (default: forever).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How often the retention is applied (default every minute).
    pub fn prune_interval(mut self, every: Duration) -> Self {
        self.prune_interval = every.max(Duration::from_millis(10));
        self
    }
}

/// The stateful hub's store and what its tasks share.
pub(crate) struct Durable {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) settings: StoreSettings,
    settle_tx: mpsc::Sender<WriteBatch>,
    /// Wakes the claimer (redrive, release).
    pub(crate) wake: Arc<Notify>,
    /// Settles the store refused because the lease had been lost.
    pub(crate) lost_leases: AtomicU64,
    /// Tells the settle writer to write what is queued and stop (the workers are done).
    pub(crate) stop: CancellationToken,
}

impl Durable {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        settings: StoreSettings,
    ) -> (Arc<Self>, mpsc::Receiver<WriteBatch>) {
        let (settle_tx, settle_rx) = mpsc::channel(1024);
        let wake = store.wake_hint().unwrap_or_default();
        (
            Arc::new(Self {
                store,
                settings,
                settle_tx,
                wake,
                lost_leases: AtomicU64::new(0),
                stop: CancellationToken::new(),
            }),
            settle_rx,
        )
    }

    pub(crate) fn node(&self) -> &NodeId {
        &self.settings.node
    }

    /// Whether an action planned with `rule` for an event of a type with `event_type`
    /// durability is kept in the store.
    pub(crate) fn is_durable(
        &self,
        rule: Option<Durability>,
        event_type: Option<Durability>,
    ) -> bool {
        rule.or(event_type).unwrap_or(self.settings.default) == Durability::Durable
    }

    /// Queues a batch of settles, results and audit records for the settle writer. Waits when
    /// the writer is behind.
    pub(crate) async fn settle(&self, batch: WriteBatch) {
        if batch.is_empty() {
            return;
        }
        if self.settle_tx.send(batch).await.is_err() {
            tracing::warn!(
                "the settle writer has stopped; the actions will run again after their leases end"
            );
        }
    }

    /// A settle for this node.
    pub(crate) fn settle_of(&self, lease: u32, action: &Action, outcome: Settlement) -> Settle {
        Settle {
            action: action.id(),
            attempt: lease,
            node: self.settings.node.clone(),
            outcome,
        }
    }

    /// A retry kept by this node: the lease runs past the retry's start.
    pub(crate) fn held_retry(&self, now: Timestamp, after: Duration, error: Value) -> Settlement {
        let run_at = later(now, after);
        Settlement::Retry {
            run_at,
            hold_until: Some(later(run_at, self.settings.lease)),
            error,
        }
    }
}

/// The stored form of an event.
pub(crate) fn event_record(event: &Event, at: Timestamp) -> EventRecord {
    let m = event.meta();
    EventRecord {
        id: m.id,
        event_type: m.event_type.clone(),
        principal: m.principal.clone(),
        correlation_id: m.correlation_id,
        dedupe_key: m.dedupe_key.as_deref().map(str::to_owned),
        origin: m.origin.as_ref().map(OriginRecord::from),
        request: m.request,
        payload: event.payload().clone(),
        accepted_at: at,
    }
}

/// The stored form of a dispatched action.
pub(crate) fn action_record(d: &Dispatch) -> ActionRecord {
    let m = &d.action.meta;
    let e = &m.event;
    ActionRecord {
        id: m.id,
        agent: m.agent.clone(),
        action_type: m.action_type.clone(),
        rule: m.rule.clone(),
        provider: m.provider.clone(),
        event: EventHeader {
            id: e.id,
            event_type: e.event_type.clone(),
            principal: e.principal.clone(),
            correlation_id: e.correlation_id,
            dedupe_key: e.dedupe_key.as_deref().map(str::to_owned),
            origin: e.origin.as_ref().map(OriginRecord::from),
        },
        request: e.request,
        payload: d.action.payload().clone(),
        retry: d.retry,
        fallback: d.fallback.clone(),
    }
}

/// A claimed action, ready for its agent's worker.
fn dispatch_of(claimed: Claimed) -> Dispatch {
    let Claimed { record, attempt } = claimed;
    let h = record.event;
    let event = Arc::new(EventMeta {
        id: h.id,
        event_type: h.event_type,
        principal: h.principal,
        correlation_id: h.correlation_id,
        dedupe_key: h.dedupe_key.map(Arc::from),
        origin: h.origin.map(|o| Origin {
            agent: o.agent,
            action: o.action,
        }),
        request: record.request,
    });
    let action = Action::new(
        ActionMeta {
            id: record.id,
            agent: record.agent,
            action_type: record.action_type,
            rule: record.rule,
            provider: record.provider,
            attempt,
            event,
        },
        Arc::new(record.payload),
    );
    Dispatch {
        action,
        monitor: None,
        request: None,
        sharing: Sharing::default(),
        retry: record.retry,
        fallback: record.fallback,
        first_attempt: None,
        lease: Some(attempt),
    }
}

/// Writes workers' settles, merging what is waiting into one store write.
pub(crate) async fn settle_writer(durable: Arc<Durable>, mut rx: mpsc::Receiver<WriteBatch>) {
    let mut bufs = Vec::with_capacity(64);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut bufs, 64) => if n == 0 { break },
            _ = durable.stop.cancelled() => {
                while let Ok(b) = rx.try_recv() {
                    bufs.push(b);
                }
                if bufs.is_empty() {
                    break;
                }
            }
        }
        let mut batch = WriteBatch::default();
        for b in bufs.drain(..) {
            batch.settles.extend(b.settles);
            batch.results.extend(b.results);
            batch.audit.extend(b.audit);
        }
        match durable.store.write(batch).await {
            Ok(out) => {
                let lost = out.settled.iter().filter(|ok| !**ok).count() as u64;
                if lost > 0 {
                    durable.lost_leases.fetch_add(lost, Ordering::Relaxed);
                    tracing::debug!(lost, "settles refused: the leases had been taken over");
                }
            }
            // At least once: the actions run again once their leases end.
            Err(error) => tracing::warn!(%error, "settles not written"),
        }
    }
}

/// Starts a stateful hub's tasks: the settle writer (returned: the hub awaits it after its
/// workers) and the claimer, heartbeat and pruner (side tasks).
pub(crate) fn start(
    shared: &Arc<Shared>,
    durable: &Arc<Durable>,
    settles: mpsc::Receiver<WriteBatch>,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    let rt = &shared.runtime;
    let node = durable.node().to_string();
    let writer = rt.spawn(
        settle_writer(durable.clone(), settles)
            .instrument(tracing::info_span!("store_settles", %node)),
    );
    shared.track_side(
        rt.spawn(
            claimer(shared.clone(), durable.clone())
                .instrument(tracing::info_span!("store_claims", %node)),
        ),
    );
    shared.track_side(
        rt.spawn(
            heartbeat(durable.clone(), shared.store_stop.clone())
                .instrument(tracing::info_span!("store_leases", %node)),
        ),
    );
    shared.track_side(
        rt.spawn(
            pruner(durable.clone(), shared.store_stop.clone())
                .instrument(tracing::info_span!("store_prune", %node)),
        ),
    );
    writer
}

/// Renews this node's leases every third of the lease time until `stop`.
pub(crate) async fn heartbeat(durable: Arc<Durable>, stop: CancellationToken) {
    let every = durable.settings.lease / 3;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = durable
            .store
            .heartbeat(durable.node(), durable.settings.lease)
            .await
        {
            tracing::warn!(%error, "leases not renewed");
        }
    }
}

/// Applies the retention every `prune_interval` until `stop`.
pub(crate) async fn pruner(durable: Arc<Durable>, stop: CancellationToken) {
    let retention = durable.settings.retention.clone();
    let mut tick = tokio::time::interval(durable.settings.prune_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match durable.store.prune(&retention).await {
            Ok(report) => tracing::debug!(?report, "store pruned"),
            Err(error) => tracing::warn!(%error, "store not pruned"),
        }
    }
}

/// Takes ready actions (retries due, redriven actions, actions of nodes that died) and hands
/// them to their agents' workers, until shutdown begins.
pub(crate) async fn claimer(shared: Arc<Shared>, durable: Arc<Durable>) {
    let settings = &durable.settings;
    loop {
        let mut claimed_any = false;
        if let Err(error) = durable.store.recover_expired().await {
            tracing::warn!(%error, "expired leases not recovered");
        }
        match durable
            .store
            .claim(durable.node(), settings.claim_batch, settings.lease)
            .await
        {
            Ok(claimed) => {
                claimed_any = claimed.len() == settings.claim_batch;
                let mut unknown = WriteBatch::default();
                for c in claimed {
                    let d = dispatch_of(c);
                    let entry = shared.routing.load().agents.get(d.action.agent()).cloned();
                    match entry {
                        Some(entry) => {
                            tracing::debug!(action = %d.action.id(), attempt = d.action.attempt(), "claimed");
                            if let Err(e) = entry.tx.send(d).await {
                                let d = e.0;
                                unknown.settles.push(durable.settle_of(
                                    d.lease.unwrap_or_default(),
                                    &d.action,
                                    Settlement::Release,
                                ));
                            }
                        }
                        None => {
                            // Another node may run this agent: give the action back for later.
                            let now = Timestamp::now();
                            unknown.settles.push(durable.settle_of(
                                d.lease.unwrap_or_default(),
                                &d.action,
                                Settlement::Retry {
                                    run_at: later(now, settings.claim_interval * 10),
                                    hold_until: None,
                                    error: serde_json::json!({
                                        "kind": "unavailable",
                                        "reason": format!("agent `{}` is not registered on node {}", d.action.agent(), durable.node()),
                                    }),
                                },
                            ));
                        }
                    }
                }
                durable.settle(unknown).await;
            }
            Err(error) => tracing::warn!(%error, "ready actions not claimed"),
        }
        if claimed_any {
            // A full batch: more may be waiting.
            if shared.drain.is_cancelled() {
                break;
            }
            continue;
        }
        tokio::select! {
            _ = shared.drain.cancelled() => break,
            _ = durable.wake.notified() => {}
            _ = tokio::time::sleep(settings.claim_interval) => {}
        }
    }
}
