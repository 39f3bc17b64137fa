//! Failed calls waiting for their next attempt, and when that is.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::time::DelayQueue;

use super::coalesce::GroupRef;
use crate::bounded::Backoff;
use crate::hub::dispatch::Dispatch;
use crate::outcome::AgentError;
use crate::policy::RetryPolicy;

/// A failed call waiting for its next attempt.
pub(super) struct Retry {
    pub(super) dispatch: Dispatch,
    /// A request's call group stays open across attempts: its members (and any identical
    /// request joining meanwhile) get the outcome of the last attempt.
    pub(super) group: Option<GroupRef>,
}

/// The worker's retries: each due at its time, and listed for shutdown.
#[derive(Default)]
pub(super) struct Retries {
    /// When each is due, by key into `waiting`.
    queue: DelayQueue<u64>,
    waiting: HashMap<u64, Retry>,
    next: u64,
}

impl Retries {
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Keeps `retry` until `after` has passed.
    pub(super) fn schedule(&mut self, retry: Retry, after: Duration) {
        let key = self.next;
        self.next += 1;
        self.waiting.insert(key, retry);
        self.queue.insert(key, after);
    }

    /// The next retry that is due, when it is.
    pub(super) async fn due(&mut self) -> Option<Retry> {
        let key = self.queue.next().await?.into_inner();
        self.waiting.remove(&key)
    }

    /// Every retry still waiting (the hub is stopping).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Retry> + '_ {
        self.queue.clear();
        self.waiting.drain().map(|(_, r)| r)
    }
}

/// The pause before the next attempt of an action whose attempt `attempt` failed with
/// `error`, if `policy` allows one: never for a permanent failure, never past the policy's
/// attempts or time limit, and never sooner than the other side asked (`Retry-After`).
pub(super) fn delay(
    policy: &RetryPolicy,
    attempt: u32,
    error: &AgentError,
    first_attempt: Option<Instant>,
) -> Option<Duration> {
    if !error.is_retryable() || attempt >= policy.max_attempts.get() {
        return None;
    }
    let mut delay = policy.delay_before(attempt.saturating_add(1));
    if let AgentError::Retry {
        after: Some(hint), ..
    } = error
    {
        // The other side's hint is honoured up to the longest backoff there is.
        delay = delay.max((*hint).min(Backoff::MAX.get()));
    }
    if let (Some(limit), Some(first)) = (policy.max_elapsed, first_attempt) {
        if first.elapsed().saturating_add(delay) > limit.get() {
            return None;
        }
    }
    Some(delay)
}
