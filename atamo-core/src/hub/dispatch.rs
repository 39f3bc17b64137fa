//! An action on its way to its agent's worker, with what the worker needs to carry it out.

use std::sync::Arc;

use tokio::time::Instant;

use crate::ids::AgentId;
use crate::message::Action;
use crate::policy::RetryPolicy;
use crate::request::RequestEntry;
use crate::rules::Sharing;
use crate::telemetry::Monitor;

/// An action on its way to an agent, with the monitor of its event if a client watches it.
pub(crate) struct Dispatch {
    pub(crate) action: Action,
    pub(crate) monitor: Option<Monitor>,
    pub(crate) request: Option<Arc<RequestEntry>>,
    pub(crate) sharing: Sharing,
    /// The rule's or the action type's retry policy; the agent's applies when `None`.
    pub(crate) retry: Option<RetryPolicy>,
    /// Where the action may go while the agent is unavailable.
    pub(crate) fallback: Option<AgentId>,
    /// When the first attempt started (for the policy's time limit).
    pub(crate) first_attempt: Option<Instant>,
    /// In a stateful hub, for a durable action: the attempt this node's lease holds (the
    /// fencing token its settle names).
    pub(crate) lease: Option<u32>,
}

impl Dispatch {
    /// The same dispatch for the next attempt: the same action id, `attempt` one higher.
    pub(crate) fn next_attempt(mut self) -> Self {
        let mut meta = (*self.action.meta).clone();
        meta.attempt += 1;
        self.action = Action {
            meta: Arc::new(meta),
            payload: self.action.payload.clone(),
        };
        self.lease = self.lease.map(|l| l + 1);
        self
    }
}
