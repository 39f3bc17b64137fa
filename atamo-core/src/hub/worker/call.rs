//! The calls in flight: each agent future with its dispatch, polled once inline and then
//! kept in the worker's `FuturesUnordered`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::coalesce::GroupRef;
use crate::agent::{Agent, CallContext};
use crate::hub::dispatch::Dispatch;
use crate::message::Action;
use crate::outcome::{panic_message, AgentError, Reply};

/// An agent's future: it borrows the agent, which the worker's loop holds for as long as any
/// call runs, so a call costs the one allocation the agent's future makes.
type AgentFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, AgentError>> + Send + 'a>>;

/// How a call ended: its dispatch, how long it took, its result, and the request call group
/// it served.
pub(super) type Done = (
    Dispatch,
    Duration,
    Result<Reply, AgentError>,
    Option<GroupRef>,
);

/// An agent's future, with the agent's time limit when it has one.
enum Limited<'a> {
    Free(AgentFuture<'a>),
    Timed(Pin<Box<tokio::time::Timeout<AgentFuture<'a>>>>, Duration),
}

impl Future for Limited<'_> {
    type Output = Result<Reply, AgentError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Limited::Free(fut) => fut.as_mut().poll(cx),
            Limited::Timed(fut, after) => match fut.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Ok(result)) => Poll::Ready(result),
                Poll::Ready(Err(_)) => Poll::Ready(Err(AgentError::Timeout { after: *after })),
            },
        }
    }
}

/// A running call.
pub(super) struct InFlight<'a> {
    fut: CatchUnwind<AssertUnwindSafe<Limited<'a>>>,
    dispatch: Option<Dispatch>,
    pub(super) group: Option<GroupRef>,
    started: Instant,
}

impl InFlight<'_> {
    /// The hub's deadline passed and the call's cancellation token has fired: one last poll
    /// lets the call see it and run its cancellation branch (cleanup) before it is dropped.
    /// Returns the dispatch, unless the call had already ended.
    pub(super) fn last_poll(&mut self) -> Option<Dispatch> {
        let _ = Pin::new(&mut self.fut).poll(&mut Context::from_waker(Waker::noop()));
        self.dispatch.take()
    }
}

impl Future for InFlight<'_> {
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

/// The calls one worker runs, and the agent they call.
pub(super) struct Calls<'a> {
    agent: &'a dyn Agent,
    running: FuturesUnordered<InFlight<'a>>,
}

impl<'a> Calls<'a> {
    pub(super) fn new(agent: &'a dyn Agent) -> Self {
        Self {
            agent,
            running: FuturesUnordered::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Calls the agent for `action` (failing it as `Timeout` after `timeout`, when given) and
    /// polls the call once: an agent that completes without waiting never touches the
    /// `FuturesUnordered`, and its end is returned at once.
    pub(super) fn start(
        &mut self,
        timeout: Option<Duration>,
        action: Action,
        ctx: CallContext,
        dispatch: Dispatch,
        group: Option<GroupRef>,
        started: Instant,
    ) -> Option<Done> {
        // An agent may panic before its future exists (a closure's body runs on the call).
        let agent = self.agent;
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| agent.call(action, ctx))) {
            Ok(fut) => fut,
            Err(panic) => {
                let error = AgentError::Panicked {
                    message: panic_message(&*panic),
                };
                return Some((dispatch, started.elapsed(), Err(error), group));
            }
        };
        let fut = match timeout {
            None => Limited::Free(fut),
            Some(limit) => Limited::Timed(Box::pin(tokio::time::timeout(limit, fut)), limit),
        };
        let mut call = InFlight {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            dispatch: Some(dispatch),
            group,
            started,
        };
        match Pin::new(&mut call).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(done) => Some(done),
            Poll::Pending => {
                self.running.push(call);
                None
            }
        }
    }

    /// The next call to end.
    pub(super) async fn next(&mut self) -> Option<Done> {
        self.running.next().await
    }

    /// A call that has already ended, without waiting.
    pub(super) fn ready(&mut self) -> Option<Done> {
        self.running.next().now_or_never().flatten()
    }

    /// Every running call, to abandon them.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut InFlight<'a>> + '_ {
        self.running.iter_mut()
    }

    /// Drops every running call.
    pub(super) fn clear(&mut self) {
        self.running.clear();
    }
}
