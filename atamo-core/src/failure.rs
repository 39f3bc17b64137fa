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
//!   [`AlertKind::RetriesExhausted`](crate::telemetry::AlertKind) alert is recorded, and an `atamo.action.exhausted` event is published
//!   for the same user and correlation id, so rules can send it to whoever should know.
//! - A [`BreakerPolicy`] opens an agent's circuit when too many calls fail; while open no call
//!   reaches it, and after a cool-down one probe call decides whether it closes again.
//! - Every agent has an [`AgentStatus`], driven by its breaker and settable by hand.

use serde::Serialize;

use crate::ids::AgentId;
use crate::message::{Action, Timestamp};
use crate::outcome::AgentError;
pub use crate::policy::{BreakerPolicy, RetryPolicy};
pub use crate::status::{AgentState, AgentStatus};

/// The event type published when an action fails for good.
pub const EXHAUSTED_EVENT: &str = "atamo.action.exhausted";
/// The event type published when an agent's status changes.
pub const STATUS_CHANGED_EVENT: &str = "atamo.agent.status_changed";

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
