//! Policies the hub applies to calls: how failed actions are tried again ([`RetryPolicy`]),
//! when an agent's circuit opens ([`BreakerPolicy`]) and how its health is probed
//! ([`HealthCheck`]). Plain values, set on agents, action types and rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::serde_ms::{ms, opt_ms};

/// How often and how soon to try a failed action again: exponential backoff with jitter, a
/// maximum number of attempts, and a maximum time since the first attempt.
///
/// Retrying re-sends the same action (same id, `attempt` one higher), so an agent with side
/// effects should treat the action id as an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    /// The pause before the first retry.
    #[serde(rename = "initial_backoff_ms", with = "ms")]
    pub initial_backoff: Duration,
    /// The longest pause between two attempts.
    #[serde(rename = "max_backoff_ms", with = "ms")]
    pub max_backoff: Duration,
    /// How much longer each pause is than the one before.
    pub multiplier: f64,
    /// How much each pause varies at random, as a fraction (0.2: up to 20% shorter or
    /// longer), so that many failed actions do not all retry at the same moment.
    pub jitter: f64,
    /// No retry starts later than this after the first attempt started.
    #[serde(
        rename = "max_elapsed_ms",
        with = "opt_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_elapsed: Option<Duration>,
}

impl Default for RetryPolicy {
    /// Five attempts, 100 ms doubling up to 30 s, 20% jitter, no time limit.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// Never try again.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The default policy with `n` attempts in all.
    pub fn attempts(n: u32) -> Self {
        Self {
            max_attempts: n.max(1),
            ..Self::default()
        }
    }

    /// Sets the first pause and the longest one.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the jitter fraction (0 for none).
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// Sets the time after the first attempt past which no retry starts.
    #[must_use]
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(limit);
        self
    }

    /// The pause before attempt `next` (2 for the first retry), jitter included.
    pub fn delay_before(&self, next: u32) -> Duration {
        let exponent = next.saturating_sub(2).min(64) as i32;
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let base = base.min(self.max_backoff.as_secs_f64());
        let spread = if self.jitter > 0.0 {
            1.0 + self.jitter * (2.0 * fastrand::f64() - 1.0)
        } else {
            1.0
        };
        Duration::from_secs_f64((base * spread).max(0.0))
    }
}

/// When an agent's circuit opens, and how it closes again.
///
/// The breaker watches the outcomes of the agent's last `window` calls (health probes
/// included). It opens when at least `min_calls` of them are known and the share that failed
/// reaches `failure_ratio`, or after `consecutive_failures` failures in a row. While open, no
/// call reaches the agent: its actions wait (or go to the fallback agent a rule names). After
/// `cool_down`, one probe call is let through (half-open): success closes the circuit, failure
/// opens it again. Only retryable failures count: a permanent error says the action was bad,
/// not the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    /// Calls remembered.
    pub window: usize,
    /// Calls needed in the window before the ratio counts.
    pub min_calls: usize,
    /// Share of failed calls in the window that opens the circuit.
    pub failure_ratio: f64,
    /// Failures in a row that open the circuit whatever the window says.
    pub consecutive_failures: u32,
    /// How long the circuit stays open before a probe.
    #[serde(rename = "cool_down_ms", with = "ms")]
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    /// A window of 20 calls, 10 needed, 50% failures or 5 in a row open it, 30 s cool-down.
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            consecutive_failures: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// When an agent's health probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Between two probes.
    #[serde(
        rename = "interval_ms",
        serialize_with = "crate::serde_ms::ser_duration_ms"
    )]
    pub interval: Duration,
    /// The longest a probe may take before it counts as failed.
    #[serde(
        rename = "timeout_ms",
        serialize_with = "crate::serde_ms::ser_duration_ms"
    )]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::attempts(10)
            .backoff(Duration::from_millis(100), Duration::from_secs(1))
            .jitter(0.0);
        let delays: Vec<u128> = (2..=7).map(|n| p.delay_before(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        let j = RetryPolicy::default();
        for _ in 0..100 {
            let d = j.delay_before(2).as_millis();
            assert!((80..=120).contains(&d), "{d}");
        }
    }
}
