//! What the monitor knows of each agent: its calls per second over the window, durations for
//! the percentile, queue samples, and each kind's state.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::hub::QueueDepth;
use crate::telemetry::AlertKind;

use super::config::AgentThresholds;
use super::names::LATENCY_SAMPLES;
use super::units::{fmt_duration, ms, short, window_secs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    ErrorRate,
    Latency,
    Throughput,
    Queue,
}

impl Kind {
    pub(super) fn alert(self) -> AlertKind {
        match self {
            Kind::ErrorRate => AlertKind::ErrorRate,
            Kind::Latency => AlertKind::LatencyP95,
            Kind::Throughput => AlertKind::ThroughputLow,
            Kind::Queue => AlertKind::QueueDepth,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// The condition holds: raise, if not raised.
    Alarm,
    /// The condition is over: resolve, if raised.
    Clear,
    /// Not enough to tell: leave as it is.
    Hold,
}

/// One evaluation of one kind for one agent. The explanation is only written on a change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Measure {
    pub(super) level: Level,
    pub(super) value: f64,
    pub(super) threshold: f64,
    /// Calls in the window; for the queue, its length.
    pub(super) count: u64,
    /// Failed calls in the window; for the queue, its capacity.
    pub(super) part: u64,
    /// The window; for the queue, how long it has been above the threshold.
    pub(super) span: Duration,
}

impl Measure {
    pub(super) fn hold() -> Self {
        Self {
            level: Level::Hold,
            value: 0.0,
            threshold: 0.0,
            count: 0,
            part: 0,
            span: Duration::ZERO,
        }
    }

    pub(super) fn describe(&self, kind: Kind, raised: bool) -> String {
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
pub(super) struct Bucket {
    pub(super) sec: u64,
    pub(super) calls: u64,
    pub(super) failed: u64,
}

/// What the monitor knows of one agent.
pub(super) struct AgentState {
    pub(super) limits: AgentThresholds,
    /// The first whole second (since the monitor started) the agent was watched for all of.
    pub(super) start_sec: u64,
    /// Seconds of buckets to keep behind the current one; 0 when no kind needs them.
    pub(super) keep_secs: u64,
    /// Seconds with calls, oldest first.
    pub(super) buckets: VecDeque<Bucket>,
    /// (second, duration) of the most recent calls, oldest first.
    pub(super) latencies: VecDeque<(u64, Duration)>,
    /// The last sampled queue.
    pub(super) queue: Option<QueueDepth>,
    /// Since when samples have found the queue above its threshold.
    pub(super) over_since: Option<Instant>,
    /// Has calls in the batch being handled.
    pub(super) touched: bool,
}

impl AgentState {
    pub(super) fn new(limits: AgentThresholds, start_sec: u64) -> Self {
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

    pub(super) fn record(&mut self, sec: u64, failed: bool, elapsed: Duration) {
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
    pub(super) fn prune(&mut self, now_sec: u64) {
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
    pub(super) fn count(&self, from: u64, to: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .rev()
            .skip_while(|b| b.sec >= to)
            .take_while(|b| b.sec >= from)
            .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failed))
    }

    pub(super) fn error_rate(&self, now_sec: u64) -> Measure {
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

    pub(super) fn latency(&self, now_sec: u64) -> Measure {
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

    pub(super) fn throughput(&self, now_sec: u64) -> Measure {
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

    pub(super) fn queue_depth(&mut self, now: Instant) -> Measure {
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
