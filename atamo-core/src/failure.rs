//! What the hub does when agents fail: retry policies, circuit breakers, agent status and dead
//! letters.
//!
//! - A [`RetryPolicy`] says how often and how soon a failed action is tried again. It is set per
//!   agent ([`AgentSpec::retry`](crate::AgentSpec::retry)), and may be overridden per action type
//!   ([`ActionTypeDef::retry`](crate::ActionTypeDef::retry)) or per rule
//!   ([`PlannedAction::retry`](crate::rules::PlannedAction::retry)); the most specific wins.
//!   The error decides whether trying again can help: `Permanent` and `Cancelled` never are.
//! - When an action fails for good (a permanent error, or retries exhausted), it goes to the
//!   dead-letter store (list, inspect, redrive through [`Control`](crate::Control)), a
//!   `retries_exhausted` alert is recorded, and an `atamo.action.exhausted` event is published
//!   for the same user and correlation id, so rules can send it to whoever should know.
//! - A [`BreakerPolicy`] opens an agent's circuit when too many calls fail; while open no call
//!   reaches it, and after a cool-down one probe call decides whether it closes again.
//! - Every agent has an [`AgentStatus`], driven by its breaker and settable by hand.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::AgentError;
use crate::ids::AgentId;
use crate::message::{Action, Timestamp};

/// The event type published when an action fails for good.
pub const EXHAUSTED_EVENT: &str = "atamo.action.exhausted";
/// The event type published when an agent's status changes.
pub const STATUS_CHANGED_EVENT: &str = "atamo.agent.status_changed";
/// The alert recorded when an action fails for good.
pub const RETRIES_EXHAUSTED_ALERT: &str = "retries_exhausted";

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

/// How an agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Not called yet.
    Unknown,
    /// Working.
    Online,
    /// Working badly, or being probed after an outage.
    Degraded,
    /// Not taking calls: its circuit is open, or an operator took it offline.
    Offline,
}

/// An agent's status, with why and since when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    /// The agent.
    pub agent: AgentId,
    /// Its state.
    pub state: AgentState,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
    /// Whether an operator set it; a manual status wins over automatic changes until cleared.
    pub manual: bool,
    /// Who to tell about it, from the agent's registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The agent's version, from its registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// An action that failed for good, kept so that it can be inspected and sent again.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The action (its id is the dead letter's id).
    #[serde(rename = "action")]
    pub action: Action,
    /// The last error.
    pub error: AgentError,
    /// Attempts made.
    pub attempts: u32,
    /// When it was given up.
    pub at: Timestamp,
}

/// The dead letters of one hub: the most recent `capacity`, oldest dropped first.
pub(crate) struct DeadLetters {
    entries: std::sync::Mutex<std::collections::VecDeque<DeadLetter>>,
    capacity: usize,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Default::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<DeadLetter>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push(&self, action: Action, error: AgentError, attempts: u32) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(DeadLetter {
            action,
            error,
            attempts,
            at: Timestamp::now(),
        });
    }

    pub(crate) fn list(&self) -> Vec<DeadLetter> {
        self.lock().iter().cloned().collect()
    }

    pub(crate) fn get(&self, id: crate::ids::ActionId) -> Option<DeadLetter> {
        self.lock().iter().find(|d| d.action.id() == id).cloned()
    }

    pub(crate) fn take(&self, id: crate::ids::ActionId) -> Option<DeadLetter> {
        let mut entries = self.lock();
        let at = entries.iter().position(|d| d.action.id() == id)?;
        entries.remove(at)
    }

    pub(crate) fn put_back(&self, letter: DeadLetter) {
        self.lock().push_back(letter);
    }
}

/// One agent's status: set automatically by its worker, and by hand by an operator, whose
/// setting wins until cleared.
pub(crate) struct StatusCell {
    inner: std::sync::Mutex<StatusInner>,
    /// The manual state, readable without the lock on every call: 0 for none, else
    /// `state_code`.
    manual_code: std::sync::atomic::AtomicU8,
    /// Woken when an operator changes the status, so the worker re-checks its gate.
    pub(crate) changed: tokio::sync::Notify,
}

struct StatusInner {
    auto: StatusEntry,
    manual: Option<StatusEntry>,
}

#[derive(Clone)]
struct StatusEntry {
    state: AgentState,
    reason: String,
    since: Timestamp,
}

impl Default for StatusCell {
    fn default() -> Self {
        Self {
            inner: std::sync::Mutex::new(StatusInner {
                auto: StatusEntry {
                    state: AgentState::Unknown,
                    reason: "not called yet".to_owned(),
                    since: Timestamp::now(),
                },
                manual: None,
            }),
            manual_code: std::sync::atomic::AtomicU8::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl StatusCell {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state an operator set, if any.
    pub(crate) fn manual(&self) -> Option<AgentState> {
        match self.manual_code.load(std::sync::atomic::Ordering::Acquire) {
            1 => Some(AgentState::Unknown),
            2 => Some(AgentState::Online),
            3 => Some(AgentState::Degraded),
            4 => Some(AgentState::Offline),
            _ => None,
        }
    }

    /// The status as everyone sees it.
    pub(crate) fn visible(&self, info: &crate::agent::AgentInfo) -> AgentStatus {
        let inner = self.lock();
        Self::status_of(&inner, info)
    }

    fn status_of(inner: &StatusInner, info: &crate::agent::AgentInfo) -> AgentStatus {
        let (entry, manual) = match &inner.manual {
            Some(m) => (m, true),
            None => (&inner.auto, false),
        };
        AgentStatus {
            agent: info.id.clone(),
            state: entry.state,
            reason: entry.reason.clone(),
            since: entry.since,
            manual,
            owner: info.owner.clone(),
            version: info.version.clone(),
        }
    }

    /// Sets the automatic state; returns the visible change, if there is one.
    pub(crate) fn set_auto(
        &self,
        info: &crate::agent::AgentInfo,
        state: AgentState,
        reason: impl Into<String>,
    ) -> Option<(AgentState, AgentStatus)> {
        let mut inner = self.lock();
        if inner.auto.state == state {
            return None;
        }
        let from = Self::status_of(&inner, info).state;
        inner.auto = StatusEntry {
            state,
            reason: reason.into(),
            since: Timestamp::now(),
        };
        let now = Self::status_of(&inner, info);
        (inner.manual.is_none()).then_some((from, now))
    }

    /// Sets or clears the operator's state; returns the visible change, if there is one.
    pub(crate) fn set_manual(
        &self,
        info: &crate::agent::AgentInfo,
        manual: Option<(AgentState, String)>,
    ) -> Option<(AgentState, AgentStatus)> {
        let mut inner = self.lock();
        let before = Self::status_of(&inner, info);
        inner.manual = manual.map(|(state, reason)| StatusEntry {
            state,
            reason,
            since: Timestamp::now(),
        });
        let code = match inner.manual.as_ref().map(|m| m.state) {
            None => 0,
            Some(AgentState::Unknown) => 1,
            Some(AgentState::Online) => 2,
            Some(AgentState::Degraded) => 3,
            Some(AgentState::Offline) => 4,
        };
        self.manual_code
            .store(code, std::sync::atomic::Ordering::Release);
        let now = Self::status_of(&inner, info);
        drop(inner);
        self.changed.notify_one();
        (before.state != now.state || before.manual != now.manual).then_some((before.state, now))
    }
}

/// Why a dead letter could not be sent again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedriveError {
    /// No dead letter has that id.
    #[error("no dead letter for action `{0}`")]
    NotFound(crate::ids::ActionId),
    /// Its agent is no longer registered; the dead letter is kept.
    #[error("agent `{0}` is not registered; the dead letter is kept")]
    AgentGone(AgentId),
    /// The hub is stopping; the dead letter is kept.
    #[error("the hub is stopping; the dead letter is kept")]
    ShuttingDown,
    /// The store of a stateful hub failed; the dead letter is kept.
    #[error("the dead letter could not be redriven: {0}")]
    Store(#[source] crate::store::StoreError),
}

mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
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
