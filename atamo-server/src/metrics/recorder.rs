//! The recorder: a task that turns the hub's telemetry into the counters of
//! [`HubMetrics`].

use std::time::{Duration, Instant};

use atamo_core::message::Problem;
use atamo_core::telemetry::{
    ProcessChange, TelemetryEvent, TelemetryKind, TelemetryRecvError, TelemetrySubscriber,
};
use atamo_core::{ActionType, AgentId, EventType, RequestState};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::alerts::FiringAlerts;
use super::cache::Cache;
use super::families::{
    AgentLabels, DispatchLabels, EventTypeLabels, HubMetrics, KindLabels, OutcomeLabels,
    ProblemLabels, ProcessLabels, ProviderLabels, StateLabels,
};

/// The `event_type` of rejected events whose type is not registered.
const UNREGISTERED: &str = "(unregistered)";
/// The shortest time between two warnings about missed telemetry.
const MISSED_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What became of an action, as counted in `atamo_actions_total`.
#[derive(Clone, Copy)]
enum Outcome {
    Succeeded,
    Failed,
    Retrying,
    DeadLettered,
    Abandoned,
    Coalesced,
    ServedFromCache,
    Rerouted,
    Redriven,
}

impl Outcome {
    const COUNT: usize = 9;

    fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Retrying => "retrying",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Abandoned => "abandoned",
            Outcome::Coalesced => "coalesced",
            Outcome::ServedFromCache => "served_from_cache",
            Outcome::Rerouted => "rerouted",
            Outcome::Redriven => "redriven",
        }
    }
}

/// One agent's counters, made as its steps first come.
struct AgentCounters {
    outcomes: [Option<Counter>; Outcome::COUNT],
    duration: Option<Histogram>,
    dispatched: Cache<ActionType, Counter>,
}

impl AgentCounters {
    fn new() -> Self {
        Self {
            outcomes: Default::default(),
            duration: None,
            dispatched: Cache::new(),
        }
    }
}

/// The counting task's state.
pub(super) struct Tally {
    m: HubMetrics,
    accepted: Cache<EventType, Counter>,
    /// By the address of the kind's name: a handful of kinds, compared by pointer (two
    /// copies of one name at different addresses get two entries for the same counter).
    kinds: Vec<(usize, Counter)>,
    agents: Cache<AgentId, AgentCounters>,
    alerts: FiringAlerts,
    last_warning: Option<Instant>,
    unreported: u64,
}

/// Counts every step `sub` delivers into `tally`, until the hub's telemetry ends.
/// Both live outside the future, so that counting restarted after a panic goes on with them.
pub(super) async fn count(sub: &mut TelemetrySubscriber, tally: &mut Tally) {
    loop {
        match sub.recv_batch().await {
            Ok(batch) => {
                for ev in &batch.events {
                    tally.step(ev);
                }
            }
            Err(TelemetryRecvError::Lagged { missed }) => tally.missed(missed),
            Err(_) => break,
        }
    }
    tracing::debug!("the hub's telemetry ended; metrics stop counting");
}

impl Tally {
    pub(super) fn new(m: HubMetrics) -> Self {
        Self {
            m,
            accepted: Cache::new(),
            kinds: Vec::new(),
            agents: Cache::new(),
            alerts: FiringAlerts::default(),
            last_warning: None,
            unreported: 0,
        }
    }

    fn missed(&mut self, missed: u64) {
        self.m.telemetry_missed.inc_by(missed);
        self.unreported += missed;
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= MISSED_WARNING_EVERY)
        {
            tracing::warn!(
                missed = self.unreported,
                "metrics fell behind the hub's telemetry; the missed steps are counted in \
                 atamo_telemetry_missed_total"
            );
            self.last_warning = Some(now);
            self.unreported = 0;
        }
    }

    fn kind(&mut self, kind: &'static str) {
        let at = kind.as_ptr() as usize;
        if let Some((_, c)) = self.kinds.iter().find(|(k, _)| *k == at) {
            c.inc();
            return;
        }
        let c = self
            .m
            .telemetry_events
            .get_or_create_owned(&KindLabels { kind });
        c.inc();
        self.kinds.push((at, c));
    }

    /// Counts an outcome of an action of `agent`, and the call's duration when it was one.
    fn outcome(&mut self, agent: &AgentId, outcome: Outcome, elapsed: Option<Duration>) {
        let Self { m, agents, .. } = self;
        let counters = agents.get(agent, AgentCounters::new);
        counters.outcomes[outcome as usize]
            .get_or_insert_with(|| {
                m.actions.get_or_create_owned(&OutcomeLabels {
                    agent: agent.to_string(),
                    outcome: outcome.label(),
                })
            })
            .inc();
        if let Some(elapsed) = elapsed {
            counters
                .duration
                .get_or_insert_with(|| {
                    m.action_duration.get_or_create_owned(&AgentLabels {
                        agent: agent.to_string(),
                    })
                })
                .observe(elapsed.as_secs_f64());
        }
    }

    fn dispatched(&mut self, agent: &AgentId, action_type: &ActionType) {
        let Self { m, agents, .. } = self;
        agents
            .get(agent, AgentCounters::new)
            .dispatched
            .get(action_type, || {
                m.actions_dispatched.get_or_create_owned(&DispatchLabels {
                    agent: agent.to_string(),
                    action_type: action_type.to_string(),
                })
            })
            .inc();
    }

    fn accepted(&mut self, event_type: &EventType) {
        let Self { m, accepted, .. } = self;
        accepted
            .get(event_type, || {
                m.events_accepted.get_or_create_owned(&EventTypeLabels {
                    event_type: event_type.to_string(),
                })
            })
            .inc();
    }

    fn step(&mut self, ev: &TelemetryEvent) {
        self.kind(ev.name());
        match &ev.kind {
            TelemetryKind::Accepted { event } => self.accepted(&event.event_type),
            TelemetryKind::Rejected { event, problems } => {
                let unregistered = problems
                    .iter()
                    .any(|p| matches!(p, Problem::UnknownEventType { .. }));
                let event_type = if unregistered {
                    UNREGISTERED.to_owned()
                } else {
                    event.event_type.to_string()
                };
                self.m
                    .events_rejected
                    .get_or_create(&EventTypeLabels { event_type })
                    .inc();
                for p in problems.iter() {
                    self.m
                        .event_problems
                        .get_or_create(&ProblemLabels {
                            problem: problem_label(p),
                        })
                        .inc();
                }
            }
            TelemetryKind::NoRoute { event } => {
                self.m
                    .events_unrouted
                    .get_or_create(&EventTypeLabels {
                        event_type: event.event_type.to_string(),
                    })
                    .inc();
            }
            TelemetryKind::RuleFailed { provider, .. } => {
                self.m
                    .rule_errors
                    .get_or_create(&ProviderLabels {
                        provider: provider.to_string(),
                    })
                    .inc();
            }
            TelemetryKind::ActionDispatched { action } => {
                self.dispatched(&action.agent, &action.action_type);
            }
            TelemetryKind::ActionSucceeded { action, elapsed } => {
                self.outcome(&action.agent, Outcome::Succeeded, Some(*elapsed));
            }
            TelemetryKind::ActionFailed {
                action, elapsed, ..
            } => self.outcome(&action.agent, Outcome::Failed, Some(*elapsed)),
            TelemetryKind::ActionRetrying {
                action, elapsed, ..
            } => self.outcome(&action.agent, Outcome::Retrying, Some(*elapsed)),
            TelemetryKind::ActionDeadLettered { action, .. } => {
                self.outcome(&action.agent, Outcome::DeadLettered, None);
            }
            TelemetryKind::ActionAbandoned { action, .. } => {
                self.outcome(&action.agent, Outcome::Abandoned, None);
            }
            TelemetryKind::ActionCoalesced { action, .. } => {
                self.outcome(&action.agent, Outcome::Coalesced, None);
            }
            TelemetryKind::ActionServedFromCache { action, .. } => {
                self.outcome(&action.agent, Outcome::ServedFromCache, None);
            }
            TelemetryKind::ActionRerouted { from, .. } => {
                self.outcome(from, Outcome::Rerouted, None);
            }
            TelemetryKind::ActionRedriven { action } => {
                self.outcome(&action.agent, Outcome::Redriven, None);
            }
            TelemetryKind::FollowUpFailed { action, .. } => {
                self.m
                    .follow_ups_failed
                    .get_or_create(&AgentLabels {
                        agent: action.agent.to_string(),
                    })
                    .inc();
            }
            TelemetryKind::RequestFinished { state, .. } => {
                self.m
                    .requests_finished
                    .get_or_create(&StateLabels {
                        state: request_state_label(state),
                    })
                    .inc();
            }
            TelemetryKind::AgentHealthChecked { agent, outcome, .. } => {
                self.m
                    .health_checks
                    .get_or_create(&OutcomeLabels {
                        agent: agent.to_string(),
                        outcome: if outcome.is_ok() { "ok" } else { "error" },
                    })
                    .inc();
            }
            TelemetryKind::AgentProcess { agent, change } => {
                self.m
                    .process_changes
                    .get_or_create(&ProcessLabels {
                        agent: agent.to_string(),
                        change: process_change_label(change),
                    })
                    .inc();
                self.alerts.process_changed(&self.m, agent, change);
            }
            TelemetryKind::Alert {
                alert,
                agent,
                raised,
                ..
            } => self.alerts.alert(&self.m, *alert, agent.as_ref(), *raised),
            TelemetryKind::AgentUnregistered { agent } => {
                self.alerts.agent_unregistered(&self.m, agent);
            }
            _ => {}
        }
    }
}

fn problem_label(p: &Problem) -> &'static str {
    match p {
        Problem::UnknownEventType { .. } => "unknown_event_type",
        Problem::MissingField { .. } => "missing_field",
        Problem::PayloadNotObject => "payload_not_object",
        Problem::BadName(_) => "bad_name",
        Problem::MissingActionField { .. } => "missing_action_field",
        _ => "other",
    }
}

fn request_state_label(s: &RequestState) -> &'static str {
    match s {
        RequestState::Running => "running",
        RequestState::Complete => "complete",
        RequestState::PartiallyFailed { .. } => "partially_failed",
        RequestState::Failed => "failed",
        RequestState::NoRoute => "no_route",
        RequestState::Cancelled => "cancelled",
        RequestState::DeadlinePassed => "deadline_passed",
        _ => "other",
    }
}

fn process_change_label(c: &ProcessChange) -> &'static str {
    match c {
        ProcessChange::Started { .. } => "started",
        ProcessChange::Exited { .. } => "exited",
        ProcessChange::Restarting { .. } => "restarting",
        ProcessChange::Stopped { .. } => "stopped",
        ProcessChange::Offline { .. } => "offline",
        _ => "other",
    }
}
