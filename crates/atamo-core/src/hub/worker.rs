//! One long-lived task per agent: takes dispatched actions from the agent's queue in batches and
//! runs up to `concurrency` calls at once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::CatchUnwind;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::routing::{panic_message, AgentStats};
use super::HubHandle;
use crate::agent::{Agent, AgentError, AgentFuture, AgentInfo, CallContext, Reply};
use crate::message::Action;
use crate::request::{RequestEntry, RequestSink};
use crate::telemetry::{AbandonReason, Monitor, Sink, TelemetryKind};

const BATCH: usize = 256;

/// An action on its way to an agent, with the monitor of its event if a client watches it.
pub(crate) struct Dispatch {
    pub(crate) action: Action,
    pub(crate) monitor: Option<Monitor>,
    pub(crate) request: Option<Arc<RequestEntry>>,
}

/// What a worker did after shutdown began.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WorkerReport {
    pub(crate) abandoned: u64,
}

pub(crate) struct Worker {
    info: Arc<AgentInfo>,
    agent: Arc<dyn Agent>,
    stats: Arc<AgentStats>,
    hub: HubHandle,
    // Shared by every call of this worker: cloning an `Arc` is cheaper than cloning a token.
    cancel: Arc<CancellationToken>,
}

type Done = (Dispatch, Duration, Result<Reply, AgentError>);

/// A running call. Polled once inline first: an agent that completes without waiting never
/// touches the `FuturesUnordered`.
struct InFlight {
    fut: CatchUnwind<AssertUnwindSafe<AgentFuture>>,
    dispatch: Option<Dispatch>,
    started: Instant,
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
            Some(d) => Poll::Ready((d, self.started.elapsed(), result)),
            // Polled again after completion: nothing more to give.
            None => Poll::Pending,
        }
    }
}

impl Worker {
    pub(crate) fn new(
        info: Arc<AgentInfo>,
        agent: Arc<dyn Agent>,
        stats: Arc<AgentStats>,
        hub: HubHandle,
    ) -> Self {
        let cancel = Arc::new(hub.shared.abort.clone());
        Self {
            info,
            agent,
            stats,
            hub,
            cancel,
        }
    }

    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Dispatch>) -> WorkerReport {
        let shared = self.hub.shared.clone();
        let mut sink = Sink::new(shared.bus.clone());
        let mut inflight: FuturesUnordered<InFlight> = FuturesUnordered::new();
        let mut buf = Vec::with_capacity(BATCH);
        let mut closed = false;
        let mut report = WorkerReport::default();
        let concurrency = self.info.concurrency.max(1);
        loop {
            if closed && inflight.is_empty() {
                break;
            }
            let room = concurrency.saturating_sub(inflight.len()).min(BATCH);
            tokio::select! {
                biased;
                _ = shared.abort.cancelled() => {
                    sink.begin();
                    report.abandoned = self.abandon(&mut inflight, &mut rx, &mut sink);
                    sink.flush();
                    break;
                }
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    sink.begin();
                    self.finish(done, &mut sink);
                    // Collect whatever else is ready without waiting.
                    while let Some(Some(done)) = inflight.next().now_or_never() {
                        self.finish(done, &mut sink);
                    }
                }
                n = rx.recv_many(&mut buf, room), if room > 0 && !closed => {
                    if n == 0 {
                        closed = true;
                    } else {
                        sink.begin();
                        for d in buf.drain(..) {
                            self.start(d, &mut inflight, &mut sink);
                        }
                    }
                }
                _ = shared.intake_done.cancelled(), if rx.is_empty() && inflight.is_empty() => break,
            }
            sink.flush();
        }
        report
    }

    fn start(&self, d: Dispatch, inflight: &mut FuturesUnordered<InFlight>, sink: &mut Sink) {
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let ctx = CallContext {
            agent: self.info.clone(),
            action: d.action.meta.clone(),
            hub: self.hub.clone(),
            cancel: match &d.request {
                Some(r) => r.cancel.clone(),
                None => self.cancel.clone(),
            },
            request: d.request.as_ref().map(|r| RequestSink {
                entry: r.clone(),
                action: d.action.id(),
            }),
        };
        let started = Instant::now();
        let call =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.agent.call(d.action.clone(), ctx)));
        let fut = match call {
            Ok(fut) => fut,
            Err(panic) => {
                let err = AgentError::Panicked {
                    message: panic_message(&*panic),
                };
                self.finish((d, started.elapsed(), Err(err)), sink);
                return;
            }
        };
        let mut call = InFlight {
            fut: AssertUnwindSafe(fut).catch_unwind(),
            dispatch: Some(d),
            started,
        };
        match Pin::new(&mut call).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(done) => self.finish(done, sink),
            Poll::Pending => inflight.push(call),
        }
    }

    fn finish(&self, (d, elapsed, result): Done, sink: &mut Sink) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(r) = &d.request {
            r.end_part(d.action.id(), &result);
        }
        let action = d.action.meta;
        let kind = match result {
            Ok(_) => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                TelemetryKind::ActionSucceeded { action, elapsed }
            }
            Err(error) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(agent = %self.info.id, action = %action.id, %error, "action failed");
                TelemetryKind::ActionFailed {
                    action,
                    error,
                    elapsed,
                }
            }
        };
        sink.emit(kind, d.monitor.as_ref());
    }

    /// The shutdown deadline passed: every running and queued action is reported abandoned.
    fn abandon(
        &self,
        inflight: &mut FuturesUnordered<InFlight>,
        rx: &mut mpsc::Receiver<Dispatch>,
        sink: &mut Sink,
    ) -> u64 {
        let mut n = 0;
        let mut report = |d: Dispatch, sink: &mut Sink| {
            n += 1;
            if let Some(r) = &d.request {
                r.end_part(d.action.id(), &Err(AgentError::Cancelled));
            }
            sink.emit(
                TelemetryKind::ActionAbandoned {
                    action: d.action.meta,
                    reason: AbandonReason::ShutdownDeadline,
                },
                d.monitor.as_ref(),
            );
        };
        // The cancellation token has fired: one last poll lets each call see it and run its
        // cancellation branch (cleanup) before it is dropped.
        let mut cx = Context::from_waker(Waker::noop());
        for call in inflight.iter_mut() {
            let _ = Pin::new(&mut call.fut).poll(&mut cx);
            if let Some(d) = call.dispatch.take() {
                self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                report(d, sink);
            }
        }
        inflight.clear();
        rx.close();
        while let Ok(d) = rx.try_recv() {
            report(d, sink);
        }
        if n > 0 {
            tracing::warn!(agent = %self.info.id, abandoned = n, "shutdown deadline passed; actions abandoned");
        }
        n
    }
}
