//! Policies the hub applies to calls: how failed actions are tried again ([`RetryPolicy`]),
//! when an agent's circuit opens ([`BreakerPolicy`]) and how its health is probed
//! ([`HealthCheck`]). Plain values of bounded parts, set on agents, action types and rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bounded::{
    Attempts, Backoff, CoolDown, Interval, Jitter, Multiplier, OutOfRange, RetryWindow, Timeout,
};

/// How often and how soon to try a failed action again: exponential backoff with jitter, a
/// maximum number of attempts, and a maximum time since the first attempt. A `Retry-After`
/// the agent reports ([`AgentError::Retry`](crate::AgentError::Retry)) is honoured: the pause
/// is never shorter than it asks.
///
/// The default ([`RetryPolicy::default`]) rides out a short outage of the agent's other side:
/// 8 attempts, pauses from 500 ms doubling up to 30 s with 20% jitter (about a minute of
/// retries in all), none started later than 5 minutes after the first attempt.
/// [`RetryPolicy::none`] makes one attempt only.
///
/// Retrying re-sends the same action (same id, `attempt` one higher): delivery is at least
/// once, so an agent with side effects should treat the action id as an idempotency key (the
/// HTTP agent sends it as `Idempotency-Key`).
///
/// Every part is bounded (see [`crate::bounded`]), so [`delay_before`](Self::delay_before)
/// cannot overflow whatever the policy holds.
///
/// ```
/// use std::time::Duration;
/// use atamo_core::failure::RetryPolicy;
///
/// let p = RetryPolicy::attempts(3).backoff(Duration::from_millis(100), Duration::from_secs(1)).jitter(0.0);
/// assert_eq!(p.delay_before(2), Duration::from_millis(100));
/// assert_eq!(p.delay_before(3), Duration::from_millis(200));
/// let refused = serde_json::from_str::<RetryPolicy>(r#"{"jitter": 1e300}"#).unwrap_err();
/// assert!(refused.to_string().contains("must be from 0.0 to 1.0"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RetryRepr", into = "RetryRepr")]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: Attempts,
    /// The pause before the first retry.
    pub initial_backoff: Backoff,
    /// The longest pause between two attempts (before jitter); not shorter than
    /// `initial_backoff`.
    pub max_backoff: Backoff,
    /// How much longer each pause is than the one before.
    pub multiplier: Multiplier,
    /// How much each pause varies at random, as a fraction (0.2: up to 20% shorter or
    /// longer), so that many failed actions do not all retry at the same moment.
    pub jitter: Jitter,
    /// No retry starts later than this after the first attempt started (None: no limit).
    pub max_elapsed: Option<RetryWindow>,
}

/// The JSON shape of a [`RetryPolicy`]: durations in whole milliseconds, every key optional
/// (missing keys take the default's values; `"max_elapsed_ms": null` sets no time limit).
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = RetryPolicy))]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryRepr {
    /// Attempts in all, the first included; 1 means no retry (default 8).
    max_attempts: Attempts,
    /// The pause before the first retry (default 500).
    initial_backoff_ms: Backoff,
    /// The longest pause; not shorter than `initial_backoff_ms` (default 30000).
    max_backoff_ms: Backoff,
    /// How much longer each pause is than the one before (default 2.0).
    multiplier: Multiplier,
    /// How much each pause varies at random, as a fraction (default 0.2).
    jitter: Jitter,
    /// No retry starts later than this after the first attempt (default 300000; null: no
    /// limit).
    max_elapsed_ms: Option<RetryWindow>,
}

impl Default for RetryRepr {
    fn default() -> Self {
        RetryPolicy::default().into()
    }
}

impl From<RetryPolicy> for RetryRepr {
    fn from(p: RetryPolicy) -> Self {
        Self {
            max_attempts: p.max_attempts,
            initial_backoff_ms: p.initial_backoff,
            max_backoff_ms: p.max_backoff,
            multiplier: p.multiplier,
            jitter: p.jitter,
            max_elapsed_ms: p.max_elapsed,
        }
    }
}

impl TryFrom<RetryRepr> for RetryPolicy {
    type Error = OutOfRange;

    fn try_from(r: RetryRepr) -> Result<Self, OutOfRange> {
        let policy = Self {
            max_attempts: r.max_attempts,
            initial_backoff: r.initial_backoff_ms,
            max_backoff: r.max_backoff_ms,
            multiplier: r.multiplier,
            jitter: r.jitter,
            max_elapsed: r.max_elapsed_ms,
        };
        policy.check().map(|()| policy)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RetryPolicy {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RetryRepr as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RetryPolicy {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <RetryRepr as utoipa::ToSchema>::schemas(schemas);
    }
}

impl Default for RetryPolicy {
    /// Eight attempts, 500 ms doubling up to 30 s, 20% jitter, none after 5 minutes.
    fn default() -> Self {
        Self {
            max_attempts: Attempts::default(),
            initial_backoff: Backoff::saturating(Duration::from_millis(500)),
            max_backoff: Backoff::saturating(Duration::from_secs(30)),
            multiplier: Multiplier::default(),
            jitter: Jitter::default(),
            max_elapsed: Some(RetryWindow::default()),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: Attempts::MIN,
            ..Self::default()
        }
    }

    /// The default policy with `n` attempts in all (brought into 1..=100).
    pub fn attempts(n: u32) -> Self {
        Self {
            max_attempts: Attempts::saturating(n),
            ..Self::default()
        }
    }

    /// Sets the first pause and the longest one (each brought into its range; the longest is
    /// at least the first).
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = Backoff::saturating(initial);
        self.max_backoff = Backoff::saturating(max).max(self.initial_backoff);
        self
    }

    /// Sets how much longer each pause is than the one before (brought into 1.0..=10.0).
    #[must_use]
    pub fn multiplier(mut self, factor: f64) -> Self {
        self.multiplier = Multiplier::saturating(factor);
        self
    }

    /// Sets the jitter fraction (0 for none; brought into 0.0..=1.0).
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Jitter::saturating(fraction);
        self
    }

    /// Sets the time after the first attempt past which no retry starts (brought into its
    /// range).
    #[must_use]
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = Some(RetryWindow::saturating(limit));
        self
    }

    /// Lets retries start however long after the first attempt.
    #[must_use]
    pub fn no_time_limit(mut self) -> Self {
        self.max_elapsed = None;
        self
    }

    /// What a policy must hold beyond the range of each part: `max_backoff` not shorter than
    /// `initial_backoff`.
    pub fn check(&self) -> Result<(), OutOfRange> {
        if self.max_backoff < self.initial_backoff {
            return Err(OutOfRange::new(format!(
                "max_backoff must not be shorter than initial_backoff ({})",
                self.initial_backoff
            )));
        }
        Ok(())
    }

    /// The pause before attempt `next` (2 for the first retry), jitter included. Never more
    /// than [`Backoff::MAX`], whatever the policy and `next`.
    pub fn delay_before(&self, next: u32) -> Duration {
        let exponent = next.saturating_sub(2).min(64) as i32;
        let base = self.initial_backoff.get().as_secs_f64() * self.multiplier.get().powi(exponent);
        let base = base.min(self.max_backoff.get().as_secs_f64());
        let jitter = self.jitter.get();
        let spread = if jitter > 0.0 {
            1.0 + jitter * (2.0 * fastrand::f64() - 1.0)
        } else {
            1.0
        };
        let secs = base * spread;
        let max = Backoff::MAX.get();
        if secs.is_nan() || secs <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
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
    #[serde(rename = "cool_down_ms")]
    pub cool_down: CoolDown,
}

impl Default for BreakerPolicy {
    /// A window of 20 calls, 10 needed, 50% failures or 5 in a row open it, 30 s cool-down.
    fn default() -> Self {
        Self {
            window: 20,
            min_calls: 10,
            failure_ratio: 0.5,
            consecutive_failures: 5,
            cool_down: CoolDown::default(),
        }
    }
}

/// When an agent's health probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// Between two probes.
    #[serde(rename = "interval_ms")]
    pub interval: Interval,
    /// The longest a probe may take before it counts as failed.
    #[serde(rename = "timeout_ms")]
    pub timeout: Timeout,
}

#[cfg(test)]
mod tests;
