//! The routing task: takes accepted events in batches, asks the rule providers, and queues the
//! resulting actions for their agents' workers.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::durable::{action_record, event_record, Durable};
use super::handle::{Ack, Envelope, Receipt};
use super::routing::{AgentEntry, Planned, Routing, Verdict};
use super::worker::Dispatch;
use super::Shared;
use crate::ids::ActionId;
use crate::ids::EventId;
use crate::message::{Action, ActionMeta, Timestamp};
use crate::rules::Proposal;
use crate::store::{AcceptEvent, AcceptOutcome, NewAction, WriteBatch};
use crate::telemetry::{AbandonReason, Sink, SinkParts, TelemetryKind};

const BATCH: usize = 512;

/// How many events the router took in after shutdown began.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouterReport {
    pub(crate) drained: u64,
    pub(crate) abandoned: u64,
}

pub(crate) struct Router {
    shared: Arc<Shared>,
    sink: Sink,
    scratch: Vec<Proposal>,
    planned: Vec<Planned>,
    action_ids: Vec<Option<ActionId>>,
    dispatches: Vec<(Arc<AgentEntry>, Dispatch)>,
    abandoned: u64,
    /// In a stateful hub: the store, and the batch's events waiting for their commit.
    durable: Option<Arc<Durable>>,
    pending: Vec<Pending>,
}

/// An event of a stateful hub's batch, waiting for the commit before its client is answered.
struct Pending {
    ack: Option<Ack>,
    receipt: Receipt,
    /// The event and its durable actions, when anything of it is to be stored.
    stored: Option<AcceptEvent>,
    request: Option<Arc<crate::request::RequestEntry>>,
}

impl Router {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let durable = shared.durable.clone();
        let sink = Sink::new(shared.bus.clone())
            .with_audit(durable.is_some())
            .deferring_monitors(durable.is_some());
        Self {
            shared,
            sink,
            scratch: Vec::new(),
            planned: Vec::new(),
            action_ids: Vec::new(),
            dispatches: Vec::new(),
            abandoned: 0,
            durable,
            pending: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Envelope>) -> RouterReport {
        let mut buf = Vec::with_capacity(BATCH);
        let mut closing = false;
        let mut report = RouterReport::default();
        // In a stateful hub, batches are committed in a pipeline: while one batch's write is
        // in flight, the next is routed, and the store groups both into one transaction. The
        // committer answers publishers and delivers each batch in order, once committed.
        let committer = self.durable.is_some().then(|| {
            let (tx, rx) = mpsc::channel::<Handoff>(PIPELINE);
            let committer = Committer {
                shared: self.shared.clone(),
                sink: Sink::new(self.shared.bus.clone()).deferring_monitors(true),
                abandoned: 0,
            };
            let task = self.shared.runtime.spawn(committer.run(rx));
            (tx, task)
        });
        loop {
            tokio::select! {
                biased;
                _ = self.shared.drain.cancelled(), if !closing => {
                    // Publishers still racing in get their event back as `ShuttingDown`;
                    // everything already queued is routed below.
                    rx.close();
                    closing = true;
                    continue;
                }
                n = rx.recv_many(&mut buf, BATCH) => {
                    if n == 0 {
                        break;
                    }
                    if closing {
                        report.drained += n as u64;
                    }
                }
            }
            let routing = self.shared.routing.load_full();
            self.sink.begin();
            // One acceptance time per batch, as for its telemetry.
            let now = self.sink.now();
            for env in buf.drain(..) {
                self.route(env, &routing, now);
            }
            if let Some((tx, _)) = &committer {
                let handoff = self.hand_off();
                if tx.send(handoff).await.is_err() {
                    tracing::error!("the committer stopped; events are not answered");
                }
                continue;
            }
            // Telemetry of routing goes out before the actions, so no agent's outcome can be
            // published ahead of the dispatch it follows.
            self.sink.flush();
            let mut dispatches = std::mem::take(&mut self.dispatches);
            self.abandoned += deliver(&self.shared, &mut dispatches, &mut self.sink).await;
            self.dispatches = dispatches;
            self.sink.flush();
        }
        if let Some((tx, task)) = committer {
            drop(tx);
            self.abandoned += task.await.unwrap_or_default();
        }
        self.shared.intake_done.cancel();
        report.abandoned = self.abandoned;
        report
    }

    fn route(&mut self, env: Envelope, routing: &Routing, now: Timestamp) {
        let Envelope {
            event,
            monitor,
            request,
            ack,
        } = env;
        // In a stateful hub, the event's durable actions are collected for its commit.
        let mut stored = self.durable.as_ref().map(|_| AcceptEvent {
            event: event_record(&event, now),
            dedupe_window: self
                .durable
                .as_ref()
                .map(|d| d.settings.dedupe_window)
                .unwrap_or_default(),
            actions: Vec::new(),
        });
        if let Some(s) = &mut stored {
            // Requests are never deduplicated: each has its own answers.
            if request.is_some() {
                s.event.dedupe_key = None;
            }
        }
        let type_durability = routing
            .event_types
            .get(event.event_type())
            .and_then(|t| t.durability);
        let mut any_durable = false;
        let monitor = monitor.as_ref();
        let meta = event.meta().clone();
        self.sink.emit(
            TelemetryKind::Accepted {
                event: meta.clone(),
            },
            monitor,
        );
        self.planned.clear();
        routing.plan(&event, &mut self.scratch, &mut self.planned);
        self.action_ids.clear();
        let mut dispatched = 0;
        for planned in self.planned.drain(..) {
            let Planned { outcome, entry } = planned;
            let provider = outcome.provider;
            let mut action_id = None;
            match (outcome.verdict, outcome.rule) {
                (Verdict::Dispatch(plan), Some(rule)) => {
                    self.sink.emit(
                        TelemetryKind::RuleMatched {
                            event: meta.clone(),
                            provider: provider.clone(),
                            rule: rule.clone(),
                            agent: plan.agent.clone(),
                            action_type: plan.action_type.clone(),
                        },
                        monitor,
                    );
                    let Some(entry) = entry else { continue };
                    let id = ActionId::generate();
                    action_id = Some(id);
                    let sharing = plan.sharing;
                    let retry = plan.retry.or_else(|| {
                        routing
                            .action_types
                            .get(&plan.action_type)
                            .and_then(|t| t.retry)
                    });
                    let fallback = plan.fallback;
                    let lease = match &self.durable {
                        Some(d) if d.is_durable(plan.durability, type_durability) => Some(1),
                        _ => None,
                    };
                    let action = Action::new(
                        ActionMeta {
                            id,
                            agent: plan.agent,
                            action_type: plan.action_type,
                            rule: Some(rule),
                            provider: Some(provider),
                            attempt: 1,
                            event: meta.clone(),
                        },
                        plan.payload,
                    );
                    self.sink.emit(
                        TelemetryKind::ActionDispatched {
                            action: action.meta.clone(),
                        },
                        monitor,
                    );
                    dispatched += 1;
                    if let Some(r) = &request {
                        r.add_part(action.agent().clone(), id);
                    }
                    let dispatch = Dispatch {
                        action,
                        monitor: monitor.cloned(),
                        request: request.clone(),
                        sharing,
                        retry,
                        fallback,
                        first_attempt: None,
                        lease,
                    };
                    if let (Some(s), Some(d)) = (&mut stored, &self.durable) {
                        if lease.is_some() {
                            any_durable = true;
                            s.actions.push(NewAction {
                                record: action_record(&dispatch),
                                lease: Some((d.node().clone(), d.settings.lease)),
                            });
                        }
                    }
                    self.dispatches.push((entry, dispatch));
                }
                (
                    Verdict::Merged {
                        agent,
                        action_type,
                        into,
                    },
                    Some(rule),
                ) => {
                    self.sink.emit(
                        TelemetryKind::RuleMatched {
                            event: meta.clone(),
                            provider: provider.clone(),
                            rule: rule.clone(),
                            agent,
                            action_type,
                        },
                        monitor,
                    );
                    if let Some(Some(into)) = self.action_ids.get(into).copied() {
                        self.sink.emit(
                            TelemetryKind::ActionMerged {
                                event: meta.clone(),
                                provider,
                                rule,
                                into,
                            },
                            monitor,
                        );
                    }
                }
                (Verdict::Suppressed { agent, reason }, Some(rule)) => {
                    self.sink.emit(
                        TelemetryKind::RouteSuppressed {
                            event: meta.clone(),
                            provider,
                            rule,
                            agent,
                            reason,
                        },
                        monitor,
                    );
                }
                (Verdict::Failed(error), _) => {
                    tracing::debug!(event_id = %meta.id, %error, "rule failed");
                    self.sink.emit(
                        TelemetryKind::RuleFailed {
                            event: meta.clone(),
                            provider,
                            error,
                        },
                        monitor,
                    );
                }
                // Dispatch, merge and suppression always name their rule.
                (_, None) => {}
            }
            self.action_ids.push(action_id);
        }
        if dispatched == 0 {
            self.sink.emit(
                TelemetryKind::NoRoute {
                    event: meta.clone(),
                },
                monitor,
            );
        }
        if let Some(r) = &request {
            r.routing_done();
        }
        if self.durable.is_some() {
            // An event is stored when it is durable itself or has a durable action.
            let durable_type = self
                .durable
                .as_ref()
                .is_some_and(|d| d.is_durable(None, type_durability));
            self.pending.push(Pending {
                ack,
                receipt: Receipt {
                    event_id: meta.id,
                    correlation_id: meta.correlation_id,
                },
                stored: stored.filter(|_| durable_type || any_durable),
                request,
            });
        } else if let Some(ack) = ack {
            let _ = ack.send(Ok(Receipt {
                event_id: meta.id,
                correlation_id: meta.correlation_id,
            }));
        }
    }

    /// Takes the routed batch (its events for the store, the audit of its routing, its
    /// dispatches and its telemetry) and starts its store write.
    fn hand_off(&mut self) -> Handoff {
        let mut batch = WriteBatch {
            audit: self.sink.take_audit(),
            ..WriteBatch::default()
        };
        let mut stored_at = Vec::new();
        for (i, p) in self.pending.iter_mut().enumerate() {
            if let Some(s) = p.stored.take() {
                stored_at.push(i);
                batch.accepts.push(s);
            }
        }
        let write = match (&self.durable, batch.is_empty()) {
            (Some(d), false) => {
                let store = d.store.clone();
                // Spawned, so that the write reaches the store now, while the next batch is
                // routed.
                Some(
                    self.shared
                        .runtime
                        .spawn(async move { store.write(batch).await }),
                )
            }
            _ => None,
        };
        Handoff {
            write,
            stored_at,
            pending: std::mem::take(&mut self.pending),
            dispatches: std::mem::take(&mut self.dispatches),
            telemetry: self.sink.take_parts(),
        }
    }
}

/// How many routed batches may wait for their commit at once.
const PIPELINE: usize = 4;

/// A routed batch on its way to its commit.
struct Handoff {
    write: Option<
        tokio::task::JoinHandle<Result<crate::store::WriteOutcome, crate::store::StoreError>>,
    >,
    /// For each stored event, in write order: its index in `pending`.
    stored_at: Vec<usize>,
    pending: Vec<Pending>,
    dispatches: Vec<(Arc<AgentEntry>, Dispatch)>,
    telemetry: SinkParts,
}

/// Answers and delivers committed batches, in the order they were routed.
struct Committer {
    shared: Arc<Shared>,
    sink: Sink,
    abandoned: u64,
}

impl Committer {
    async fn run(mut self, mut rx: mpsc::Receiver<Handoff>) -> u64 {
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
        let mut answers: Vec<Result<Receipt, crate::store::StoreError>> =
            pending.iter().map(|p| Ok(p.receipt)).collect();
        let mut refused: Vec<EventId> = Vec::new();
        let outcome = match write {
            None => Ok(crate::store::WriteOutcome::default()),
            Some(task) => match task.await {
                Ok(outcome) => outcome,
                Err(e) => Err(
                    crate::store::StoreError::unavailable("the store write stopped").with_source(e),
                ),
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
                tracing::warn!(%error, events = pending.len(), "events not committed");
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
                    r.stop(crate::request::RequestState::Failed);
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

/// Queues a batch's actions. A full agent queue makes the router wait (and so, in turn,
/// publishers): backpressure, not loss. Once the shutdown deadline has passed, what cannot be
/// queued is reported abandoned; returns how many were.
async fn deliver(
    shared: &Shared,
    dispatches: &mut Vec<(Arc<AgentEntry>, Dispatch)>,
    sink: &mut Sink,
) -> u64 {
    let mut abandoned = 0;
    for (entry, d) in dispatches.drain(..) {
        let d = match entry.tx.try_send(d) {
            Ok(()) => continue,
            Err(TrySendError::Full(d)) => {
                tokio::select! {
                    permit = entry.tx.reserve() => match permit {
                        Ok(permit) => {
                            permit.send(d);
                            continue;
                        }
                        Err(_) => d,
                    },
                    _ = shared.abort.cancelled() => d,
                }
            }
            Err(TrySendError::Closed(d)) => d,
        };
        abandoned += 1;
        if let Some(r) = &d.request {
            r.stop(crate::request::RequestState::Cancelled);
        }
        sink.begin();
        sink.emit(
            TelemetryKind::ActionAbandoned {
                action: d.action.meta,
                reason: AbandonReason::ShutdownDeadline,
            },
            d.monitor.as_ref(),
        );
    }
    abandoned
}
