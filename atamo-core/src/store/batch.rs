//! Writes committed together: accepted events with their actions, ends of attempts, results
//! and audit records, and what became of each.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::records::{ActionRecord, AuditRecord, EventRecord, NodeId, ResultRecord};
use crate::ids::{ActionId, CorrelationId, EventId};
use crate::message::Timestamp;

/// An action to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAction {
    /// The action.
    pub record: ActionRecord,
    /// `Some`: enqueued already leased (attempt 1) to this node until `now + lease`.
    /// `None`: enqueued ready, for whichever node claims it first.
    pub lease: Option<(NodeId, Duration)>,
}

impl NewAction {
    /// An action enqueued ready, for whichever node claims it first.
    pub fn ready(record: ActionRecord) -> Self {
        Self {
            record,
            lease: None,
        }
    }
}

/// An event to accept, with its actions.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptEvent {
    /// The event.
    pub event: EventRecord,
    /// How long its dedupe key blocks a second event with the same key (ignored without a key).
    pub dedupe_window: Duration,
    /// Its actions.
    pub actions: Vec<NewAction>,
}

impl AcceptEvent {
    /// An event with its actions, without a dedupe window.
    pub fn new(event: EventRecord, actions: Vec<NewAction>) -> Self {
        Self {
            event,
            dedupe_window: Duration::ZERO,
            actions,
        }
    }
}

/// What became of an accepted event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AcceptOutcome {
    /// Written, with its actions.
    New,
    /// Its dedupe key was seen within the window: nothing was written, and this is the first
    /// event's receipt.
    Duplicate {
        /// The first event's id.
        event_id: EventId,
        /// The first event's correlation id.
        correlation_id: CorrelationId,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// It succeeded.
    Done,
    /// It failed and will be tried again at `run_at`.
    Retry {
        /// When the next attempt may start.
        run_at: Timestamp,
        /// `Some(until)`: the same node keeps the action (attempt raised by one) and will retry
        /// it itself; the lease runs until `until`. `None`: back to `ready` for any node.
        hold_until: Option<Timestamp>,
        /// The failure, as JSON.
        error: Value,
    },
    /// It failed for good.
    Dead {
        /// The failure, as JSON.
        error: Value,
    },
    /// Not attempted (or interrupted): back to `ready` at once, for any node.
    Release,
}

/// The end of one attempt, fenced by the attempt number the node holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Settle {
    /// The action.
    pub action: ActionId,
    /// The attempt the node holds.
    pub attempt: u32,
    /// The node holding the lease.
    pub node: NodeId,
    /// How it ended.
    pub outcome: Settlement,
}

/// What a write batch did, item by item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteOutcome {
    /// One per accepted event, in order.
    pub accepted: Vec<AcceptOutcome>,
    /// One per settle, in order: `false` when the lease was lost (expired and claimed again,
    /// or the action is gone) and nothing was changed.
    pub settled: Vec<bool>,
}

/// Writes committed together: all of it, or none of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Events with their actions.
    pub accepts: Vec<AcceptEvent>,
    /// Ends of attempts.
    pub settles: Vec<Settle>,
    /// Answers of requests.
    pub results: Vec<ResultRecord>,
    /// Steps for the audit log. Those of an event this batch refuses as a duplicate are not
    /// written: they are not the path of anything stored.
    pub audit: Vec<AuditRecord>,
}

impl WriteBatch {
    /// A batch accepting `accepts` and nothing else.
    pub fn accepting(accepts: Vec<AcceptEvent>) -> Self {
        Self {
            accepts,
            ..Self::default()
        }
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.accepts.is_empty()
            && self.settles.is_empty()
            && self.results.is_empty()
            && self.audit.is_empty()
    }
}
