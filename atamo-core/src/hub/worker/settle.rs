//! Where the outcome of each attempt goes. A stateless hub keeps nothing; a stateful hub
//! collects the round's settles, kept request results and audit records, and writes them in
//! one store write at the end of the round. The worker calls the same methods either way.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::hub::dispatch::Dispatch;
use crate::hub::durable::Durable;
use crate::message::Timestamp;
use crate::outcome::{AgentError, Reply};
use crate::store::{later, ResultRecord, Settlement, WriteBatch};
use crate::telemetry::Sink;

/// A worker's outcomes: kept nowhere (stateless), or in the store (stateful).
pub(super) enum Settler {
    Stateless,
    Durable {
        durable: Arc<Durable>,
        /// The settles, results and audit of this round.
        round: WriteBatch,
        /// How long a request's answers are kept when it says nothing.
        keep_alive: Duration,
    },
}

impl Settler {
    pub(super) fn new(durable: Option<Arc<Durable>>, keep_alive: Duration) -> Self {
        match durable {
            None => Self::Stateless,
            Some(durable) => Self::Durable {
                durable,
                round: WriteBatch::default(),
                keep_alive,
            },
        }
    }

    /// Whether outcomes are kept: the worker's steps are then audited, and a shared call's
    /// answers are kept for the requests it served.
    pub(super) fn keeps(&self) -> bool {
        matches!(self, Self::Durable { .. })
    }

    /// How `d`'s attempt ended (for a durable action: one whose dispatch holds a lease).
    pub(super) fn settle(&mut self, d: &Dispatch, outcome: Settlement) {
        if let (Self::Durable { durable, round, .. }, Some(lease)) = (self, d.lease) {
            round
                .settles
                .push(durable.settle_of(lease, &d.action, outcome));
        }
    }

    /// `d` failed and is tried again after `after`, by this node: its lease runs past the
    /// retry's start.
    pub(super) fn retry_later(&mut self, d: &Dispatch, after: Duration, error: &AgentError) {
        if let Self::Durable { durable, .. } = self {
            let held = durable.held_retry(
                Timestamp::now(),
                after,
                serde_json::to_value(error).unwrap_or(Value::Null),
            );
            self.settle(d, held);
        }
    }

    /// A call ended for good: each dispatch it served (the caller's and those that joined it)
    /// is settled, and a request's answers (`history`) are kept for its keep-alive time.
    pub(super) fn ended<'a>(
        &mut self,
        served: impl Iterator<Item = &'a Dispatch>,
        history: Option<&[Arc<Value>]>,
        result: &Result<Reply, AgentError>,
    ) {
        if !self.keeps() {
            return;
        }
        let outcome = match result {
            Err(AgentError::Cancelled) | Ok(_) => Settlement::Done,
            Err(error) => Settlement::Dead {
                error: serde_json::to_value(error).unwrap_or(Value::Null),
            },
        };
        for d in served {
            self.keep_result(d, history, result);
            self.settle(d, outcome.clone());
        }
    }

    /// A request answered from a recent identical call: its answers are kept, and it is done.
    pub(super) fn served_from_cache(
        &mut self,
        d: &Dispatch,
        answers: &[Arc<Value>],
        reply: &Result<Reply, AgentError>,
    ) {
        self.keep_result(d, Some(answers), reply);
        self.settle(d, Settlement::Done);
    }

    /// `d` is given back (the hub is stopping): another node, or this one after a restart,
    /// carries it out.
    pub(super) fn release(&mut self, d: &Dispatch) {
        self.settle(d, Settlement::Release);
    }

    /// Keeps a durable request's answers in the store for its keep-alive time.
    fn keep_result(
        &mut self,
        d: &Dispatch,
        history: Option<&[Arc<Value>]>,
        result: &Result<Reply, AgentError>,
    ) {
        let Self::Durable {
            round, keep_alive, ..
        } = self
        else {
            return;
        };
        let (Some(_), Some(entry)) = (d.lease, &d.request) else {
            return;
        };
        let keep = entry.options.keep_alive.map_or(*keep_alive, |k| k.get());
        let outcome = match result {
            Ok(reply) => Ok(reply.payload.clone().unwrap_or(Value::Null)),
            Err(e) => Err(serde_json::to_value(e).unwrap_or(Value::Null)),
        };
        round.results.push(ResultRecord {
            request: entry.id,
            action: d.action.id(),
            agent: d.action.agent().clone(),
            tenant: d.action.principal().tenant.clone(),
            answers: history
                .unwrap_or_default()
                .iter()
                .map(|a| (**a).clone())
                .collect(),
            outcome,
            expires_at: later(Timestamp::now(), keep),
        });
    }

    /// Writes the round's settles, results and audit records (nothing, when stateless).
    pub(super) async fn write(&mut self, sink: &mut Sink) {
        let Self::Durable { durable, round, .. } = self else {
            return;
        };
        let mut batch = std::mem::take(round);
        batch.audit = sink.take_audit();
        durable.settle(batch).await;
    }
}
