//! The stateful hub's store, as its tasks share it.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::settings::StoreSettings;
use crate::message::{Action, Timestamp};
use crate::store::{later, Durability, NodeId, Settle, Settlement, Store, WriteBatch};

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
