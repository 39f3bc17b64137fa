//! How the router accepts a batch of events: a stateless hub answers each publisher as its
//! event is routed and queues the batch's actions at once; a stateful hub first commits the
//! events and their durable actions (see [`commit`](super::commit)). The router calls the same
//! methods either way.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::commit::{Committer, Handoff, Pending, PIPELINE};
use super::deliver::deliver;
use crate::hub::dispatch::Dispatch;
use crate::hub::durable::{action_record, event_record, Durable};
use crate::hub::envelope::Ack;
use crate::hub::routing::AgentEntry;
use crate::hub::shared::Shared;
use crate::message::{Event, Timestamp};
use crate::publish::Receipt;
use crate::request::RequestEntry;
use crate::store::{AcceptEvent, Durability, NewAction};
use crate::telemetry::Sink;

pub(super) enum Acceptance {
    Stateless,
    Durable {
        durable: Arc<Durable>,
        /// The batch's events, waiting for the commit before their clients are answered.
        pending: Vec<Pending>,
        /// Routed batches on their way to the committer.
        committer: mpsc::Sender<Handoff>,
        task: JoinHandle<u64>,
    },
}

/// One event's share of its batch's store write (nothing, in a stateless hub).
pub(super) struct Accepting {
    /// The event and its durable actions (boxed: a stateless hub moves only a pointer).
    stored: Option<Box<AcceptEvent>>,
    any_durable: bool,
    type_durability: Option<Durability>,
}

impl Acceptance {
    /// In a stateful hub, starts the committer: batches are committed in a pipeline (while
    /// one batch's write is in flight, the next is routed, and the store groups both into one
    /// transaction); the committer answers publishers and delivers each batch in order.
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        match &shared.durable {
            None => Self::Stateless,
            Some(durable) => {
                let (committer, rx) = mpsc::channel::<Handoff>(PIPELINE);
                let component = shared.components.register("committer", true);
                let task = shared.runtime.spawn(
                    Committer::supervised(shared.clone(), rx, component)
                        .instrument(tracing::info_span!("hub_committer")),
                );
                Self::Durable {
                    durable: durable.clone(),
                    pending: Vec::new(),
                    committer,
                    task,
                }
            }
        }
    }

    /// Whether what is accepted is kept: the routing's steps are then audited, and a
    /// monitored event's steps wait for the commit.
    pub(super) fn keeps(&self) -> bool {
        matches!(self, Self::Durable { .. })
    }

    /// Starts accepting `event` (a request's event when `is_request`), of a type with
    /// `type_durability`.
    pub(super) fn event(
        &self,
        event: &Event,
        is_request: bool,
        now: Timestamp,
        type_durability: Option<Durability>,
    ) -> Accepting {
        let stored = match self {
            Self::Stateless => None,
            Self::Durable { durable, .. } => {
                let mut accept = AcceptEvent {
                    event: event_record(event, now),
                    dedupe_window: durable.settings.dedupe_window,
                    actions: Vec::new(),
                };
                // Requests are never deduplicated: each has its own answers.
                if is_request {
                    accept.event.dedupe_key = None;
                }
                Some(Box::new(accept))
            }
        };
        Accepting {
            stored,
            any_durable: false,
            type_durability,
        }
    }

    /// The lease a new action starts with: attempt 1, when the action is durable (by its
    /// rule's durability, else its event type's, else the hub's default).
    pub(super) fn lease(&self, accepting: &Accepting, rule: Option<Durability>) -> Option<u32> {
        match self {
            Self::Durable { durable, .. }
                if durable.is_durable(rule, accepting.type_durability) =>
            {
                Some(1)
            }
            _ => None,
        }
    }

    /// A dispatched action of the event: a durable one is committed with it, leased to this
    /// node.
    pub(super) fn action(&self, accepting: &mut Accepting, dispatch: &Dispatch) {
        if let (Self::Durable { durable, .. }, Some(stored), Some(_)) =
            (self, &mut accepting.stored, dispatch.lease)
        {
            accepting.any_durable = true;
            stored.actions.push(NewAction {
                record: action_record(dispatch),
                lease: Some((durable.node().clone(), durable.settings.lease)),
            });
        }
    }

    /// The event is routed: a stateless hub answers its publisher now; a stateful one once
    /// the batch is committed. An event is stored when it is durable itself or has a durable
    /// action.
    pub(super) fn accepted(
        &mut self,
        accepting: Accepting,
        ack: Option<Ack>,
        receipt: Receipt,
        request: Option<Arc<RequestEntry>>,
    ) {
        match self {
            Self::Stateless => {
                if let Some(ack) = ack {
                    let _ = ack.send(Ok(receipt));
                }
            }
            Self::Durable {
                durable, pending, ..
            } => {
                let durable_type = durable.is_durable(None, accepting.type_durability);
                let any_durable = accepting.any_durable;
                pending.push(Pending {
                    ack,
                    receipt,
                    stored: accepting
                        .stored
                        .filter(|_| durable_type || any_durable)
                        .map(|stored| *stored),
                    request,
                });
            }
        }
    }

    /// The batch is routed. Stateless: its telemetry goes out, then its actions are queued
    /// (so no agent's outcome can be published ahead of the dispatch it follows). Stateful:
    /// its write starts and it goes to the committer. Returns how many actions were abandoned.
    pub(super) async fn end_batch(
        &mut self,
        shared: &Shared,
        dispatches: &mut Vec<(Arc<AgentEntry>, Dispatch)>,
        sink: &mut Sink,
    ) -> u64 {
        match self {
            Self::Stateless => {
                sink.flush();
                let abandoned = deliver(shared, dispatches, sink).await;
                sink.flush();
                abandoned
            }
            Self::Durable {
                durable,
                pending,
                committer,
                ..
            } => {
                let handoff = Handoff::start(
                    durable,
                    &shared.runtime,
                    std::mem::take(pending),
                    std::mem::take(dispatches),
                    sink,
                );
                if committer.send(handoff).await.is_err() {
                    tracing::error!("the committer stopped; events are not answered");
                }
                0
            }
        }
    }

    /// Intake is over: waits for the committer to finish the last batches. Returns how many
    /// actions it abandoned.
    pub(super) async fn finish(self) -> u64 {
        match self {
            Self::Stateless => 0,
            Self::Durable {
                committer, task, ..
            } => {
                drop(committer);
                task.await.unwrap_or_default()
            }
        }
    }
}
