//! The metric families counted from telemetry, their label sets, and their registration.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds (seconds) of the call duration buckets: in-process agents answer in
/// microseconds, remote ones may take minutes.
const ACTION_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EventTypeLabels {
    pub(super) event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProblemLabels {
    pub(super) problem: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProviderLabels {
    pub(super) provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AgentLabels {
    pub(super) agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DispatchLabels {
    pub(super) agent: String,
    pub(super) action_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) agent: String,
    pub(super) outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct StateLabels {
    pub(super) state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProcessLabels {
    pub(super) agent: String,
    pub(super) change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub(super) struct AlertLabels {
    pub(super) alert: String,
    pub(super) agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabels {
    pub(super) kind: &'static str,
}

/// A family of histograms, each made by a function (for its buckets).
pub(super) type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn action_histogram() -> Histogram {
    Histogram::new(ACTION_BUCKETS)
}

/// The metrics counted from telemetry (handles shared with the registry).
pub(super) struct HubMetrics {
    pub(super) events_accepted: Family<EventTypeLabels, Counter>,
    pub(super) events_rejected: Family<EventTypeLabels, Counter>,
    pub(super) event_problems: Family<ProblemLabels, Counter>,
    pub(super) events_unrouted: Family<EventTypeLabels, Counter>,
    pub(super) rule_errors: Family<ProviderLabels, Counter>,
    pub(super) actions_dispatched: Family<DispatchLabels, Counter>,
    pub(super) actions: Family<OutcomeLabels, Counter>,
    pub(super) action_duration: HistogramFamily<AgentLabels>,
    pub(super) follow_ups_failed: Family<AgentLabels, Counter>,
    pub(super) requests_finished: Family<StateLabels, Counter>,
    pub(super) health_checks: Family<OutcomeLabels, Counter>,
    pub(super) process_changes: Family<ProcessLabels, Counter>,
    pub(super) alerts_raised: Family<AlertLabels, Counter>,
    pub(super) alerts_firing: Family<AlertLabels, Gauge>,
    pub(super) telemetry_events: Family<KindLabels, Counter>,
    pub(super) telemetry_missed: Counter,
}

impl HubMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            event_problems: Family::default(),
            events_unrouted: Family::default(),
            rule_errors: Family::default(),
            actions_dispatched: Family::default(),
            actions: Family::default(),
            action_duration: Family::new_with_constructor(action_histogram),
            follow_ups_failed: Family::default(),
            requests_finished: Family::default(),
            health_checks: Family::default(),
            process_changes: Family::default(),
            alerts_raised: Family::default(),
            alerts_firing: Family::default(),
            telemetry_events: Family::default(),
            telemetry_missed: Counter::default(),
        };
        r.register(
            "events_accepted",
            "Events the hub took in, by event type",
            m.events_accepted.clone(),
        );
        r.register(
            "events_rejected",
            "Events the hub refused as invalid, by event type ((unregistered) for types that are not registered)",
            m.events_rejected.clone(),
        );
        r.register(
            "event_problems",
            "Problems found in rejected events, by kind",
            m.event_problems.clone(),
        );
        r.register(
            "events_unrouted",
            "Accepted events that no rule sent anywhere, by event type",
            m.events_unrouted.clone(),
        );
        r.register(
            "rule_errors",
            "Rules that matched an event but produced no action, by provider",
            m.rule_errors.clone(),
        );
        r.register(
            "actions_dispatched",
            "Actions queued for an agent, by agent and action type",
            m.actions_dispatched.clone(),
        );
        r.register(
            "actions",
            "What became of actions, by agent and outcome (succeeded, failed, retrying, dead_lettered, abandoned, coalesced, served_from_cache, rerouted, redriven)",
            m.actions.clone(),
        );
        r.register_with_unit(
            "action_duration",
            "How long agent calls took, every attempt whatever its outcome, by agent",
            Unit::Seconds,
            m.action_duration.clone(),
        );
        r.register(
            "follow_ups_failed",
            "Follow-up events published by an agent that could not be published, by agent",
            m.follow_ups_failed.clone(),
        );
        r.register(
            "requests_finished",
            "Requests that ended, by final state",
            m.requests_finished.clone(),
        );
        r.register(
            "agent_health_checks",
            "Agent health probes, by agent and outcome (ok or error)",
            m.health_checks.clone(),
        );
        r.register(
            "agent_process_changes",
            "Changes of agent processes (started, exited, restarting, stopped, offline), by agent",
            m.process_changes.clone(),
        );
        r.register(
            "alerts_raised",
            "Alerts raised, by alert and agent",
            m.alerts_raised.clone(),
        );
        r.register(
            "alerts_firing",
            "Alerts raised and not resolved yet (1), by alert and agent",
            m.alerts_firing.clone(),
        );
        r.register(
            "telemetry_events",
            "Telemetry steps counted, by kind",
            m.telemetry_events.clone(),
        );
        r.register(
            "telemetry_missed",
            "Telemetry steps the metrics missed because they fell behind the hub; those steps are in no other counter",
            m.telemetry_missed.clone(),
        );
        m
    }
}
