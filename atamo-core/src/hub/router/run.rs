//! The routing task: takes accepted events in batches, asks the rule providers, and queues the
//! resulting actions for their agents' workers.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::acceptance::Acceptance;
use crate::hub::dispatch::Dispatch;
use crate::hub::envelope::Envelope;
use crate::hub::routing::{AgentEntry, Planned, Routing, Verdict};
use crate::hub::shared::Shared;
use crate::ids::ActionId;
use crate::message::{Action, ActionMeta, Timestamp};
use crate::publish::Receipt;
use crate::rules::Proposal;
use crate::telemetry::{Sink, TelemetryKind};

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
    /// How batches are accepted: at once, or once committed to a stateful hub's store.
    acceptance: Acceptance,
}

impl Router {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let acceptance = Acceptance::new(&shared);
        let sink = Sink::new(shared.bus.clone())
            .with_audit(acceptance.keeps())
            .deferring_monitors(acceptance.keeps());
        Self {
            shared,
            sink,
            scratch: Vec::new(),
            planned: Vec::new(),
            action_ids: Vec::new(),
            dispatches: Vec::new(),
            abandoned: 0,
            acceptance,
        }
    }

    pub(crate) async fn run(mut self, rx: &mut mpsc::Receiver<Envelope>) -> RouterReport {
        let mut buf = Vec::with_capacity(BATCH);
        let mut closing = false;
        let mut report = RouterReport::default();
        loop {
            tokio::select! {
                biased;
                _ = self.shared.lifecycle.drain.cancelled(), if !closing => {
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
            self.abandoned += self
                .acceptance
                .end_batch(&self.shared, &mut self.dispatches, &mut self.sink)
                .await;
        }
        let acceptance = std::mem::replace(&mut self.acceptance, Acceptance::Stateless);
        self.abandoned += acceptance.finish().await;
        self.shared.lifecycle.intake_done.cancel();
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
        #[cfg(test)]
        crate::hub::supervise::faults::router(event.event_type().as_str());
        let type_durability = routing
            .event_types
            .get(event.event_type())
            .and_then(|t| t.durability);
        // In a stateful hub, the event's durable actions are collected for its commit.
        let mut accepting = self
            .acceptance
            .event(&event, request.is_some(), now, type_durability);
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
                    let lease = self.acceptance.lease(&accepting, plan.durability);
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
                    self.acceptance.action(&mut accepting, &dispatch);
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
        let receipt = Receipt {
            event_id: meta.id,
            correlation_id: meta.correlation_id,
        };
        self.acceptance.accepted(accepting, ack, receipt, request);
    }
}
