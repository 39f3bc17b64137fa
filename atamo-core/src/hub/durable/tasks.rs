//! A stateful hub's node tasks: the settle writer, the claimer, the lease heartbeat and the
//! pruner.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::records::dispatch_of;
use super::state::Durable;
use crate::hub::shared::Shared;
use crate::hub::supervise;
use crate::message::Timestamp;
use crate::store::{later, Settlement, WriteBatch};

/// Writes workers' settles, merging what is waiting into one store write.
pub(crate) async fn settle_writer(durable: Arc<Durable>, rx: &mut mpsc::Receiver<WriteBatch>) {
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
            Err(error) => tracing::warn!(error = %error.chain(), "settles not written"),
        }
    }
}

/// Starts a stateful hub's tasks under supervision (`hub/supervise.rs`): the settle writer
/// (returned: the hub awaits it after its workers) and the claimer, heartbeat and pruner
/// (side tasks).
pub(crate) fn start(
    shared: &Arc<Shared>,
    durable: &Arc<Durable>,
    settles: mpsc::Receiver<WriteBatch>,
) -> tokio::task::JoinHandle<()> {
    use tracing::Instrument;
    let rt = &shared.runtime;
    let node = durable.node().to_string();
    let components = &shared.components;
    let d = durable.clone();
    let writer = rt.spawn(
        supervise::with_queue(
            settles,
            components.register("settle_writer", true),
            "the settles it was writing (their actions stay leased until the node restarts)",
            move |rx| Box::pin(settle_writer(d.clone(), rx)),
        )
        .instrument(tracing::info_span!("store_settles", %node)),
    );
    let (s, d) = (shared.clone(), durable.clone());
    shared.tasks.track_side(
        rt.spawn(
            supervise::restarted(
                components.register("claimer", false),
                "the actions it had claimed (they run once the node restarts)",
                Some(shared.lifecycle.drain.clone()),
                move || Box::pin(claimer(s.clone(), d.clone())),
            )
            .instrument(tracing::info_span!("store_claims", %node)),
        ),
    );
    let (d, stop) = (durable.clone(), shared.lifecycle.store_stop.clone());
    shared.tasks.track_side(
        rt.spawn(
            supervise::restarted(
                components.register("heartbeat", false),
                "nothing",
                Some(stop.clone()),
                move || Box::pin(heartbeat(d.clone(), stop.clone())),
            )
            .instrument(tracing::info_span!("store_leases", %node)),
        ),
    );
    let (d, stop) = (durable.clone(), shared.lifecycle.store_stop.clone());
    shared.tasks.track_side(
        rt.spawn(
            supervise::restarted(
                components.register("pruner", false),
                "nothing",
                Some(stop.clone()),
                move || Box::pin(pruner(d.clone(), stop.clone())),
            )
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
            tracing::warn!(error = %error.chain(), "leases not renewed");
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
            Err(error) => tracing::warn!(error = %error.chain(), "store not pruned"),
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
            tracing::warn!(error = %error.chain(), "expired leases not recovered");
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
            Err(error) => tracing::warn!(error = %error.chain(), "ready actions not claimed"),
        }
        if claimed_any {
            // A full batch: more may be waiting.
            if shared.lifecycle.drain.is_cancelled() {
                break;
            }
            continue;
        }
        tokio::select! {
            _ = shared.lifecycle.drain.cancelled() => break,
            _ = durable.wake.notified() => {}
            _ = tokio::time::sleep(settings.claim_interval) => {}
        }
    }
}
