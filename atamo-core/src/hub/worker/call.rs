//! A call in flight: the agent's future, owning what it borrows, with its dispatch.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::CatchUnwind;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::coalesce::GroupRef;
use crate::agent::{Agent, CallContext};
use crate::hub::dispatch::Dispatch;
use crate::message::Action;
use crate::outcome::{panic_message, AgentError, Reply};

/// A call in flight, owning what it borrows.
type AgentFuture = Pin<Box<dyn Future<Output = Result<Reply, AgentError>> + Send + 'static>>;

/// How a call ended: its dispatch, how long it took, its result, and the request call group
/// it served.
pub(super) type Done = (
    Dispatch,
    Duration,
    Result<Reply, AgentError>,
    Option<GroupRef>,
);

/// A running call. Polled once inline first: an agent that completes without waiting never
/// touches the worker's `FuturesUnordered`.
pub(super) struct InFlight {
    fut: CatchUnwind<AssertUnwindSafe<AgentFuture>>,
    dispatch: Option<Dispatch>,
    pub(super) group: Option<GroupRef>,
    started: Instant,
}

impl InFlight {
    /// Calls `agent` for `action` (failing it as `Timeout` after `timeout`, when given).
    pub(super) fn start(
        agent: &Arc<dyn Agent>,
        timeout: Option<Duration>,
        action: Action,
        ctx: CallContext,
        dispatch: Dispatch,
        group: Option<GroupRef>,
        started: Instant,
    ) -> Self {
        // The agent's future borrows the agent: the call owns its `Arc` so that it can run
        // beside the worker's other calls.
        let agent = agent.clone();
        let fut: AgentFuture = match timeout {
            None => Box::pin(async move { agent.call(action, ctx).await }),
            Some(limit) => Box::pin(async move {
                match tokio::time::timeout(limit, agent.call(action, ctx)).await {
                    Ok(result) => result,
                    Err(_) => Err(AgentError::Timeout { after: limit }),
                }
            }),
        };
        Self {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            dispatch: Some(dispatch),
            group,
            started,
        }
    }

    /// Polls the call once, without a waker: its end, when it is already done.
    pub(super) fn poll_now(&mut self) -> Option<Done> {
        match Pin::new(self).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(done) => Some(done),
            Poll::Pending => None,
        }
    }

    /// The hub's deadline passed and the call's cancellation token has fired: one last poll
    /// lets the call see it and run its cancellation branch (cleanup) before it is dropped.
    /// Returns the dispatch, unless the call had already ended.
    pub(super) fn last_poll(&mut self) -> Option<Dispatch> {
        let _ = Pin::new(&mut self.fut).poll(&mut Context::from_waker(Waker::noop()));
        self.dispatch.take()
    }
}

impl Future for InFlight {
    type Output = Done;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done> {
        let result = match Pin::new(&mut self.fut).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(panic)) => Err(AgentError::Panicked {
                message: panic_message(&*panic),
            }),
        };
        match self.dispatch.take() {
            Some(d) => Poll::Ready((d, self.started.elapsed(), result, self.group.take())),
            // Polled again after completion: nothing more to give.
            None => Poll::Pending,
        }
    }
}
