//! Prometheus metrics of the hub and of the HTTP service.
//!
//! [`Metrics::start`] subscribes to the hub's telemetry and counts it in a task of its own;
//! [`Metrics::observe_http`] records each finished HTTP request; [`Metrics::render`] answers
//! `GET /metrics` in the Prometheus text format (version 0.0.4, [`Metrics::CONTENT_TYPE`]),
//! encoded by `prometheus-client`. Gauges (queues, in-flight calls, agent status) are read from
//! [`Control::health`] and [`Control::agent_statuses`] at render time, so they are never stale.
//!
//! # Metrics
//!
//! Counted from telemetry (from [`Metrics::start`] on):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_events_accepted_total` | `event_type` | events the hub took in |
//! | `atamo_events_rejected_total` | `event_type` | events refused as invalid; `(unregistered)` for a type that is not registered |
//! | `atamo_event_problems_total` | `problem` | what was wrong with rejected events (`unknown_event_type`, `missing_field`, `payload_not_object`, `bad_name`, ...) |
//! | `atamo_events_unrouted_total` | `event_type` | accepted events no rule sent anywhere |
//! | `atamo_rule_errors_total` | `provider` | rules that matched but produced no action |
//! | `atamo_actions_dispatched_total` | `agent`, `action_type` | actions queued for an agent |
//! | `atamo_actions_total` | `agent`, `outcome` | what became of actions (see below) |
//! | `atamo_action_duration_seconds` | `agent` | histogram of call durations, every attempt, whatever its outcome |
//! | `atamo_follow_ups_failed_total` | `agent` | follow-up events an agent published that could not be published |
//! | `atamo_requests_finished_total` | `state` | requests that ended, by how (`complete`, `partially_failed`, `failed`, `no_route`, `cancelled`, `deadline_passed`) |
//! | `atamo_agent_health_checks_total` | `agent`, `outcome` | health probes, `ok` or `error` |
//! | `atamo_agent_process_changes_total` | `agent`, `change` | agent processes `started`, `exited`, `restarting`, `stopped`, `offline` |
//! | `atamo_alerts_raised_total` | `alert`, `agent` | every alert raised, one-shot notifications such as `retries_exhausted` included |
//! | `atamo_alerts_firing` | `alert`, `agent` | 1 for each alert raised and not resolved yet (see below) |
//! | `atamo_telemetry_events_total` | `kind` | every telemetry step counted, by kind (`accepted`, `action_succeeded`, ...) |
//! | `atamo_telemetry_missed_total` | | telemetry steps missed because the counting task fell behind |
//!
//! `outcome` of `atamo_actions_total`: `succeeded`, `failed` (for good), `retrying` (an attempt
//! failed and the action will be tried again), `dead_lettered`, `abandoned` (shutdown deadline),
//! `coalesced` (joined an identical call in flight), `served_from_cache`, `rerouted` (sent to
//! a fallback: counted for the agent it was meant for) and `redriven` (a dead letter sent
//! again).
//!
//! `atamo_alerts_firing` follows raise and resolve steps. `retries_exhausted` is a
//! notification, never resolved, so it is only counted in `atamo_alerts_raised_total`;
//! `agent_offline` stops firing when the agent's process starts again; every alert of an agent
//! stops firing when the agent is unregistered.
//!
//! Read at render time:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_hub_accepting` | | 1 while the hub takes new events, 0 once it is shutting down |
//! | `atamo_ingress_queue_length`, `atamo_ingress_queue_capacity` | | events accepted and not yet routed, and the most that can wait |
//! | `atamo_agent_queue_length`, `atamo_agent_queue_capacity` | `agent` | actions waiting for each agent, and the most that can wait |
//! | `atamo_agent_in_flight` | `agent` | calls running now |
//! | `atamo_agent_status` | `agent`, `state` | 1 for the agent's state (`unknown`, `online`, `degraded`, `offline`), 0 for the others |
//! | `atamo_telemetry_subscribers` | | telemetry subscribers connected (this one included) |
//! | `atamo_requests_running`, `atamo_requests_kept` | | requests running, finished requests whose answers are kept |
//! | `atamo_store_lost_leases_total` | | stateful hubs only: settles refused because another node had taken the action over |
//!
//! From the HTTP service ([`Metrics::observe_http`]):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_http_requests_total` | `method`, `route`, `status` | finished requests |
//! | `atamo_http_request_duration_seconds` | `method`, `route` | histogram of their durations |
//!
//! # Lag
//!
//! The hub never waits for a telemetry subscriber: one that falls behind misses the oldest
//! steps (the hub's `telemetry_capacity` says how far behind it may fall). The counting task
//! does nothing but bump counters, so it keeps up with the hub; when it does fall behind, the
//! steps it missed are counted in `atamo_telemetry_missed_total` and a warning is logged (at
//! most every 10 s), so `sum(atamo_telemetry_events_total) + atamo_telemetry_missed_total` is
//! every step the hub reported since the metrics started.
//!
//! # Cardinality
//!
//! Labels are names (agents, event and action types, providers, alerts, routes), never ids.
//! Rejected events of types that are not registered share the `(unregistered)` label; HTTP
//! methods other than the standard ones are `OTHER`; past 256 method and route pairs, new
//! routes are counted as `(other)` (and a warning is logged).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atamo_core::failure::AgentState;
use atamo_core::message::Problem;
use atamo_core::telemetry::AlertKind;
use atamo_core::telemetry::{
    ProcessChange, TelemetryEvent, TelemetryKind, TelemetryRecvError, TelemetrySubscriber,
};
use atamo_core::{ActionType, AgentId, Control, EventType, RequestState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tracing::Instrument;

/// Upper bounds (seconds) of the call duration buckets: in-process agents answer in
/// microseconds, remote ones may take minutes.
const ACTION_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Upper bounds (seconds) of the HTTP request duration buckets; waiting for a request's
/// answers may take a while.
const HTTP_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The `event_type` of rejected events whose type is not registered.
const UNREGISTERED: &str = "(unregistered)";
/// The `route` of HTTP requests past [`MAX_HTTP_ROUTES`].
const OTHER_ROUTE: &str = "(other)";
/// The most method and route pairs the HTTP metrics keep apart.
const MAX_HTTP_ROUTES: usize = 256;
/// The shortest time between two warnings about missed telemetry.
const MISSED_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The hub's and the HTTP service's metrics, rendered for Prometheus.
///
/// Dropping it (its last `Arc`) stops the counting task.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    task: tokio::task::AbortHandle,
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The content type to answer `GET /metrics` with: the Prometheus text format 0.0.4.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

    /// Starts counting the hub's telemetry (a task on the current tokio runtime). Steps from
    /// this call on are counted; earlier ones are not.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(control: Control) -> Arc<Self> {
        let mut registry = Registry::with_prefix("atamo");
        let hub = HubMetrics::register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        registry.register_collector(Box::new(HubGauges {
            control: control.clone(),
        }));
        // Subscribed before the task runs, so nothing after `start` returns is missed.
        let sub = control.subscribe();
        let span = tracing::info_span!("metrics");
        let task = tokio::spawn(count(sub, Tally::new(hub)).instrument(span)).abort_handle();
        Arc::new(Self {
            registry,
            http,
            task,
        })
    }

    /// Records one finished HTTP request: `route` is the route template
    /// (`/v1/events/{id}`), never the raw path.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http.observe(method, route, status, elapsed);
    }

    /// The exposition text (gauges read from [`Control::health`] now).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a String fails only if a metric's encoding does.
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventTypeLabels {
    event_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProblemLabels {
    problem: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DispatchLabels {
    agent: String,
    action_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    agent: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProcessLabels {
    agent: String,
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct AlertLabels {
    alert: String,
    agent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn action_histogram() -> Histogram {
    Histogram::new(ACTION_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The metrics counted from telemetry (handles shared with the registry).
struct HubMetrics {
    events_accepted: Family<EventTypeLabels, Counter>,
    events_rejected: Family<EventTypeLabels, Counter>,
    event_problems: Family<ProblemLabels, Counter>,
    events_unrouted: Family<EventTypeLabels, Counter>,
    rule_errors: Family<ProviderLabels, Counter>,
    actions_dispatched: Family<DispatchLabels, Counter>,
    actions: Family<OutcomeLabels, Counter>,
    action_duration: HistogramFamily<AgentLabels>,
    follow_ups_failed: Family<AgentLabels, Counter>,
    requests_finished: Family<StateLabels, Counter>,
    health_checks: Family<OutcomeLabels, Counter>,
    process_changes: Family<ProcessLabels, Counter>,
    alerts_raised: Family<AlertLabels, Counter>,
    alerts_firing: Family<AlertLabels, Gauge>,
    telemetry_events: Family<KindLabels, Counter>,
    telemetry_missed: Counter,
}

impl HubMetrics {
    fn register(r: &mut Registry) -> Self {
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

/// Metric handles by name, for the counting task's hot path: most steps of a batch concern
/// the same agent or event type as the step before, so the last hit is compared first (a
/// short string comparison) before the map is asked.
struct Cache<K, V> {
    items: Vec<(K, V)>,
    index: HashMap<K, usize>,
    last: usize,
}

impl<K: Clone + Eq + std::hash::Hash, V> Cache<K, V> {
    fn new() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
            last: 0,
        }
    }

    fn get(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let hit = match self.items.get(self.last) {
            Some((k, _)) if k == key => Some(self.last),
            _ => self.index.get(key).copied(),
        };
        let i = match hit {
            Some(i) => i,
            None => {
                self.items.push((key.clone(), make()));
                let i = self.items.len() - 1;
                self.index.insert(key.clone(), i);
                i
            }
        };
        self.last = i;
        &mut self.items[i].1
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
struct Tally {
    m: HubMetrics,
    accepted: Cache<EventType, Counter>,
    /// By the address of the kind's name: a handful of kinds, compared by pointer (two
    /// copies of one name at different addresses get two entries for the same counter).
    kinds: Vec<(usize, Counter)>,
    agents: Cache<AgentId, AgentCounters>,
    firing: BTreeSet<AlertLabels>,
    last_warning: Option<Instant>,
    unreported: u64,
}

async fn count(mut sub: TelemetrySubscriber, mut tally: Tally) {
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
    fn new(m: HubMetrics) -> Self {
        Self {
            m,
            accepted: Cache::new(),
            kinds: Vec::new(),
            agents: Cache::new(),
            firing: BTreeSet::new(),
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
                if matches!(change, ProcessChange::Started { .. }) {
                    self.resolve(AlertLabels {
                        alert: AlertKind::AgentOffline.to_string(),
                        agent: agent.to_string(),
                    });
                }
            }
            TelemetryKind::Alert {
                alert,
                agent,
                raised,
                ..
            } => {
                let labels = AlertLabels {
                    alert: alert.to_string(),
                    agent: agent.as_ref().map(|a| a.to_string()).unwrap_or_default(),
                };
                if !*raised {
                    self.resolve(labels);
                    return;
                }
                self.m.alerts_raised.get_or_create(&labels).inc();
                // A notification of a single failure: nothing resolves it.
                if !alert.is_notification() {
                    self.m.alerts_firing.get_or_create(&labels).set(1);
                    self.firing.insert(labels);
                }
            }
            TelemetryKind::AgentUnregistered { agent } => {
                let agent = agent.as_str();
                let gone: Vec<AlertLabels> = self
                    .firing
                    .iter()
                    .filter(|l| l.agent == agent)
                    .cloned()
                    .collect();
                for labels in gone {
                    self.resolve(labels);
                }
            }
            _ => {}
        }
    }

    fn resolve(&mut self, labels: AlertLabels) {
        if self.firing.remove(&labels) {
            self.m.alerts_firing.remove(&labels);
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

fn agent_state_label(s: AgentState) -> &'static str {
    match s {
        AgentState::Unknown => "unknown",
        AgentState::Online => "online",
        AgentState::Degraded => "degraded",
        AgentState::Offline => "offline",
    }
}

const AGENT_STATES: [AgentState; 4] = [
    AgentState::Unknown,
    AgentState::Online,
    AgentState::Degraded,
    AgentState::Offline,
];

/// The gauges read from the hub when the metrics are rendered.
#[derive(Debug)]
struct HubGauges {
    control: Control,
}

/// Encodes one gauge without labels.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(m)
}

/// Encodes one gauge per agent, labelled `agent`.
fn agent_gauge<'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl ExactSizeIterator<Item = (&'a str, usize)>,
) -> std::fmt::Result {
    if values.len() == 0 {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (agent, value) in values {
        let labels = [("agent", agent)];
        ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for HubGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let health = self.control.health();
        gauge(
            &mut enc,
            "hub_accepting",
            "Whether the hub takes new events (1) or is shutting down (0).",
            i64::from(health.accepting),
        )?;
        gauge(
            &mut enc,
            "ingress_queue_length",
            "Events accepted and not yet routed.",
            health.ingress.len,
        )?;
        gauge(
            &mut enc,
            "ingress_queue_capacity",
            "The most events that can wait to be routed.",
            health.ingress.capacity,
        )?;
        agent_gauge(
            &mut enc,
            "agent_queue_length",
            "Actions waiting for each agent.",
            health.agents.iter().map(|a| (a.id.as_str(), a.queue.len)),
        )?;
        agent_gauge(
            &mut enc,
            "agent_queue_capacity",
            "The most actions that can wait for each agent.",
            health
                .agents
                .iter()
                .map(|a| (a.id.as_str(), a.queue.capacity)),
        )?;
        agent_gauge(
            &mut enc,
            "agent_in_flight",
            "Calls each agent is running now.",
            health.agents.iter().map(|a| (a.id.as_str(), a.in_flight)),
        )?;
        let mut statuses = self.control.agent_statuses();
        if !statuses.is_empty() {
            statuses.sort_by(|a, b| a.agent.cmp(&b.agent));
            let mut m = enc.encode_descriptor(
                "agent_status",
                "Each agent's state: 1 for the state it is in, 0 for the others.",
                None,
                MetricType::Gauge,
            )?;
            for s in &statuses {
                for state in AGENT_STATES {
                    let labels = [
                        ("agent", s.agent.as_str()),
                        ("state", agent_state_label(state)),
                    ];
                    ConstGauge::new(i64::from(s.state == state))
                        .encode(m.encode_family(&labels)?)?;
                }
            }
        }
        gauge(
            &mut enc,
            "telemetry_subscribers",
            "Telemetry subscribers connected, the metrics' own included.",
            health.telemetry_subscribers,
        )?;
        gauge(
            &mut enc,
            "requests_running",
            "Requests still running.",
            health.requests_running,
        )?;
        gauge(
            &mut enc,
            "requests_kept",
            "Finished requests whose answers are kept for their clients.",
            health.requests_kept,
        )?;
        if self.control.node().is_some() {
            let m = enc.encode_descriptor(
                "store_lost_leases",
                "Settles the store refused because another node had taken the action over.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(self.control.lost_leases()).encode(m)?;
        }
        Ok(())
    }
}

/// The HTTP service's metrics.
struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    /// Method and route pairs seen.
    routes: AtomicUsize,
    overflow_warned: AtomicBool,
}

impl HttpMetrics {
    fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(http_histogram),
            routes: AtomicUsize::new(0),
            overflow_warned: AtomicBool::new(false),
        };
        r.register(
            "http_requests",
            "Finished HTTP requests, by method, route template and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "How long HTTP requests took to answer, by method and route template",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut labels = RouteLabels {
            method,
            route: route.to_owned(),
        };
        // A new pair takes one of the places; concurrent first requests may overshoot the
        // limit by a few, which is harmless.
        if self.duration.get(&labels).is_none()
            && self.routes.fetch_add(1, Ordering::Relaxed) >= MAX_HTTP_ROUTES
        {
            self.routes.fetch_sub(1, Ordering::Relaxed);
            if !self.overflow_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    route,
                    "more than {MAX_HTTP_ROUTES} HTTP method and route pairs; new ones are \
                     counted as route=\"{OTHER_ROUTE}\" (is a raw path passed as the route?)"
                );
            }
            labels.route = OTHER_ROUTE.to_owned();
        }
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route: labels.route,
                status,
            })
            .inc();
    }
}

/// The standard methods by name; anything else is `OTHER`, so that clients cannot make up
/// label values.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::time::Duration;

    use atamo_core::alerts::{AgentThresholds, AlertConfig, AlertMonitor, ErrorRateThreshold};
    use atamo_core::failure::{AgentState, RetryPolicy};
    use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
    use atamo_core::telemetry::{ProcessChange, TelemetryKind};
    use atamo_core::{
        agent_fn, ActionTypeDef, AgentError, AgentId, AgentSpec, Event, EventTypeDef, Hub,
        Principal, Reply,
    };
    use serde_json::json;

    use super::Metrics;

    type LabelPairs = Vec<(String, String)>;

    /// One sample line: `name{labels} value`.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// A parsed exposition, checked on the way in.
    #[derive(Debug, Default)]
    struct Exposition {
        help: BTreeMap<String, String>,
        types: BTreeMap<String, String>,
        samples: Vec<Sample>,
    }

    impl Exposition {
        /// The value of the series with exactly these labels.
        fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let want: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.samples
                .iter()
                .find(|s| s.name == name && s.labels == want)
                .map(|s| s.value)
        }

        /// [`value`](Self::value), 0 when the series is absent (a counter never bumped).
        fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
            self.value(name, labels).unwrap_or(0.0)
        }

        /// The sum over every series of `name`.
        fn sum(&self, name: &str) -> f64 {
            self.samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.value)
                .sum()
        }

        /// The series of `name`, as their labels.
        fn series(&self, name: &str) -> Vec<&BTreeMap<String, String>> {
            self.samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| &s.labels)
                .collect()
        }
    }

    fn is_name(s: &str, colon: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    /// Parses `name{labels} value`.
    fn parse_sample(line: &str) -> Result<Sample, String> {
        let end = line
            .find(['{', ' '])
            .ok_or("a sample needs a name and a value")?;
        let name = &line[..end];
        if !is_name(name, true) {
            return Err(format!("bad metric name {name:?}"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let consumed;
            loop {
                let start = chars.peek().map(|(i, _)| *i).ok_or("unclosed labels")?;
                let mut key_end = start;
                for (i, c) in chars.by_ref() {
                    if c == '=' {
                        key_end = i;
                        break;
                    }
                }
                let key = &after[start..key_end];
                if !is_name(key, false) {
                    return Err(format!("bad label name {key:?}"));
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("label {key} has no quoted value"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().ok_or("unterminated label value")?.1 {
                        '"' => break,
                        '\\' => match chars.next().ok_or("dangling escape")?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => return Err(format!("bad escape \\{c}")),
                        },
                        '\n' => return Err("raw newline in a label value".into()),
                        c => value.push(c),
                    }
                }
                if labels.insert(key.to_owned(), value).is_some() {
                    return Err(format!("label {key} twice"));
                }
                match chars.next() {
                    Some((_, ',')) => continue,
                    Some((i, '}')) => {
                        consumed = i + 1;
                        break;
                    }
                    other => return Err(format!("expected , or }} after a label, got {other:?}")),
                }
            }
            rest = &after[consumed..];
        }
        let value = rest.strip_prefix(' ').ok_or("one space before the value")?;
        if value.is_empty() || value.contains(' ') {
            return Err(format!("bad value {value:?}"));
        }
        let value: f64 = value
            .parse()
            .map_err(|e| format!("bad value {value:?}: {e}"))?;
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// Parses the Prometheus text format strictly: every family has `# HELP` then `# TYPE`
    /// then its samples, together; every sample is `name{labels} value` of the family above
    /// it; no series twice; names prefixed `atamo_`, counters ending in `_total`, histograms
    /// in `_seconds`, with cumulative buckets up to `+Inf` that match `_count`.
    fn parse(text: &str) -> Result<Exposition, String> {
        let mut x = Exposition::default();
        let mut current: Option<String> = None;
        let mut seen: HashSet<(String, LabelPairs)> = HashSet::new();
        let mut with_samples: BTreeSet<String> = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let at = |m: String| format!("line {}: {m}: {line:?}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or_else(|| at("no help".into()))?;
                if !is_name(name, true) || help.trim().is_empty() {
                    return Err(at("bad HELP".into()));
                }
                if x.help.insert(name.to_owned(), help.to_owned()).is_some() {
                    return Err(at("family described twice".into()));
                }
                current = None;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                    return Err(at(format!("unknown type {ty}")));
                }
                if !x.help.contains_key(name) || current.is_some() {
                    return Err(at("TYPE without a HELP just before it".into()));
                }
                if x.types.insert(name.to_owned(), ty.to_owned()).is_some() {
                    return Err(at("family typed twice".into()));
                }
                current = Some(name.to_owned());
            } else if line.is_empty() || line.starts_with('#') {
                return Err(at("unexpected line".into()));
            } else {
                let s = parse_sample(line).map_err(at)?;
                let family = current
                    .as_ref()
                    .ok_or_else(|| at("sample outside a family".into()))?;
                let belongs = match x.types[family].as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| s.name == format!("{family}{suffix}")),
                    _ => &s.name == family,
                };
                if !belongs {
                    return Err(at(format!("sample of another family than {family}")));
                }
                let key = (
                    s.name.clone(),
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                );
                if !seen.insert(key) {
                    return Err(at("series twice".into()));
                }
                with_samples.insert(family.clone());
                x.samples.push(s);
            }
        }
        for (family, ty) in &x.types {
            if !family.starts_with("atamo_") {
                return Err(format!("{family} is not prefixed atamo_"));
            }
            if !with_samples.contains(family) {
                return Err(format!("{family} has no samples"));
            }
            match ty.as_str() {
                "counter" if !family.ends_with("_total") => {
                    return Err(format!("counter {family} does not end in _total"));
                }
                "histogram" => {
                    if !family.ends_with("_seconds") {
                        return Err(format!("histogram {family} does not end in _seconds"));
                    }
                    check_histogram(&x, family)?;
                }
                _ => {}
            }
        }
        if x.help.len() != x.types.len() {
            return Err("a HELP without a TYPE".into());
        }
        Ok(x)
    }

    fn check_histogram(x: &Exposition, family: &str) -> Result<(), String> {
        let bucket = format!("{family}_bucket");
        // Labels other than `le`, to (le, cumulative count) of each bucket.
        let mut series: BTreeMap<LabelPairs, Vec<(f64, f64)>> = BTreeMap::new();
        for s in x.samples.iter().filter(|s| s.name == bucket) {
            let le = s.labels.get("le").ok_or("a bucket without le")?;
            let le: f64 = le.parse().map_err(|_| format!("bad le {le}"))?;
            let rest = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            series.entry(rest).or_default().push((le, s.value));
        }
        for (labels, buckets) in series {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if !buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
            {
                return Err(format!("{family}{labels:?}: buckets not cumulative"));
            }
            let (last_le, last) = *buckets.last().ok_or("no buckets")?;
            let count = x
                .value(&format!("{family}_count"), &pairs)
                .ok_or("no _count")?;
            if last_le != f64::INFINITY || last != count {
                return Err(format!(
                    "{family}{labels:?}: +Inf bucket {last} vs count {count}"
                ));
            }
            x.value(&format!("{family}_sum"), &pairs).ok_or("no _sum")?;
        }
        Ok(())
    }

    /// Renders and parses until `pred` holds (up to 10 s).
    async fn until(
        metrics: &Metrics,
        what: &str,
        pred: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = metrics.render();
            let x = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            if pred(&x) {
                return x;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    const N: u64 = 4;
    const MAILER_TAKES: Duration = Duration::from_millis(30);

    /// Every `order.created` goes to three agents: `mailer` (succeeds after 30 ms), `flaky`
    /// (fails its first attempt, retryably) and `broken` (fails for good: dead letter).
    fn orders_hub() -> Hub {
        let rules = |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
            if event.event_type().as_str() != "order.created" {
                return;
            }
            for (rule, agent, action) in [
                ("mail", "mailer", "mail"),
                ("ship", "flaky", "ship"),
                ("bill", "broken", "bill"),
            ] {
                out.push(Proposal::action(
                    rule.into(),
                    PlannedAction::new(agent, action, event.payload().clone()),
                ));
            }
        };
        let mailer = agent_fn(|_, _| async {
            tokio::time::sleep(MAILER_TAKES).await;
            Ok(Reply::done())
        });
        let flaky = agent_fn(|action, _| {
            std::future::ready(if action.attempt() == 1 {
                Err(AgentError::retry("warming up"))
            } else {
                Ok(Reply::done())
            })
        });
        let broken =
            agent_fn(|_, _| std::future::ready(Err(AgentError::permanent("no such account"))));
        Hub::builder()
            .event_type(EventTypeDef::new("order.created").requiring(["n"]).unwrap())
            .action_type(ActionTypeDef::new("mail"))
            .action_type(ActionTypeDef::new("ship"))
            .action_type(ActionTypeDef::new("bill"))
            .agent(AgentSpec::new("mailer", mailer).handles(["mail"]))
            .agent(
                AgentSpec::new("flaky", flaky).handles(["ship"]).retry(
                    RetryPolicy::attempts(3)
                        .backoff(Duration::from_millis(1), Duration::from_millis(1))
                        .jitter(0.0),
                ),
            )
            .agent(AgentSpec::new("broken", broken).handles(["bill"]))
            .provider("orders", rules, ProviderScope::AllEvents)
            .build()
            .unwrap()
    }

    fn alice() -> Principal {
        Principal::user("alice")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_what_became_of_events_and_actions() {
        let hub = orders_hub();
        let control = hub.control();
        let metrics = Metrics::start(control.clone());
        for n in 0..N {
            let order = Event::new("order.created", alice(), json!({ "n": n }));
            hub.handle().publish(order).await.unwrap();
        }
        let rejected = [
            Event::new("order.unknown", alice(), json!({})),
            Event::new("order.unknown", alice(), json!({})),
            Event::new("nope", alice(), json!(5)),
            Event::new("order.created", alice(), json!({ "m": 1 })),
        ];
        for e in rejected {
            assert!(hub.handle().publish(e).await.is_err());
        }

        let n = N as f64;
        let x = until(&metrics, "every action's end", |x| {
            x.count("atamo_actions_total", &[("agent", "mailer"), ("outcome", "succeeded")]) == n
                && x.count("atamo_actions_total", &[("agent", "flaky"), ("outcome", "succeeded")])
                    == n
                && x.count(
                    "atamo_actions_total",
                    &[("agent", "broken"), ("outcome", "dead_lettered")],
                ) == n
                // Each dead letter publishes an `atamo.action.exhausted` event no rule routes.
                && x.count(
                    "atamo_events_unrouted_total",
                    &[("event_type", "atamo.action.exhausted")],
                ) == n
                // The first success of `mailer` and of `flaky` puts them online, which the
                // hub announces with an `atamo.agent.status_changed` event.
                && x.count(
                    "atamo_events_unrouted_total",
                    &[("event_type", "atamo.agent.status_changed")],
                ) == 2.0
        })
        .await;

        // Events in, events refused and why.
        let accepted = |t| x.count("atamo_events_accepted_total", &[("event_type", t)]);
        assert_eq!(accepted("order.created"), n);
        assert_eq!(accepted("atamo.action.exhausted"), n);
        assert_eq!(accepted("atamo.agent.status_changed"), 2.0);
        assert_eq!(x.sum("atamo_events_accepted_total"), 2.0 * n + 2.0);
        let rejected = |t| x.count("atamo_events_rejected_total", &[("event_type", t)]);
        assert_eq!(rejected("(unregistered)"), 3.0);
        assert_eq!(rejected("order.created"), 1.0);
        assert_eq!(x.sum("atamo_events_rejected_total"), 4.0);
        let problem = |p| x.count("atamo_event_problems_total", &[("problem", p)]);
        assert_eq!(problem("unknown_event_type"), 3.0);
        assert_eq!(problem("payload_not_object"), 1.0);
        assert_eq!(problem("missing_field"), 1.0);
        assert_eq!(x.sum("atamo_events_unrouted_total"), n + 2.0);

        // Actions by agent and outcome.
        let actions = |agent, outcome| {
            x.count(
                "atamo_actions_total",
                &[("agent", agent), ("outcome", outcome)],
            )
        };
        assert_eq!(actions("flaky", "retrying"), n);
        assert_eq!(actions("flaky", "failed"), 0.0);
        assert_eq!(actions("broken", "failed"), n);
        assert_eq!(actions("broken", "succeeded"), 0.0);
        assert_eq!(x.sum("atamo_actions_total"), 5.0 * n);
        for (agent, action) in [("mailer", "mail"), ("flaky", "ship"), ("broken", "bill")] {
            assert_eq!(
                x.count(
                    "atamo_actions_dispatched_total",
                    &[("agent", agent), ("action_type", action)]
                ),
                n,
                "dispatched to {agent}: once per action, retries are not dispatched again"
            );
        }

        // Call durations: every attempt, by agent.
        let calls = |agent| x.count("atamo_action_duration_seconds_count", &[("agent", agent)]);
        assert_eq!(calls("mailer"), n);
        assert_eq!(calls("flaky"), 2.0 * n);
        assert_eq!(calls("broken"), n);
        let mailer_bucket = |le| {
            x.count(
                "atamo_action_duration_seconds_bucket",
                &[("agent", "mailer"), ("le", le)],
            )
        };
        assert_eq!(mailer_bucket("0.025"), 0.0, "every mail took 30 ms or more");
        assert_eq!(mailer_bucket("+Inf"), n);
        let mailer_sum = x.count("atamo_action_duration_seconds_sum", &[("agent", "mailer")]);
        assert!(mailer_sum >= n * MAILER_TAKES.as_secs_f64(), "{mailer_sum}");

        // The dead letters' alerts are counted, and never fire (nothing resolves them).
        assert_eq!(
            x.count(
                "atamo_alerts_raised_total",
                &[("alert", "retries_exhausted"), ("agent", "broken")]
            ),
            n
        );
        assert!(x.series("atamo_alerts_firing").is_empty());

        // Telemetry: every step counted, none missed.
        let steps = |kind| x.count("atamo_telemetry_events_total", &[("kind", kind)]);
        assert_eq!(steps("accepted"), 2.0 * n + 2.0);
        assert_eq!(steps("agent_status_changed"), 2.0);
        assert_eq!(steps("rejected"), 4.0);
        assert_eq!(steps("rule_matched"), 3.0 * n);
        assert_eq!(steps("action_dispatched"), 3.0 * n);
        assert_eq!(steps("action_succeeded"), 2.0 * n);
        assert_eq!(x.value("atamo_telemetry_missed_total", &[]), Some(0.0));

        // Gauges, as the hub reports them.
        let health = control.health();
        assert_eq!(x.value("atamo_hub_accepting", &[]), Some(1.0));
        assert_eq!(
            x.value("atamo_ingress_queue_capacity", &[]),
            Some(health.ingress.capacity as f64)
        );
        assert_eq!(x.value("atamo_ingress_queue_length", &[]), Some(0.0));
        assert_eq!(
            x.value("atamo_telemetry_subscribers", &[]),
            Some(health.telemetry_subscribers as f64)
        );
        assert_eq!(health.telemetry_subscribers, 1, "the metrics' own");
        assert_eq!(x.value("atamo_requests_running", &[]), Some(0.0));
        assert_eq!(health.agents.len(), 3);
        for a in &health.agents {
            let agent = [("agent", a.id.as_str())];
            assert_eq!(x.value("atamo_agent_queue_length", &agent), Some(0.0));
            assert_eq!(x.value("atamo_agent_in_flight", &agent), Some(0.0));
            assert_eq!(
                x.value("atamo_agent_queue_capacity", &agent),
                Some(a.queue.capacity as f64)
            );
        }
        assert_eq!(x.series("atamo_agent_status").len(), 3 * 4);
        let status =
            |agent, state| x.value("atamo_agent_status", &[("agent", agent), ("state", state)]);
        assert_eq!(status("mailer", "online"), Some(1.0));
        assert_eq!(status("flaky", "online"), Some(1.0));
        // Permanent errors say nothing about the agent.
        assert_eq!(status("broken", "unknown"), Some(1.0));
        for s in control.agent_statuses() {
            for state in super::AGENT_STATES {
                let labels = [
                    ("agent", s.agent.as_str()),
                    ("state", super::agent_state_label(state)),
                ];
                let want = if s.state == state { 1.0 } else { 0.0 };
                assert_eq!(x.value("atamo_agent_status", &labels), Some(want));
            }
        }
        // A stateless hub has no store.
        assert!(x.series("atamo_store_lost_leases_total").is_empty());

        // An operator takes the mailer offline: the gauge follows at once.
        control
            .set_agent_status(&AgentId::from("mailer"), AgentState::Offline, "maintenance")
            .unwrap();
        let x = parse(&metrics.render()).unwrap();
        let mailer = |state| {
            x.value(
                "atamo_agent_status",
                &[("agent", "mailer"), ("state", state)],
            )
        };
        assert_eq!(mailer("offline"), Some(1.0));
        assert_eq!(mailer("online"), Some(0.0));
        assert_eq!(mailer("unknown"), Some(0.0));

        hub.shutdown().await;
        let x = parse(&metrics.render()).unwrap();
        assert_eq!(x.value("atamo_hub_accepting", &[]), Some(0.0));
        // Counts survive the shutdown.
        assert_eq!(
            x.count(
                "atamo_events_accepted_total",
                &[("event_type", "order.created")]
            ),
            n
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_output_is_prometheus_text() {
        let hub = orders_hub();
        let metrics = Metrics::start(hub.control());
        for n in 0..N {
            let order = Event::new("order.created", alice(), json!({ "n": n }));
            hub.handle().publish(order).await.unwrap();
        }
        let bad = Event::new("order.unknown", alice(), json!({}));
        assert!(hub.handle().publish(bad).await.is_err());
        metrics.observe_http("POST", "/v1/events", 202, Duration::from_millis(3));
        metrics.observe_http("GET", "/v1/events/{id}", 404, Duration::from_millis(1));
        // A label value that needs escaping.
        metrics.observe_http("GET", "/v1/\"odd\"\\route", 200, Duration::from_millis(1));
        until(&metrics, "the dead letters", |x| {
            x.count(
                "atamo_events_unrouted_total",
                &[("event_type", "atamo.action.exhausted")],
            ) == N as f64
        })
        .await;
        let text = metrics.render();
        let x = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            x.count(
                "atamo_http_requests_total",
                &[
                    ("method", "GET"),
                    ("route", "/v1/\"odd\"\\route"),
                    ("status", "200")
                ]
            ),
            1.0
        );

        // Every family `parse` checked has HELP and TYPE; these are the ones expected here.
        let families: Vec<&str> = x.types.keys().map(String::as_str).collect();
        for f in [
            "atamo_events_accepted_total",
            "atamo_events_rejected_total",
            "atamo_event_problems_total",
            "atamo_events_unrouted_total",
            "atamo_actions_dispatched_total",
            "atamo_actions_total",
            "atamo_action_duration_seconds",
            "atamo_alerts_raised_total",
            "atamo_telemetry_events_total",
            "atamo_telemetry_missed_total",
            "atamo_hub_accepting",
            "atamo_ingress_queue_length",
            "atamo_ingress_queue_capacity",
            "atamo_agent_queue_length",
            "atamo_agent_queue_capacity",
            "atamo_agent_in_flight",
            "atamo_agent_status",
            "atamo_telemetry_subscribers",
            "atamo_requests_running",
            "atamo_requests_kept",
            "atamo_http_requests_total",
            "atamo_http_request_duration_seconds",
        ] {
            assert!(families.contains(&f), "{f} missing from\n{text}");
        }
        assert_eq!(x.types["atamo_action_duration_seconds"], "histogram");
        assert_eq!(x.types["atamo_actions_total"], "counter");
        assert_eq!(x.types["atamo_agent_status"], "gauge");
        for (family, help) in &x.help {
            assert!(help.len() > 10, "{family}: {help}");
        }
        // Every sample line is `name{labels} value` (checked by `parse`), and there are as
        // many as lines that are not comments.
        let lines = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(lines, x.samples.len());
        assert!(Metrics::CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
        hub.shutdown().await;
    }

    #[test]
    fn the_parser_refuses_what_prometheus_would() {
        let good =
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=\"b\"} 1\n";
        assert!(parse(good).is_ok());
        for bad in [
            // No HELP.
            "# TYPE atamo_x_total counter\natamo_x_total 1\n",
            // No TYPE.
            "# HELP atamo_x_total X.\natamo_x_total 1\n",
            // A sample of another family.
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_y_total 1\n",
            // Unquoted label value, bad value, missing value.
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=b} 1\n",
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total one\n",
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total{a=\"b\"}\n",
            // A series twice.
            "# HELP atamo_x_total X.\n# TYPE atamo_x_total counter\natamo_x_total 1\natamo_x_total 2\n",
            // A histogram whose +Inf bucket does not match its count.
            "# HELP atamo_h_seconds H.\n# TYPE atamo_h_seconds histogram\natamo_h_seconds_bucket{le=\"1\"} 1\natamo_h_seconds_bucket{le=\"+Inf\"} 2\natamo_h_seconds_sum 1\natamo_h_seconds_count 3\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    /// On a current-thread runtime the counting task cannot run while the test records, so
    /// a burst larger than the telemetry buffer makes it fall behind by an exact amount.
    #[tokio::test]
    async fn steps_missed_by_lagging_are_counted_not_lost() {
        const BUFFER: usize = 4;
        const BURST: usize = 100;
        let hub = Hub::builder().telemetry_capacity(BUFFER).build().unwrap();
        let control = hub.control();
        let metrics = Metrics::start(control.clone());
        for i in 0..BURST {
            control.record(TelemetryKind::PluginLoadFailed {
                path: format!("/plugins/{i}.so"),
                error: "not a plugin".into(),
            });
        }
        let x = until(&metrics, "the burst", |x| {
            x.sum("atamo_telemetry_events_total")
                + x.value("atamo_telemetry_missed_total", &[]).unwrap_or(0.0)
                == BURST as f64
        })
        .await;
        assert_eq!(
            x.value("atamo_telemetry_missed_total", &[]),
            Some((BURST - BUFFER) as f64)
        );
        assert_eq!(
            x.count(
                "atamo_telemetry_events_total",
                &[("kind", "plugin_load_failed")]
            ),
            BUFFER as f64,
            "the newest steps are counted"
        );
        hub.shutdown().await;
    }

    fn alert(alert: &str, agent: &str, raised: bool) -> TelemetryKind {
        TelemetryKind::Alert {
            alert: alert.parse().expect("an alert kind"),
            agent: Some(AgentId::from(agent)),
            raised,
            detail: String::new(),
        }
    }

    #[tokio::test]
    async fn alerts_fire_from_raise_to_resolve() {
        let hub = Hub::builder().build().unwrap();
        let control = hub.control();
        let metrics = Metrics::start(control.clone());
        for step in [
            alert("error_rate", "a", true),
            alert("latency_p95", "a", true),
            alert("error_rate", "a", false),
            // A notification: counted, never firing.
            alert("retries_exhausted", "b", true),
            // Fires until the process starts again.
            alert("agent_offline", "c", true),
            TelemetryKind::AgentProcess {
                agent: AgentId::from("c"),
                change: ProcessChange::Started {
                    pid: 42,
                    restarts: 3,
                },
            },
            // Fires until the agent is unregistered.
            alert("queue_depth", "d", true),
            TelemetryKind::AgentUnregistered {
                agent: AgentId::from("d"),
            },
            alert("agent_offline", "e", true),
        ] {
            control.record(step);
        }
        let x = until(&metrics, "9 steps", |x| {
            x.sum("atamo_telemetry_events_total") == 9.0
        })
        .await;
        let firing: BTreeSet<(String, String)> = x
            .samples
            .iter()
            .filter(|s| s.name == "atamo_alerts_firing")
            .map(|s| {
                assert_eq!(s.value, 1.0);
                (s.labels["alert"].clone(), s.labels["agent"].clone())
            })
            .collect();
        let want: BTreeSet<(String, String)> = [("latency_p95", "a"), ("agent_offline", "e")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(firing, want);
        let raised = |alert, agent| {
            x.count(
                "atamo_alerts_raised_total",
                &[("alert", alert), ("agent", agent)],
            )
        };
        assert_eq!(raised("error_rate", "a"), 1.0);
        assert_eq!(raised("retries_exhausted", "b"), 1.0);
        assert_eq!(x.sum("atamo_alerts_raised_total"), 6.0);
        assert_eq!(
            x.count(
                "atamo_agent_process_changes_total",
                &[("agent", "c"), ("change", "started")]
            ),
            1.0
        );
        hub.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_alert_monitors_alert_fires_then_resolves() {
        let hub = orders_hub();
        let metrics = Metrics::start(hub.control());
        let config = AlertConfig::new()
            .default_thresholds(
                AgentThresholds::none().with_error_rate(
                    ErrorRateThreshold::new(0.1)
                        .window(Duration::from_secs(1))
                        .min_calls(2),
                ),
            )
            .sample_interval(Duration::from_millis(50));
        let monitor = AlertMonitor::start(&hub, config);
        for n in 0..N {
            let order = Event::new("order.created", alice(), json!({ "n": n }));
            hub.handle().publish(order).await.unwrap();
        }
        let broken = [("alert", "error_rate"), ("agent", "broken")];
        until(&metrics, "the broken agent's error rate alert", |x| {
            x.value("atamo_alerts_firing", &broken) == Some(1.0)
        })
        .await;
        // With no more calls the window empties and the alert is resolved.
        let x = until(&metrics, "the alert resolved", |x| {
            x.value("atamo_alerts_firing", &broken).is_none()
        })
        .await;
        assert_eq!(x.count("atamo_alerts_raised_total", &broken), 1.0);
        assert!(x.count("atamo_telemetry_events_total", &[("kind", "alert")]) >= 2.0);
        monitor.stop();
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn http_requests_by_route_and_status() {
        let hub = Hub::builder().build().unwrap();
        let metrics = Metrics::start(hub.control());
        let ms = Duration::from_millis;
        let one = "/v1/events/{id}";
        metrics.observe_http("GET", one, 200, ms(2));
        metrics.observe_http("GET", one, 200, ms(20));
        metrics.observe_http("get", one, 200, Duration::from_secs(2));
        metrics.observe_http("GET", one, 404, ms(1));
        metrics.observe_http("POST", "/v1/events", 202, ms(4));
        metrics.observe_http("BREW", "/v1/events", 405, ms(1));
        let x = parse(&metrics.render()).unwrap();
        let requests = |method, route, status| {
            x.count(
                "atamo_http_requests_total",
                &[("method", method), ("route", route), ("status", status)],
            )
        };
        assert_eq!(requests("GET", one, "200"), 3.0);
        assert_eq!(requests("GET", one, "404"), 1.0);
        assert_eq!(requests("POST", "/v1/events", "202"), 1.0);
        assert_eq!(requests("OTHER", "/v1/events", "405"), 1.0);
        assert_eq!(x.sum("atamo_http_requests_total"), 6.0);
        let get = [("method", "GET"), ("route", one)];
        let bucket = |le| {
            x.count(
                "atamo_http_request_duration_seconds_bucket",
                &[("method", "GET"), ("route", one), ("le", le)],
            )
        };
        assert_eq!(bucket("0.001"), 1.0);
        assert_eq!(bucket("0.0025"), 2.0);
        assert_eq!(bucket("0.025"), 3.0);
        assert_eq!(bucket("1"), 3.0);
        assert_eq!(bucket("2.5"), 4.0);
        assert_eq!(bucket("+Inf"), 4.0);
        assert_eq!(
            x.value("atamo_http_request_duration_seconds_count", &get),
            Some(4.0)
        );
        let sum = x
            .value("atamo_http_request_duration_seconds_sum", &get)
            .unwrap();
        assert!((sum - 2.023).abs() < 1e-9, "{sum}");

        // Raw paths passed as routes cannot grow the series without bound.
        let used = 3; // (GET, one), (POST, /v1/events), (OTHER, /v1/events)
        let extra = 50;
        for i in 0..(super::MAX_HTTP_ROUTES - used + extra) {
            metrics.observe_http("GET", &format!("/v1/events/{i}"), 200, ms(1));
        }
        let x = parse(&metrics.render()).unwrap();
        let routes: BTreeSet<(&str, &str)> = x
            .series("atamo_http_request_duration_seconds_count")
            .into_iter()
            .map(|l| (l["method"].as_str(), l["route"].as_str()))
            .collect();
        assert_eq!(routes.len(), super::MAX_HTTP_ROUTES + 1);
        assert!(routes.contains(&("GET", "(other)")));
        assert_eq!(
            x.value(
                "atamo_http_request_duration_seconds_count",
                &[("method", "GET"), ("route", "(other)")]
            ),
            Some(extra as f64)
        );
        hub.shutdown().await;
    }

    #[tokio::test]
    async fn dropping_the_metrics_ends_the_subscription() {
        let hub = Hub::builder().build().unwrap();
        let control = hub.control();
        assert_eq!(control.health().telemetry_subscribers, 0);
        let metrics = Metrics::start(control.clone());
        assert_eq!(control.health().telemetry_subscribers, 1);
        drop(metrics);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while control.health().telemetry_subscribers != 0 {
            assert!(std::time::Instant::now() < deadline, "still subscribed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hub.shutdown().await;
    }
}
