//! What the monitor watches for: thresholds per kind, per agent, and how often health is
//! sampled.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::ids::AgentId;

pub(super) const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
pub(super) const DEFAULT_MIN_CALLS: u64 = 20;
pub(super) const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

pub(super) fn default_window() -> Duration {
    DEFAULT_WINDOW
}

pub(super) fn default_min_calls() -> u64 {
    DEFAULT_MIN_CALLS
}

pub(super) fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Raise [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) when more than `max_rate` of an agent's calls in the window failed.
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

/// Raise [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95) when the 95th percentile of an agent's call durations in the window
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

/// Raise [`AlertKind::ThroughputLow`](crate::telemetry::AlertKind::ThroughputLow) when an agent does fewer than `min_per_sec` calls per second over
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

/// Raise [`AlertKind::QueueDepth`](crate::telemetry::AlertKind::QueueDepth) when an agent's queue holds more than `max_len` actions in every
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
/// The default has [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) on (5 % over 5 minutes, at least 20 calls) and the others
/// off. In a configuration file every field is optional: a missing field keeps that default,
/// `null` turns the kind off, e.g.
/// `{"error_rate": {"max_rate": 0.1}, "queue_depth": {"max_len": 50, "for_ms": 10000}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentThresholds {
    /// [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate): on by default.
    pub error_rate: Option<ErrorRateThreshold>,
    /// [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95): off by default.
    pub latency_p95: Option<LatencyThreshold>,
    /// [`AlertKind::ThroughputLow`](crate::telemetry::AlertKind::ThroughputLow): off by default.
    pub throughput: Option<ThroughputThreshold>,
    /// [`AlertKind::QueueDepth`](crate::telemetry::AlertKind::QueueDepth): off by default.
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

    /// Sets the [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) threshold.
    #[must_use]
    pub fn with_error_rate(mut self, t: ErrorRateThreshold) -> Self {
        self.error_rate = Some(t);
        self
    }

    /// Turns [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) off.
    #[must_use]
    pub fn without_error_rate(mut self) -> Self {
        self.error_rate = None;
        self
    }

    /// Sets the [`AlertKind::LatencyP95`](crate::telemetry::AlertKind::LatencyP95) threshold.
    #[must_use]
    pub fn with_latency_p95(mut self, t: LatencyThreshold) -> Self {
        self.latency_p95 = Some(t);
        self
    }

    /// Sets the [`AlertKind::ThroughputLow`](crate::telemetry::AlertKind::ThroughputLow) threshold.
    #[must_use]
    pub fn with_throughput(mut self, t: ThroughputThreshold) -> Self {
        self.throughput = Some(t);
        self
    }

    /// Sets the [`AlertKind::QueueDepth`](crate::telemetry::AlertKind::QueueDepth) threshold.
    #[must_use]
    pub fn with_queue_depth(mut self, t: QueueDepthThreshold) -> Self {
        self.queue_depth = Some(t);
        self
    }
}

/// What an [`AlertMonitor`](super::AlertMonitor) watches for: thresholds for every agent, replaced for some, and
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
    /// The defaults: [`AlertKind::ErrorRate`](crate::telemetry::AlertKind::ErrorRate) for every agent, health sampled every second.
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
