//! Alerts per agent, raised and resolved from telemetry and health.
//!
//! An [`AlertMonitor`] watches a hub and raises an alert for an agent when one of four
//! conditions holds, and resolves it when the condition is over:
//!
//! | alert | condition | default |
//! |---|---|---|
//! | [`ERROR_RATE`] | share of failed calls in the window above `max_rate`, with at least `min_calls` calls in the window | **on**: 5 % over 5 minutes, at least 20 calls |
//! | [`LATENCY_P95`] | 95th percentile of call durations in the window above `max_p95`, with at least `min_calls` calls | off |
//! | [`THROUGHPUT_LOW`] | calls per second over the window below `min_per_sec` | off |
//! | [`QUEUE_DEPTH`] | the agent's queue longer than `max_len` for at least `for_at_least` | off |
//!
//! Thresholds are set for all agents ([`AlertConfig::default`]) and may be replaced for single
//! agents ([`AlertConfig::per_agent`]). An agent listed in `per_agent` uses exactly the
//! [`AgentThresholds`] given there: kinds left out of it are off for that agent (start from a
//! clone of the default to change only one).
//!
//! # Inputs
//! - Telemetry from [`Control::subscribe`]: every `action_succeeded` and `action_failed`
//!   counts as one call of `action.agent`, with its `elapsed` time. A monitor that falls behind
//!   counts the steps it missed ([`AlertMonitor::missed_telemetry`]) and logs a warning; those
//!   calls are simply not in its windows.
//! - [`Control::health`], sampled every [`AlertConfig::sample_interval`] (default 1 s), for
//!   queue lengths and for the list of agents.
//!
//! # Outputs
//! Every raise and every resolve is reported twice:
//! - as telemetry: [`TelemetryKind::Alert`] with `alert` one of the constants above, `agent`,
//!   `raised` and a readable `detail`;
//! - as an event of type [`ALERT_EVENT_TYPE`] (`atamo.alert`, registered by
//!   [`AlertMonitor::start`] if it is not yet), published for user [`ALERT_USER`] in group
//!   [`ALERT_GROUP`] with the payload
//!   `{"alert", "agent", "raised", "detail", "value", "threshold"}`, so that rules can route
//!   alerts like any other event (for example to the agent's owner). Values are fractions for
//!   `error_rate` (0.05 is 5 %), milliseconds for `latency_p95`, calls per second for
//!   `throughput_low` and queued actions for `queue_depth`.
//!
//! Alert events are handed to the hub without waiting ([`HubHandle::try_publish`]): when the
//! hub's intake is full they wait, in order, in a bounded outbox (1024 events; beyond that the
//! oldest is dropped and logged) and are retried shortly after.
//!
//! # When alerts change
//! Conditions are evaluated for the agents whose calls arrive in each telemetry batch, and
//! for every agent on each sample tick, so windows slide and alerts resolve without traffic,
//! and `throughput_low` fires with no traffic at all.
//!
//! A raised alert is not raised again until it has been resolved. Hysteresis: an alert is
//! raised when its value crosses the threshold (above it; below it for throughput) and the
//! window holds enough calls; it is resolved only when the value is back at or under the
//! threshold (at or above it for throughput), or, for `error_rate` and `latency_p95`, when the
//! window holds no call at all. A window with some calls but fewer than `min_calls` neither
//! raises nor resolves. `queue_depth` is resolved as soon as a sample finds the queue at or
//! under `max_len`.
//!
//! `throughput_low` does not fire for an agent before one whole window has passed since the
//! agent was first seen: since the monitor started for agents registered then, otherwise
//! since the agent's registration or first call, whichever the monitor saw first.
//!
//! # Windows and memory
//! Time is [`tokio::time::Instant`], so a paused test clock drives the monitor. Windows are
//! whole seconds (a window is rounded up to whole seconds, at least 1 s):
//! - calls and failures are counted in one bucket per second, holding only seconds that had
//!   calls, at most one more than the longest window of the agent's `error_rate` and
//!   `throughput_low` thresholds. `error_rate` covers the current second and the `window - 1`
//!   seconds before it; `throughput_low` covers the last `window` whole seconds (it lags by
//!   up to one second, and is exact in calls per second);
//! - `latency_p95` keeps the durations of the most recent calls inside its window, at most
//!   [`LATENCY_SAMPLES`] of them: under heavier traffic the percentile is that of the last
//!   [`LATENCY_SAMPLES`] calls. The 95th percentile is by nearest rank.
//!
//! Nothing is kept for a kind that is off. Agents that are unregistered are forgotten (their
//! active alerts are resolved).
//!
//! # Stopping
//! The monitor runs as one task on the hub's runtime until [`AlertMonitor::stop`] is called
//! or the monitor is dropped, or the hub shuts down (telemetry `shutdown_started` or
//! `stopped`, a closed subscription, or a health sample finding the hub no longer accepting).
//! [`AlertMonitor::active`] keeps listing what was active when it stopped.
//!
//! ```
//! use std::time::Duration;
//! use atamo_core::alerts::{AgentThresholds, AlertConfig, AlertMonitor, LatencyThreshold};
//! use atamo_core::Hub;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder().build()?;
//! let config = AlertConfig::new().agent(
//!     "search",
//!     AgentThresholds::default()
//!         .with_latency_p95(LatencyThreshold::new(Duration::from_millis(250))),
//! );
//! let monitor = AlertMonitor::start(&hub, config);
//! assert!(monitor.active().is_empty());
//! hub.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::hub::{
    ConfigProblem, Control, EventTypeDef, Hub, HubHandle, QueueDepth, TryPublishError,
};
use crate::ids::AgentId;
use crate::message::{Event, Principal};
use crate::telemetry::{TelemetryBatch, TelemetryKind, TelemetryRecvError, TelemetrySubscriber};

/// The alert for an agent failing too large a share of its calls.
pub const ERROR_RATE: &str = "error_rate";
/// The alert for an agent whose 95th percentile call duration is too long.
pub const LATENCY_P95: &str = "latency_p95";
/// The alert for an agent doing too few calls per second.
pub const THROUGHPUT_LOW: &str = "throughput_low";
/// The alert for an agent whose queue stays too long for too long.
pub const QUEUE_DEPTH: &str = "queue_depth";

/// The event type alerts are published as.
pub const ALERT_EVENT_TYPE: &str = "atamo.alert";
/// The user alert events are published for.
pub const ALERT_USER: &str = "atamo";
/// The group of the user alert events are published for.
pub const ALERT_GROUP: &str = "atamo.controller";

/// The most call durations kept per agent for [`LATENCY_P95`].
pub const LATENCY_SAMPLES: usize = 1024;

/// The most alert events waiting for room in the hub's intake.
const OUTBOX_CAPACITY: usize = 1024;
/// How soon alert events that found the hub's intake full are tried again.
const RETRY_DELAY: Duration = Duration::from_millis(50);

const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
const DEFAULT_MIN_CALLS: u64 = 20;
const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

fn default_window() -> Duration {
    DEFAULT_WINDOW
}

fn default_min_calls() -> u64 {
    DEFAULT_MIN_CALLS
}

fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Raise [`ERROR_RATE`] when more than `max_rate` of an agent's calls in the window failed.
///
/// In a configuration file: `{"max_rate": 0.05, "window_ms": 300000, "min_calls": 20}`, every
/// field optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorRateThreshold {
    /// The highest acceptable share of failed calls, from 0.0 to 1.0 (default 0.05).
    pub max_rate: f64,
    /// The window (default 5 minutes; whole seconds).
    #[serde(rename = "window_ms", deserialize_with = "de_ms")]
    pub window: Duration,
    /// How many calls the window must hold before the alert can be raised (default 20).
    pub min_calls: u64,
}

impl Default for ErrorRateThreshold {
    fn default() -> Self {
        Self {
            max_rate: 0.05,
            window: DEFAULT_WINDOW,
            min_calls: DEFAULT_MIN_CALLS,
        }
    }
}

impl ErrorRateThreshold {
    /// Raise above `max_rate` (0.05 is 5 %), over the default window and minimum of calls.
    pub fn new(max_rate: f64) -> Self {
        Self {
            max_rate,
            ..Self::default()
        }
    }

    /// Sets the window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets how many calls the window must hold before the alert can be raised.
    #[must_use]
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }
}

/// Raise [`LATENCY_P95`] when the 95th percentile of an agent's call durations in the window
/// is above `max_p95`.
///
/// In a configuration file: `{"max_p95_ms": 250, "window_ms": 300000, "min_calls": 20}`;
/// `max_p95_ms` is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyThreshold {
    /// The longest acceptable 95th percentile.
    #[serde(rename = "max_p95_ms", deserialize_with = "de_ms")]
    pub max_p95: Duration,
    /// The window (default 5 minutes; whole seconds).
    #[serde(
        rename = "window_ms",
        default = "default_window",
        deserialize_with = "de_ms"
    )]
    pub window: Duration,
    /// How many calls the window must hold before the alert can be raised (default 20).
    #[serde(default = "default_min_calls")]
    pub min_calls: u64,
}

impl LatencyThreshold {
    /// Raise when the 95th percentile is above `max_p95`, over the default window (5 minutes)
    /// and minimum of calls (20).
    pub fn new(max_p95: Duration) -> Self {
        Self {
            max_p95,
            window: DEFAULT_WINDOW,
            min_calls: DEFAULT_MIN_CALLS,
        }
    }

    /// Sets the window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets how many calls the window must hold before the alert can be raised.
    #[must_use]
    pub fn min_calls(mut self, n: u64) -> Self {
        self.min_calls = n;
        self
    }
}

/// Raise [`THROUGHPUT_LOW`] when an agent does fewer than `min_per_sec` calls per second over
/// the window.
///
/// In a configuration file: `{"min_per_sec": 2.0, "window_ms": 300000}`; `min_per_sec` is
/// required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThroughputThreshold {
    /// The fewest acceptable calls per second.
    pub min_per_sec: f64,
    /// The window (default 5 minutes; whole seconds).
    #[serde(
        rename = "window_ms",
        default = "default_window",
        deserialize_with = "de_ms"
    )]
    pub window: Duration,
}

impl ThroughputThreshold {
    /// Raise below `min_per_sec` calls per second over the default window (5 minutes).
    pub fn new(min_per_sec: f64) -> Self {
        Self {
            min_per_sec,
            window: DEFAULT_WINDOW,
        }
    }

    /// Sets the window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

/// Raise [`QUEUE_DEPTH`] when an agent's queue holds more than `max_len` actions in every
/// sample for at least `for_at_least`.
///
/// In a configuration file: `{"max_len": 100, "for_ms": 30000}`, both required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDepthThreshold {
    /// The most queued actions that are fine.
    pub max_len: usize,
    /// How long the queue must stay above `max_len` before the alert is raised (measured
    /// between samples, so to the sample interval).
    #[serde(rename = "for_ms", deserialize_with = "de_ms")]
    pub for_at_least: Duration,
}

impl QueueDepthThreshold {
    /// Raise when the queue stays above `max_len` for at least `for_at_least`.
    pub fn new(max_len: usize, for_at_least: Duration) -> Self {
        Self {
            max_len,
            for_at_least,
        }
    }
}

/// The thresholds for one agent (or, as [`AlertConfig::default`], for every agent). A kind
/// that is `None` is off.
///
/// The default has [`ERROR_RATE`] on (5 % over 5 minutes, at least 20 calls) and the others
/// off. In a configuration file every field is optional: a missing field keeps that default,
/// `null` turns the kind off, e.g.
/// `{"error_rate": {"max_rate": 0.1}, "queue_depth": {"max_len": 50, "for_ms": 10000}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentThresholds {
    /// [`ERROR_RATE`]: on by default.
    pub error_rate: Option<ErrorRateThreshold>,
    /// [`LATENCY_P95`]: off by default.
    pub latency_p95: Option<LatencyThreshold>,
    /// [`THROUGHPUT_LOW`]: off by default.
    pub throughput: Option<ThroughputThreshold>,
    /// [`QUEUE_DEPTH`]: off by default.
    pub queue_depth: Option<QueueDepthThreshold>,
}

impl Default for AgentThresholds {
    fn default() -> Self {
        Self {
            error_rate: Some(ErrorRateThreshold::default()),
            latency_p95: None,
            throughput: None,
            queue_depth: None,
        }
    }
}

impl AgentThresholds {
    /// Every kind off.
    pub fn none() -> Self {
        Self {
            error_rate: None,
            latency_p95: None,
            throughput: None,
            queue_depth: None,
        }
    }

    /// Sets the [`ERROR_RATE`] threshold.
    #[must_use]
    pub fn with_error_rate(mut self, t: ErrorRateThreshold) -> Self {
        self.error_rate = Some(t);
        self
    }

    /// Turns [`ERROR_RATE`] off.
    #[must_use]
    pub fn without_error_rate(mut self) -> Self {
        self.error_rate = None;
        self
    }

    /// Sets the [`LATENCY_P95`] threshold.
    #[must_use]
    pub fn with_latency_p95(mut self, t: LatencyThreshold) -> Self {
        self.latency_p95 = Some(t);
        self
    }

    /// Sets the [`THROUGHPUT_LOW`] threshold.
    #[must_use]
    pub fn with_throughput(mut self, t: ThroughputThreshold) -> Self {
        self.throughput = Some(t);
        self
    }

    /// Sets the [`QUEUE_DEPTH`] threshold.
    #[must_use]
    pub fn with_queue_depth(mut self, t: QueueDepthThreshold) -> Self {
        self.queue_depth = Some(t);
        self
    }
}

/// What an [`AlertMonitor`] watches for: thresholds for every agent, replaced for some, and
/// how often health is sampled.
///
/// In a configuration file (every field optional, unknown fields rejected):
/// `{"default": {...}, "per_agent": {"search": {...}}, "sample_interval_ms": 1000}`, each
/// `{...}` an [`AgentThresholds`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// The thresholds of every agent not in `per_agent` (default: [`AgentThresholds::default`]).
    pub default: AgentThresholds,
    /// Agents with their own thresholds, used instead of `default` (not merged with it).
    pub per_agent: HashMap<AgentId, AgentThresholds>,
    /// How often health (queue lengths, the list of agents) is sampled and every agent
    /// evaluated (default 1 s; at least 1 ms).
    #[serde(rename = "sample_interval_ms", deserialize_with = "de_ms")]
    pub sample_interval: Duration,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            default: AgentThresholds::default(),
            per_agent: HashMap::new(),
            sample_interval: DEFAULT_SAMPLE_INTERVAL,
        }
    }
}

impl AlertConfig {
    /// The defaults: [`ERROR_RATE`] for every agent, health sampled every second.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the thresholds of every agent without its own.
    #[must_use]
    pub fn default_thresholds(mut self, t: AgentThresholds) -> Self {
        self.default = t;
        self
    }

    /// Gives `agent` its own thresholds, used instead of the default ones.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<AgentId>, t: AgentThresholds) -> Self {
        self.per_agent.insert(agent.into(), t);
        self
    }

    /// Sets how often health is sampled and every agent evaluated.
    #[must_use]
    pub fn sample_interval(mut self, every: Duration) -> Self {
        self.sample_interval = every;
        self
    }

    /// The thresholds that apply to `agent`.
    pub fn thresholds_for(&self, agent: &AgentId) -> &AgentThresholds {
        self.per_agent.get(agent).unwrap_or(&self.default)
    }
}

/// An alert that is raised and not yet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveAlert {
    /// Which alert: [`ERROR_RATE`], [`LATENCY_P95`], [`THROUGHPUT_LOW`] or [`QUEUE_DEPTH`].
    pub alert: &'static str,
    /// The agent it is about.
    pub agent: AgentId,
    /// When it was raised.
    pub since: Instant,
    /// The value that raised it (units as in the alert event's payload: a fraction,
    /// milliseconds, calls per second or queued actions).
    pub value: f64,
    /// The threshold it crossed, in the same unit.
    pub threshold: f64,
    /// The explanation it was raised with.
    pub detail: String,
}

/// What the monitor's task and its handle share.
#[derive(Default)]
struct Shared {
    active: Mutex<Vec<ActiveAlert>>,
    missed: AtomicU64,
    dropped: AtomicU64,
}

/// Watches a hub and raises and resolves alerts per agent (see the [module](self) docs).
///
/// Dropping it stops its task.
pub struct AlertMonitor {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AlertMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertMonitor")
            .field("running", &self.is_running())
            .field("active", &self.active().len())
            .finish_non_exhaustive()
    }
}

impl Drop for AlertMonitor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl AlertMonitor {
    /// Starts watching `hub`: registers the [`ALERT_EVENT_TYPE`] event type if it is not
    /// registered yet, subscribes to telemetry and spawns one task on the hub's runtime.
    pub fn start(hub: &Hub, config: AlertConfig) -> Self {
        Self::watch(&hub.control(), config)
    }

    /// [`start`](Self::start) for a controller that holds only the hub's [`Control`]. Alert
    /// events are published through the hub's in-process [`HubHandle`].
    pub fn watch(control: &Control, config: AlertConfig) -> Self {
        register_alert_type(control);
        // Subscribed before the task runs, so nothing after `start` returns is missed.
        let sub = control.subscribe();
        let epoch = Instant::now();
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let mut task = Task {
            control: control.clone(),
            handle: HubHandle::from_shared(&control.shared),
            config,
            epoch,
            agents: BTreeMap::new(),
            active: BTreeMap::new(),
            shared: shared.clone(),
            outbox: VecDeque::new(),
            touched: Vec::new(),
        };
        // Agents registered now are watched from now on.
        for agent in control.health().agents {
            task.ensure(&agent.id, epoch);
        }
        let span = tracing::info_span!("alert_monitor");
        let handle = control
            .shared
            .runtime
            .spawn(task.run(sub, stop.clone()).instrument(span));
        Self {
            shared,
            stop,
            task: Some(handle),
        }
    }

    /// The alerts raised and not yet resolved, by agent, then alert.
    pub fn active(&self) -> Vec<ActiveAlert> {
        lock(&self.shared.active).clone()
    }

    /// How many telemetry steps the monitor missed because it fell behind.
    pub fn missed_telemetry(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// How many alert events could not be published (the hub refused them, or the outbox
    /// overflowed). Their telemetry was recorded all the same.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Whether the monitor's task is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the monitor. Its task ends at its next step; active alerts stay listed.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the monitor's task has ended: after [`stop`](Self::stop), or once the
    /// hub has shut down.
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "alert monitor task ended abnormally");
            }
        }
    }
}

fn register_alert_type(control: &Control) {
    if control
        .event_types()
        .iter()
        .any(|d| d.name.as_str() == ALERT_EVENT_TYPE)
    {
        return;
    }
    if let Err(e) = control.register_event_type(EventTypeDef::new(ALERT_EVENT_TYPE)) {
        // Registered meanwhile by someone else: fine.
        let benign = e
            .problems
            .iter()
            .all(|p| matches!(p, ConfigProblem::Duplicate { .. }));
        if !benign {
            tracing::warn!(error = %e, "could not register the {ALERT_EVENT_TYPE} event type");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Whole seconds of a window, rounded up, at least 1.
fn window_secs(w: Duration) -> u64 {
    (w.as_secs() + u64::from(w.subsec_nanos() > 0)).max(1)
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Milliseconds, exact for whole milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// A number for people: at most three decimals, no trailing zeros.
fn short(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ErrorRate,
    Latency,
    Throughput,
    Queue,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ErrorRate => ERROR_RATE,
            Kind::Latency => LATENCY_P95,
            Kind::Throughput => THROUGHPUT_LOW,
            Kind::Queue => QUEUE_DEPTH,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The condition holds: raise, if not raised.
    Alarm,
    /// The condition is over: resolve, if raised.
    Clear,
    /// Not enough to tell: leave as it is.
    Hold,
}

/// One evaluation of one kind for one agent. The explanation is only written on a change.
#[derive(Debug, Clone, Copy)]
struct Measure {
    level: Level,
    value: f64,
    threshold: f64,
    /// Calls in the window; for the queue, its length.
    count: u64,
    /// Failed calls in the window; for the queue, its capacity.
    part: u64,
    /// The window; for the queue, how long it has been above the threshold.
    span: Duration,
}

impl Measure {
    fn hold() -> Self {
        Self {
            level: Level::Hold,
            value: 0.0,
            threshold: 0.0,
            count: 0,
            part: 0,
            span: Duration::ZERO,
        }
    }

    fn describe(&self, kind: Kind, raised: bool) -> String {
        let w = fmt_duration(self.span);
        match kind {
            Kind::ErrorRate | Kind::Latency if self.count == 0 => {
                format!("no calls in the last {w}")
            }
            Kind::ErrorRate => format!(
                "error rate {:.1}% over the last {w} ({} of {} calls failed) is {} {:.1}%",
                self.value * 100.0,
                self.part,
                self.count,
                if raised { "above" } else { "at or under" },
                self.threshold * 100.0,
            ),
            Kind::Latency => format!(
                "p95 latency {} ms over the last {w} ({} calls) is {} {} ms",
                short(self.value),
                self.count,
                if raised { "above" } else { "at or under" },
                short(self.threshold),
            ),
            Kind::Throughput => format!(
                "{:.2} calls/s over the last {w} ({} calls) is {} {:.2} calls/s",
                self.value,
                self.count,
                if raised { "below" } else { "at or above" },
                self.threshold,
            ),
            Kind::Queue if raised => format!(
                "queue at {} of {} has stayed above {} for {w}",
                self.count, self.part, self.threshold,
            ),
            Kind::Queue => format!(
                "queue at {} of {} is at or under {}",
                self.count, self.part, self.threshold,
            ),
        }
    }
}

/// Calls of one second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    sec: u64,
    calls: u64,
    failed: u64,
}

/// What the monitor knows of one agent.
struct AgentState {
    limits: AgentThresholds,
    /// The first whole second (since the monitor started) the agent was watched for all of.
    start_sec: u64,
    /// Seconds of buckets to keep behind the current one; 0 when no kind needs them.
    keep_secs: u64,
    /// Seconds with calls, oldest first.
    buckets: VecDeque<Bucket>,
    /// (second, duration) of the most recent calls, oldest first.
    latencies: VecDeque<(u64, Duration)>,
    /// The last sampled queue.
    queue: Option<QueueDepth>,
    /// Since when samples have found the queue above its threshold.
    over_since: Option<Instant>,
    /// Has calls in the batch being handled.
    touched: bool,
}

impl AgentState {
    fn new(limits: AgentThresholds, start_sec: u64) -> Self {
        let keep_secs = [
            limits.error_rate.as_ref().map(|t| window_secs(t.window)),
            limits.throughput.as_ref().map(|t| window_secs(t.window)),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        Self {
            limits,
            start_sec,
            keep_secs,
            buckets: VecDeque::new(),
            latencies: VecDeque::new(),
            queue: None,
            over_since: None,
            touched: false,
        }
    }

    fn record(&mut self, sec: u64, failed: bool, elapsed: Duration) {
        if self.keep_secs > 0 {
            match self.buckets.back_mut() {
                Some(b) if b.sec == sec => {
                    b.calls += 1;
                    b.failed += u64::from(failed);
                }
                _ => self.buckets.push_back(Bucket {
                    sec,
                    calls: 1,
                    failed: u64::from(failed),
                }),
            }
        }
        if self.limits.latency_p95.is_some() {
            if self.latencies.len() >= LATENCY_SAMPLES {
                self.latencies.pop_front();
            }
            self.latencies.push_back((sec, elapsed));
        }
        self.prune(sec);
    }

    /// Drops what no window reaches any more.
    fn prune(&mut self, now_sec: u64) {
        let oldest = now_sec.saturating_sub(self.keep_secs);
        while self.buckets.front().is_some_and(|b| b.sec < oldest) {
            self.buckets.pop_front();
        }
        if let Some(t) = &self.limits.latency_p95 {
            let oldest = (now_sec + 1).saturating_sub(window_secs(t.window));
            while self.latencies.front().is_some_and(|(s, _)| *s < oldest) {
                self.latencies.pop_front();
            }
        }
    }

    /// Calls and failures in the seconds `from..to`.
    fn count(&self, from: u64, to: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .rev()
            .skip_while(|b| b.sec >= to)
            .take_while(|b| b.sec >= from)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failed))
    }

    fn error_rate(&self, now_sec: u64) -> Measure {
        let Some(t) = &self.limits.error_rate else {
            return Measure::hold();
        };
        let w = window_secs(t.window);
        let (calls, failed) = self.count((now_sec + 1).saturating_sub(w), now_sec + 1);
        let value = if calls == 0 {
            0.0
        } else {
            failed as f64 / calls as f64
        };
        let level = if calls == 0 || value <= t.max_rate {
            Level::Clear
        } else if calls >= t.min_calls {
            Level::Alarm
        } else {
            Level::Hold
        };
        Measure {
            level,
            value,
            threshold: t.max_rate,
            count: calls,
            part: failed,
            span: Duration::from_secs(w),
        }
    }

    fn latency(&self, now_sec: u64) -> Measure {
        let Some(t) = &self.limits.latency_p95 else {
            return Measure::hold();
        };
        let w = window_secs(t.window);
        let from = (now_sec + 1).saturating_sub(w);
        let mut durations: Vec<Duration> = self
            .latencies
            .iter()
            .filter(|(s, _)| *s >= from)
            .map(|(_, d)| *d)
            .collect();
        let n = durations.len();
        let threshold = ms(t.max_p95);
        let p95 = if n == 0 {
            Duration::ZERO
        } else {
            // Nearest rank: the smallest duration at or above 95 % of the calls.
            let rank = (n * 95).div_ceil(100).max(1) - 1;
            *durations.select_nth_unstable(rank).1
        };
        let level = if n == 0 || p95 <= t.max_p95 {
            Level::Clear
        } else if n as u64 >= t.min_calls {
            Level::Alarm
        } else {
            Level::Hold
        };
        Measure {
            level,
            value: ms(p95),
            threshold,
            count: n as u64,
            part: 0,
            span: Duration::from_secs(w),
        }
    }

    fn throughput(&self, now_sec: u64) -> Measure {
        let Some(t) = &self.limits.throughput else {
            return Measure::hold();
        };
        let w = window_secs(t.window);
        // Not before one whole window has been watched.
        if now_sec < self.start_sec + w {
            return Measure::hold();
        }
        let (calls, _) = self.count(now_sec - w, now_sec);
        let value = calls as f64 / w as f64;
        Measure {
            level: if value < t.min_per_sec {
                Level::Alarm
            } else {
                Level::Clear
            },
            value,
            threshold: t.min_per_sec,
            count: calls,
            part: 0,
            span: Duration::from_secs(w),
        }
    }

    fn queue_depth(&mut self, now: Instant) -> Measure {
        let (Some(t), Some(q)) = (&self.limits.queue_depth, self.queue) else {
            return Measure::hold();
        };
        let mut m = Measure {
            level: Level::Clear,
            value: q.len as f64,
            threshold: t.max_len as f64,
            count: q.len as u64,
            part: q.capacity as u64,
            span: Duration::ZERO,
        };
        if q.len > t.max_len {
            let since = *self.over_since.get_or_insert(now);
            m.span = now.duration_since(since);
            m.level = if m.span >= t.for_at_least {
                Level::Alarm
            } else {
                Level::Hold
            };
        } else {
            self.over_since = None;
        }
        m
    }
}

enum Flow {
    Continue,
    Stop,
}

/// The monitor's task.
struct Task {
    control: Control,
    handle: HubHandle,
    config: AlertConfig,
    epoch: Instant,
    agents: BTreeMap<AgentId, AgentState>,
    active: BTreeMap<(AgentId, Kind), ActiveAlert>,
    shared: Arc<Shared>,
    outbox: VecDeque<Event>,
    touched: Vec<AgentId>,
}

impl Task {
    async fn run(mut self, mut sub: TelemetrySubscriber, stop: CancellationToken) {
        let every = self.config.sample_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tracing::debug!(?every, "alert monitor started");
        loop {
            let retry = !self.outbox.is_empty();
            // The tick comes first so that a steady stream of telemetry cannot starve it.
            let flow = tokio::select! {
                biased;
                () = stop.cancelled() => Flow::Stop,
                _ = tick.tick() => self.on_tick(Instant::now()),
                r = sub.recv_batch() => match r {
                    Ok(batch) => self.on_batch(&batch, Instant::now()),
                    Err(TelemetryRecvError::Lagged { missed }) => {
                        self.shared.missed.fetch_add(missed, Ordering::Relaxed);
                        tracing::warn!(
                            missed,
                            "alert monitor fell behind telemetry; the calls in the missed steps \
                             are not in its windows"
                        );
                        Flow::Continue
                    }
                    Err(_) => Flow::Stop,
                },
                () = tokio::time::sleep(RETRY_DELAY), if retry => Flow::Continue,
            };
            if let Flow::Stop = flow {
                break;
            }
            self.flush();
        }
        tracing::debug!("alert monitor stopped");
    }

    fn sec(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs()
    }

    /// The agent's state, made when the monitor first sees it.
    fn ensure(&mut self, id: &AgentId, now: Instant) -> &mut AgentState {
        let (config, epoch) = (&self.config, self.epoch);
        self.agents.entry(id.clone()).or_insert_with(|| {
            let since = now.duration_since(epoch);
            // Watched from the first whole second after it was first seen.
            let start_sec = since.as_secs() + u64::from(since.subsec_nanos() > 0);
            AgentState::new(config.thresholds_for(id).clone(), start_sec)
        })
    }

    fn on_batch(&mut self, batch: &TelemetryBatch, now: Instant) -> Flow {
        let sec = self.sec(now);
        for ev in &batch.events {
            match &ev.kind {
                TelemetryKind::ActionSucceeded { action, elapsed } => {
                    self.call(&action.agent, sec, false, *elapsed, now);
                }
                // A failed attempt that will be retried is a failed call all the same.
                TelemetryKind::ActionFailed {
                    action, elapsed, ..
                }
                | TelemetryKind::ActionRetrying {
                    action, elapsed, ..
                } => {
                    self.call(&action.agent, sec, true, *elapsed, now);
                }
                TelemetryKind::AgentRegistered { agent } => {
                    self.ensure(agent, now);
                }
                TelemetryKind::AgentUnregistered { agent } => {
                    self.forget(agent);
                }
                TelemetryKind::ShutdownStarted { .. } | TelemetryKind::Stopped { .. } => {
                    return Flow::Stop;
                }
                _ => {}
            }
        }
        let mut touched = std::mem::take(&mut self.touched);
        for id in &touched {
            let measures = match self.agents.get_mut(id) {
                Some(state) => {
                    state.touched = false;
                    [
                        (Kind::ErrorRate, state.error_rate(sec)),
                        (Kind::Latency, state.latency(sec)),
                        (Kind::Throughput, state.throughput(sec)),
                    ]
                }
                None => continue,
            };
            for (kind, m) in measures {
                self.apply(id, kind, m, now);
            }
        }
        touched.clear();
        self.touched = touched;
        Flow::Continue
    }

    fn call(&mut self, agent: &AgentId, sec: u64, failed: bool, elapsed: Duration, now: Instant) {
        let state = self.ensure(agent, now);
        state.record(sec, failed, elapsed);
        if !state.touched {
            state.touched = true;
            self.touched.push(agent.clone());
        }
    }

    fn on_tick(&mut self, now: Instant) -> Flow {
        let health = self.control.health();
        if !health.accepting {
            return Flow::Stop;
        }
        let sec = self.sec(now);
        for agent in &health.agents {
            self.ensure(&agent.id, now).queue = Some(agent.queue);
        }
        let present: HashSet<&AgentId> = health.agents.iter().map(|a| &a.id).collect();
        let gone: Vec<AgentId> = self
            .agents
            .keys()
            .filter(|id| !present.contains(id))
            .cloned()
            .collect();
        for id in &gone {
            self.forget(id);
        }
        let ids: Vec<AgentId> = self.agents.keys().cloned().collect();
        for id in ids {
            let measures = match self.agents.get_mut(&id) {
                Some(state) => {
                    state.prune(sec);
                    [
                        (Kind::ErrorRate, state.error_rate(sec)),
                        (Kind::Latency, state.latency(sec)),
                        (Kind::Throughput, state.throughput(sec)),
                        (Kind::Queue, state.queue_depth(now)),
                    ]
                }
                None => continue,
            };
            for (kind, m) in measures {
                self.apply(&id, kind, m, now);
            }
        }
        Flow::Continue
    }

    /// Forgets an agent that is no longer registered, resolving its active alerts.
    fn forget(&mut self, id: &AgentId) {
        if self.agents.remove(id).is_none() {
            return;
        }
        let kinds: Vec<Kind> = self
            .active
            .keys()
            .filter(|(a, _)| a == id)
            .map(|(_, k)| *k)
            .collect();
        for kind in kinds {
            if let Some(alert) = self.active.remove(&(id.clone(), kind)) {
                let detail = format!("agent `{id}` is no longer registered");
                self.emit(kind, id, false, detail, alert.value, alert.threshold);
            }
        }
        self.publish_active();
    }

    fn apply(&mut self, id: &AgentId, kind: Kind, m: Measure, now: Instant) {
        let key = (id.clone(), kind);
        match m.level {
            Level::Alarm if !self.active.contains_key(&key) => {
                let detail = m.describe(kind, true);
                self.active.insert(
                    key,
                    ActiveAlert {
                        alert: kind.name(),
                        agent: id.clone(),
                        since: now,
                        value: m.value,
                        threshold: m.threshold,
                        detail: detail.clone(),
                    },
                );
                self.emit(kind, id, true, detail, m.value, m.threshold);
                self.publish_active();
            }
            Level::Clear if self.active.contains_key(&key) => {
                self.active.remove(&key);
                let detail = m.describe(kind, false);
                self.emit(kind, id, false, detail, m.value, m.threshold);
                self.publish_active();
            }
            _ => {}
        }
    }

    fn publish_active(&self) {
        *lock(&self.shared.active) = self.active.values().cloned().collect();
    }

    fn emit(
        &mut self,
        kind: Kind,
        agent: &AgentId,
        raised: bool,
        detail: String,
        value: f64,
        threshold: f64,
    ) {
        let alert = kind.name();
        if raised {
            tracing::warn!(alert, %agent, value, threshold, %detail, "alert raised");
        } else {
            tracing::info!(alert, %agent, value, threshold, %detail, "alert resolved");
        }
        self.control.record(TelemetryKind::Alert {
            alert: alert.to_owned(),
            agent: Some(agent.clone()),
            raised,
            detail: detail.clone(),
        });
        let payload = json!({
            "alert": alert,
            "agent": agent.as_str(),
            "raised": raised,
            "detail": detail,
            "value": value,
            "threshold": threshold,
        });
        let principal = Principal::user(ALERT_USER).in_group(ALERT_GROUP);
        if self.outbox.len() >= OUTBOX_CAPACITY {
            self.outbox.pop_front();
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("alert outbox full; the oldest alert event was dropped");
        }
        self.outbox
            .push_back(Event::new(ALERT_EVENT_TYPE, principal, payload));
    }

    /// Hands waiting alert events to the hub, in order, until its intake is full.
    fn flush(&mut self) {
        while let Some(event) = self.outbox.pop_front() {
            match self.handle.try_publish(event) {
                Ok(_) => {}
                Err(TryPublishError::Full { event }) => {
                    self.outbox.push_front(event);
                    return;
                }
                Err(e) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "alert event not published");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ms_(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn every_kind(window: u64) -> AgentThresholds {
        AgentThresholds::none()
            .with_error_rate(
                ErrorRateThreshold::new(0.05)
                    .window(Duration::from_secs(window))
                    .min_calls(20),
            )
            .with_latency_p95(
                LatencyThreshold::new(ms_(100))
                    .window(Duration::from_secs(window))
                    .min_calls(20),
            )
            .with_throughput(ThroughputThreshold::new(2.0).window(Duration::from_secs(window)))
    }

    #[test]
    fn windows_are_whole_seconds() {
        assert_eq!(window_secs(Duration::ZERO), 1);
        assert_eq!(window_secs(ms_(1)), 1);
        assert_eq!(window_secs(ms_(1000)), 1);
        assert_eq!(window_secs(ms_(1001)), 2);
        assert_eq!(window_secs(Duration::from_secs(300)), 300);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let mut s = AgentState::new(every_kind(60), 0);
        // 1..=100 ms: the 95th value is 95 ms.
        for i in 1..=100 {
            s.record(0, false, ms_(i));
        }
        let m = s.latency(0);
        assert_eq!(m.value, 95.0);
        assert_eq!(m.count, 100);
        assert_eq!(m.level, Level::Clear);
        // Six slow calls out of 106 put the p95 above the threshold.
        for _ in 0..6 {
            s.record(0, false, ms_(500));
        }
        let m = s.latency(0);
        assert_eq!((m.level, m.value), (Level::Alarm, 500.0));
    }

    #[test]
    fn too_few_calls_neither_raise_nor_resolve_and_none_resolve() {
        let mut s = AgentState::new(every_kind(10), 0);
        for i in 0..10 {
            s.record(0, i % 2 == 0, ms_(1));
        }
        assert_eq!(s.error_rate(0).level, Level::Hold);
        for i in 0..10 {
            s.record(1, i % 2 == 0, ms_(1));
        }
        let m = s.error_rate(1);
        assert_eq!((m.level, m.count, m.part), (Level::Alarm, 20, 10));
        // Ten seconds later the window is empty: resolved.
        let m = s.error_rate(11);
        assert_eq!((m.level, m.count), (Level::Clear, 0));
        assert_eq!(
            m.describe(Kind::ErrorRate, false),
            "no calls in the last 10 s"
        );
    }

    #[test]
    fn throughput_waits_for_a_whole_window_and_counts_whole_seconds() {
        let mut s = AgentState::new(every_kind(5), 3);
        assert_eq!(s.throughput(7).level, Level::Hold);
        assert_eq!(s.throughput(8).level, Level::Alarm);
        // Two calls a second in seconds 8..13; the current second (13) does not count.
        for sec in 8..=13 {
            s.record(sec, false, ms_(1));
            s.record(sec, false, ms_(1));
        }
        let m = s.throughput(13);
        assert_eq!((m.level, m.count, m.value), (Level::Clear, 10, 2.0));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut s = AgentState::new(every_kind(60), 0);
        for sec in 0..10_000 {
            for _ in 0..3 {
                s.record(sec, false, ms_(5));
            }
        }
        assert!(s.buckets.len() <= 61, "{}", s.buckets.len());
        assert!(s.latencies.len() <= LATENCY_SAMPLES);
        // A kind that is off keeps nothing.
        let mut off = AgentState::new(AgentThresholds::none(), 0);
        for sec in 0..100 {
            off.record(sec, true, ms_(5));
        }
        assert!(off.buckets.is_empty() && off.latencies.is_empty());
    }

    #[test]
    fn the_queue_must_stay_above_for_the_whole_time() {
        let t = AgentThresholds::none().with_queue_depth(QueueDepthThreshold::new(2, ms_(3000)));
        let mut s = AgentState::new(t, 0);
        let start = Instant::now();
        let q = |len| Some(QueueDepth { len, capacity: 10 });
        s.queue = q(5);
        assert_eq!(s.queue_depth(start).level, Level::Hold);
        assert_eq!(s.queue_depth(start + ms_(2000)).level, Level::Hold);
        // Dipping to the threshold starts the clock again.
        s.queue = q(2);
        assert_eq!(s.queue_depth(start + ms_(2500)).level, Level::Clear);
        s.queue = q(5);
        assert_eq!(s.queue_depth(start + ms_(3000)).level, Level::Hold);
        let m = s.queue_depth(start + ms_(6000));
        assert_eq!((m.level, m.value, m.threshold), (Level::Alarm, 5.0, 2.0));
        assert_eq!(
            m.describe(Kind::Queue, true),
            "queue at 5 of 10 has stayed above 2 for 3 s"
        );
    }
}
