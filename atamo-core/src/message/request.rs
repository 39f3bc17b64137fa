//! The vocabulary of requests: options, receipts, states, answers and updates.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::bounded::{Deadline, KeepAlive};
use crate::ids::{ActionId, AgentId, CorrelationId, EventId, RequestId};
use crate::outcome::AgentError;

use super::Timestamp;

/// How a request is handled. The defaults suit a request answered once or a few times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// How long the answers are kept after the request completes (default: the hub's, see
    /// [`HubBuilder::keep_alive`](crate::HubBuilder::keep_alive)).
    pub keep_alive: Option<KeepAlive>,
    /// After this long the request completes as [`RequestState::DeadlinePassed`] and its agents
    /// are cancelled. None: no deadline.
    pub deadline: Option<Deadline>,
    /// A live feed: cancel the request when its last subscriber goes away. Without it a client
    /// may disconnect and come back later.
    pub cancel_when_unwatched: bool,
}

impl RequestOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the keep-alive time (brought into [`KeepAlive`]'s range: at most 30 days).
    #[must_use]
    pub fn keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = Some(KeepAlive::saturating(d));
        self
    }

    /// Sets a deadline (brought into [`Deadline`]'s range: 1 ms to 24 hours).
    #[must_use]
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = Some(Deadline::saturating(d));
        self
    }

    /// Makes the request a live feed, cancelled when its last subscriber goes away (a `wait`
    /// does not count as a subscriber) and when the hub begins to shut down.
    #[must_use]
    pub fn live_feed(mut self) -> Self {
        self.cancel_when_unwatched = true;
        self
    }
}

/// What the hub hands back at once for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestReceipt {
    /// The id to collect answers under.
    pub request_id: RequestId,
    /// The id of the event that carries it.
    pub event_id: EventId,
    /// Its correlation id.
    pub correlation_id: CorrelationId,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestState {
    /// Accepted, agents still working.
    Running,
    /// Every agent ended its part successfully.
    Complete,
    /// Every agent ended, and some failed.
    PartiallyFailed {
        /// How many agents failed.
        failed: usize,
        /// How many agents there were.
        of: usize,
    },
    /// Every agent failed.
    Failed,
    /// No rule routed the request to any agent.
    NoRoute,
    /// The client cancelled it, its last subscriber went away (live feeds), or the hub shut
    /// down before it ended.
    Cancelled,
    /// Its deadline passed before every agent ended.
    DeadlinePassed,
}

impl std::fmt::Display for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Complete => f.write_str("complete"),
            Self::PartiallyFailed { failed, of } => {
                write!(f, "partially failed ({failed} of {of} agents failed)")
            }
            Self::Failed => f.write_str("failed"),
            Self::NoRoute => f.write_str("no route"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::DeadlinePassed => f.write_str("deadline passed"),
        }
    }
}

impl std::fmt::Display for PartStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Running => f.write_str("running"),
            Self::Done => f.write_str("done"),
            Self::Failed { error } => write!(f, "failed: {error}"),
            Self::Stopped => f.write_str("stopped"),
        }
    }
}

impl RequestState {
    /// Whether the request has ended (nothing more will arrive).
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Running)
    }
}

/// How one agent's part of a request ended, or that it is still running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PartStatus {
    /// Still answering.
    Running,
    /// Ended successfully.
    Done,
    /// Failed.
    Failed {
        /// Why.
        error: AgentError,
    },
    /// Stopped because the request was cancelled or its deadline passed.
    Stopped,
}

/// One agent's part of a request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartState {
    /// The agent.
    pub agent: AgentId,
    /// The action it was sent.
    pub action: ActionId,
    /// How it stands.
    #[serde(flatten)]
    pub status: PartStatus,
    /// How many answers it has given.
    pub answers: u64,
}

/// One answer from one agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    /// The request it answers.
    pub request_id: RequestId,
    /// The agent that gave it.
    pub agent: AgentId,
    /// Its number among this agent's answers to this request, from 1.
    pub seq: u64,
    /// Whether it is this agent's last answer (its final reply).
    pub last: bool,
    /// When it arrived.
    pub at: Timestamp,
    /// The answer.
    pub payload: Arc<Value>,
}

/// What a subscriber receives, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "update", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestUpdate {
    /// An answer.
    Answer(Answer),
    /// An agent ended its part.
    PartEnded {
        /// The agent.
        agent: AgentId,
        /// How.
        #[serde(flatten)]
        status: PartStatus,
    },
    /// The request ended; nothing follows.
    Finished(RequestState),
}

/// A request's state and everything it has received that is still kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSnapshot {
    /// The request.
    pub request_id: RequestId,
    /// Where it stands.
    #[serde(flatten)]
    pub state: RequestState,
    /// Every agent's part.
    pub parts: Vec<PartState>,
    /// The answers still kept, in arrival order.
    pub answers: Vec<Answer>,
    /// How many earlier updates are no longer kept (read by every subscriber of a long feed).
    pub dropped_after_reading: u64,
}

/// What `poll` finds for a request id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RequestStatus {
    /// The request, running or kept.
    Known(RequestSnapshot),
    /// The request completed and its keep-alive time has passed (or memory ran short and it was
    /// evicted): its answers are gone.
    Expired {
        /// The request.
        request_id: RequestId,
    },
    /// This hub has no record of the id.
    Unknown {
        /// The id asked for.
        request_id: RequestId,
    },
}

/// Why `wait` or `subscribe` returned no complete result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The request did not complete in time; what it had so far is attached.
    #[error("request did not complete within the timeout")]
    Timeout(Box<RequestSnapshot>),
    /// The request's answers are no longer kept.
    #[error("request {0} has expired")]
    Expired(RequestId),
    /// No such request.
    #[error("request {0} is unknown")]
    Unknown(RequestId),
}

/// Why an agent's answer was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The action is not part of a request (it came from an event): there is nobody to answer.
    #[error("this action belongs to an event, not a request; there is nobody to answer")]
    NotARequest,
    /// The request has ended (cancelled, deadline passed, or completed): stop producing.
    #[error("the request has ended")]
    Ended,
}
