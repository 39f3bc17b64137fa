//! The agent's health probe: one at a time, every `interval`, failing after `timeout`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use serde_json::Value;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::agent::Agent;
use crate::outcome::{panic_message, AgentError};
use crate::policy::HealthCheck;

/// When the next probe is due.
pub(super) struct ProbeSchedule {
    tick: Interval,
    timeout: Duration,
}

impl ProbeSchedule {
    pub(super) fn new(check: HealthCheck) -> Self {
        let every = check.interval.get();
        let first = Instant::now()
            .checked_add(every)
            .unwrap_or_else(Instant::now);
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            tick,
            timeout: check.timeout.get(),
        }
    }

    /// Completes when the next probe is due.
    pub(super) async fn due(&mut self) {
        self.tick.tick().await;
    }

    /// Starts a probe of `agent`.
    pub(super) fn start(&self, agent: &Arc<dyn Agent>) -> RunningProbe {
        let agent = agent.clone();
        let timeout = self.timeout;
        RunningProbe {
            started: Instant::now(),
            check: Box::pin(async move {
                match tokio::time::timeout(
                    timeout,
                    AssertUnwindSafe((*agent).health()).catch_unwind(),
                )
                .await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(panic)) => Some(Err(AgentError::Panicked {
                        message: panic_message(&*panic),
                    })),
                    Err(_) => Some(Err(AgentError::Timeout { after: timeout })),
                }
            }),
        }
    }
}

/// A health probe in flight, owning the agent it probes.
type ProbeFuture =
    Pin<Box<dyn Future<Output = Option<Result<Value, AgentError>>> + Send + 'static>>;

/// A probe in flight. Completes with its outcome and how long it took; `None` when the agent
/// has no probe (the worker then stops asking).
pub(super) struct RunningProbe {
    started: Instant,
    check: ProbeFuture,
}

impl Future for RunningProbe {
    type Output = (Option<Result<Value, AgentError>>, Duration);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let started = self.started;
        self.check
            .as_mut()
            .poll(cx)
            .map(|outcome| (outcome, started.elapsed()))
    }
}
