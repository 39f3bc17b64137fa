//! A stateful hub's batches on their way to the store: each batch's write starts as soon as it
//! is routed (the next batch is routed meanwhile), and the committer answers the publishers
//! and delivers the actions once the write is done, in the order the batches were routed.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::deliver::deliver;
use crate::hub::components::ComponentHandle;
use crate::hub::dispatch::Dispatch;
use crate::hub::durable::Durable;
use crate::hub::envelope::Ack;
use crate::hub::routing::AgentEntry;
use crate::hub::shared::Shared;
use crate::hub::supervise::catching;
use crate::ids::EventId;
use crate::publish::Receipt;
use crate::request::{RequestEntry, RequestState};
use crate::store::{AcceptEvent, AcceptOutcome, StoreError, WriteBatch, WriteOutcome};
use crate::telemetry::{Sink, SinkParts};

/// An event of a stateful hub's batch, waiting for the commit before its client is answered.
pub(super) struct Pending {
    pub(super) ack: Option<Ack>,
    pub(super) receipt: Receipt,
    /// The event and its durable actions, when anything of it is to be stored.
    pub(super) stored: Option<AcceptEvent>,
    pub(super) request: Option<Arc<RequestEntry>>,
}

/// How many routed batches may wait for their commit at once.
pub(super) const PIPELINE: usize = 4;

/// A routed batch on its way to its commit.
pub(super) struct Handoff {
    write: Option<tokio::task::JoinHandle<Result<WriteOutcome, StoreError>>>,
    /// For each stored event, in write order: its index in `pending`.
    stored_at: Vec<usize>,
    pending: Vec<Pending>,
    dispatches: Vec<(Arc<AgentEntry>, Dispatch)>,
    telemetry: SinkParts,
}

impl Handoff {
    /// Takes a routed batch (its events for the store, the audit of its routing, its
    /// dispatches and its telemetry) and starts its store write. The write is spawned so that
    /// it reaches the store now, while the next batch is routed.
    pub(super) fn start(
        durable: &Durable,
        runtime: &tokio::runtime::Handle,
        mut pending: Vec<Pending>,
        dispatches: Vec<(Arc<AgentEntry>, Dispatch)>,
        sink: &mut Sink,
    ) -> Self {
        let mut batch = WriteBatch {
            audit: sink.take_audit(),
            ..WriteBatch::default()
        };
        let mut stored_at = Vec::new();
        for (i, p) in pending.iter_mut().enumerate() {
            if let Some(s) = p.stored.take() {
                stored_at.push(i);
                batch.accepts.push(s);
            }
        }
        let write = (!batch.is_empty()).then(|| {
            let store = durable.store.clone();
            runtime.spawn(async move { store.write(batch).await })
        });
        Self {
            write,
            stored_at,
            pending,
            dispatches,
            telemetry: sink.take_parts(),
        }
    }
}

/// Answers and delivers committed batches, in the order they were routed.
pub(super) struct Committer {
    shared: Arc<Shared>,
    sink: Sink,
    abandoned: u64,
}

impl Committer {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            sink: Sink::new(shared.bus.clone()).deferring_monitors(true),
            shared,
            abandoned: 0,
        }
    }

    /// Runs a stateful hub's committer. After a panic it is failed for good: the batch it was
    /// answering was stored but not delivered, and the batches behind it are refused.
    pub(super) async fn supervised(
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Handoff>,
        component: ComponentHandle,
    ) -> u64 {
        match catching(Self::new(shared).run(rx)).await {
            Ok(abandoned) => abandoned,
            Err(panic) => {
                tracing::error!(
                    component = "committer",
                    %panic,
                    "the committer panicked; the hub takes no more events. The batch it was \
                     answering is stored: its actions run once the node is restarted"
                );
                component.failed_for_good(format!(
                    "panicked ({panic}); the hub takes no more events until it is restarted"
                ));
                0
            }
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Handoff>) -> u64 {
        while let Some(h) = rx.recv().await {
            self.finish(h).await;
        }
        self.abandoned
    }

    /// Answers each client: its receipt, the first event's receipt for a duplicate, or the
    /// store's error. Duplicates and events the store refused are neither delivered nor
    /// reported.
    async fn finish(&mut self, h: Handoff) {
        let Handoff {
            write,
            stored_at,
            mut pending,
            mut dispatches,
            mut telemetry,
        } = h;
        let mut answers: Vec<Result<Receipt, StoreError>> =
            pending.iter().map(|p| Ok(p.receipt)).collect();
        let mut refused: Vec<EventId> = Vec::new();
        let outcome = match write {
            None => Ok(WriteOutcome::default()),
            Some(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(StoreError::unavailable("the store write stopped").with_source(e)),
            },
        };
        match outcome {
            Ok(out) => {
                for (i, outcome) in stored_at.into_iter().zip(out.accepted) {
                    if let AcceptOutcome::Duplicate {
                        event_id,
                        correlation_id,
                    } = outcome
                    {
                        refused.push(pending[i].receipt.event_id);
                        answers[i] = Ok(Receipt {
                            event_id,
                            correlation_id,
                        });
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error.chain(), events = pending.len(), "events not committed");
                for (i, p) in pending.iter().enumerate() {
                    refused.push(p.receipt.event_id);
                    answers[i] = Err(error.clone());
                }
            }
        }
        if !refused.is_empty() {
            telemetry.retain_events(|id| !refused.contains(&id));
            dispatches.retain(|(_, d)| !refused.contains(&d.action.meta.event.id));
        }
        for (p, answer) in pending.drain(..).zip(answers) {
            if answer.is_err() {
                if let Some(r) = &p.request {
                    r.stop(RequestState::Failed);
                }
            }
            if let Some(ack) = p.ack {
                let _ = ack.send(answer);
            }
        }
        // Telemetry of routing goes out before the actions.
        self.sink.flush_parts(telemetry);
        self.abandoned += deliver(&self.shared, &mut dispatches, &mut self.sink).await;
        self.sink.flush();
    }
}
