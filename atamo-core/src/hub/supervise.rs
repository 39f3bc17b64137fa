//! Supervision of the hub's long-lived tasks: every one runs with its panics caught, logged
//! with its component's name and reported as the component's state (see
//! [`Control::components`](crate::Control::components)); none dies silently.
//!
//! Which tasks are restarted after a panic, and which stop the hub's intake:
//!
//! | task | after a panic | essential |
//! |---|---|---|
//! | router | not restarted: failed for good | yes |
//! | committer (stateful) | not restarted: failed for good | yes |
//! | settle writer (stateful) | restarted with its queue | yes |
//! | agent worker | restarted with its queue, held actions, retries and calls in flight | no |
//! | claimer, heartbeat, pruner (stateful) | restarted | no |
//! | request timers | restarted with their deadlines and keep-alive expiries | no |
//! | event provider | restarted (one that returns before the hub stops fails for good) | no |
//! | alert monitor | restarted with its windows and active alerts | no |
//!
//! The router is not restarted: the batch it held when it panicked was already answered
//! (a stateless hub answers `publish` once the event is queued), so a panic there has lost
//! accepted events, and the same input would meet the same fault again. It fails for good:
//! publishing is refused with the reason ([`PublishError::Unavailable`]) and the hub is not
//! ready, so that the operator restarts the node rather than clients being told events are
//! taken that are not. The committer answers a stateful hub's publishers once their batch is
//! stored; a panic there leaves a stored batch undelivered, so it fails the same way.
//!
//! A restarted task keeps what it owns outside the panicking future (its queue, and for a
//! worker its held actions, retries and calls in flight); what it had in hand at the moment
//! of the panic is lost. A component restarted is `Degraded` until it has run for
//! [`QUIET`] without a panic, and `Failed` once it panicked [`FAIL_AFTER`] times in a row;
//! it is restarted all the same, after a pause that doubles from [`FIRST_PAUSE`] up to
//! [`MAX_PAUSE`]. An essential component that is not working stops intake.
//!
//! [`PublishError::Unavailable`]: crate::PublishError::Unavailable

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::components::ComponentHandle;
use super::provider::{EventProvider, ProviderLink};
use crate::outcome::panic_message;
use crate::request::Timers;
use crate::status::ComponentState;

/// How long a restarted component must run without a panic to count as ready again.
pub(crate) const QUIET: Duration = Duration::from_secs(60);
/// Panics in a row after which a component is reported failed.
pub(crate) const FAIL_AFTER: u32 = 5;
/// The pause before the first restart.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two restarts.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Runs `fut` to its end: its output, or the message of the panic that ended it.
pub(crate) async fn catching<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .map_err(|panic| panic_message(&*panic))
}

/// Spawns a short task (a follow-up publish) whose panic is logged rather than lost.
pub(crate) fn spawn_logged(
    runtime: &tokio::runtime::Handle,
    what: &'static str,
    fut: impl Future<Output = ()> + Send + 'static,
) {
    runtime.spawn(async move {
        if let Err(panic) = catching(fut).await {
            tracing::error!(task = what, %panic, "task panicked");
        }
    });
}

/// A component's restarts: how many panics in a row, and the pause before the next life.
pub(crate) struct Restarts {
    in_a_row: u32,
    pause: Duration,
    /// What a panic loses, for the log and the component's state.
    lost: &'static str,
}

impl Restarts {
    /// Restarts of a component whose panic loses `lost` (`"the batch it was writing"`).
    pub(crate) fn new(lost: &'static str) -> Self {
        Self {
            in_a_row: 0,
            pause: FIRST_PAUSE,
            lost,
        }
    }

    /// Runs one life of the component: its output, or the panic's message. A life that
    /// lasts [`QUIET`] after a restart makes the component ready again.
    pub(crate) async fn life<F: Future>(
        &mut self,
        component: &ComponentHandle,
        fut: F,
    ) -> Result<F::Output, String> {
        let fut = catching(fut);
        if self.in_a_row == 0 {
            return fut.await;
        }
        tokio::pin!(fut);
        tokio::select! {
            biased;
            out = &mut fut => return out,
            () = tokio::time::sleep(QUIET) => {}
        }
        self.in_a_row = 0;
        self.pause = FIRST_PAUSE;
        component.ready();
        tracing::info!(component = component.name(), "component ready again");
        fut.await
    }

    /// A life ended in `panic`: logs it, reports the component degraded (or failed, after
    /// [`FAIL_AFTER`] in a row), and waits before the next life. Returns false when `stop`
    /// fired meanwhile: the component is not restarted.
    pub(crate) async fn panicked(
        &mut self,
        component: &ComponentHandle,
        panic: &str,
        stop: Option<&CancellationToken>,
    ) -> bool {
        self.in_a_row += 1;
        let in_a_row = self.in_a_row;
        let lost = self.lost;
        tracing::error!(
            component = component.name(),
            %panic,
            in_a_row,
            lost,
            "component panicked; restarting it"
        );
        let state = if in_a_row >= FAIL_AFTER {
            ComponentState::Failed {
                reason: format!("panicked {in_a_row} times in a row, last: {panic}"),
            }
        } else {
            ComponentState::Degraded {
                reason: format!("restarted after a panic ({panic}); lost: {lost}"),
            }
        };
        component.restarted(state);
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        match stop {
            Some(stop) => tokio::select! {
                () = stop.cancelled() => false,
                () = tokio::time::sleep(pause) => true,
            },
            None => {
                tokio::time::sleep(pause).await;
                true
            }
        }
    }
}

/// Runs a task made afresh for each life by `make`, restarting it after a panic, until a life
/// returns (or `stop` fires while it waits to restart). Returns the component, for its caller
/// to unlist (drop) or report.
pub(crate) async fn restarting<Fut>(
    component: ComponentHandle,
    lost: &'static str,
    stop: Option<CancellationToken>,
    mut make: impl FnMut() -> Fut,
) -> ComponentHandle
where
    Fut: Future<Output = ()>,
{
    let mut restarts = Restarts::new(lost);
    loop {
        match restarts.life(&component, make()).await {
            Ok(()) => return component,
            Err(panic) => {
                if !restarts.panicked(&component, &panic, stop.as_ref()).await {
                    return component;
                }
            }
        }
    }
}

/// [`restarting`], for a task whose component is unlisted once it returns.
pub(crate) async fn restarted(
    component: ComponentHandle,
    lost: &'static str,
    stop: Option<CancellationToken>,
    make: impl FnMut() -> Pin<Box<dyn Future<Output = ()> + Send>>,
) {
    drop(restarting(component, lost, stop, make).await);
}

/// A life of a task that reads a queue: a future that borrows the queue.
pub(crate) type QueueLife<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs a task that reads `rx`, restarting it after a panic with the same queue (what it had
/// taken off the queue is lost), until a life returns.
pub(crate) async fn with_queue<T>(
    mut rx: mpsc::Receiver<T>,
    component: ComponentHandle,
    lost: &'static str,
    mut life: impl for<'a> FnMut(&'a mut mpsc::Receiver<T>) -> QueueLife<'a>,
) {
    let mut restarts = Restarts::new(lost);
    loop {
        match restarts.life(&component, life(&mut rx)).await {
            Ok(()) => return,
            Err(panic) => {
                restarts.panicked(&component, &panic, None).await;
            }
        }
    }
}

/// Runs a request store's timers, restarted after a panic with every deadline and keep-alive
/// expiry they hold.
pub(crate) async fn timers(mut timers: Timers, component: ComponentHandle) {
    let mut restarts = Restarts::new("the deadline or expiry being handled");
    loop {
        match restarts.life(&component, timers.run()).await {
            Ok(()) => return,
            Err(panic) => {
                restarts.panicked(&component, &panic, None).await;
            }
        }
    }
}

/// Runs an event provider until the hub stops, restarted after a panic. A provider that
/// returns before the hub asks it to stop has stopped serving its clients: it is listed as
/// failed.
pub(crate) async fn provider(
    provider: Arc<dyn EventProvider>,
    link: ProviderLink,
    component: ComponentHandle,
) {
    let stop = link.stop.clone();
    let component = restarting(
        component,
        "the clients it was serving",
        Some(stop.clone()),
        || provider.clone().run(link.clone()),
    )
    .await;
    if !stop.is_cancelled() {
        tracing::warn!(
            component = component.name(),
            "event provider returned before the hub stopped"
        );
        component.failed_for_good("returned before the hub stopped");
    }
}

/// Faults injected by the crate's own tests, to prove that supervision catches them.
#[cfg(test)]
pub(crate) mod faults {
    /// An event of this type panics the router that routes it.
    pub(crate) const ROUTER: &str = "test.fault.router";
    /// A failed action of this type panics its worker on the retry path.
    pub(crate) const WORKER_RETRY: &str = "test.fault.worker_retry";

    /// Panics when `event_type` asks for it.
    pub(crate) fn router(event_type: &str) {
        if event_type == ROUTER {
            panic!("injected router fault");
        }
    }

    /// Panics when `action_type` asks for it.
    pub(crate) fn worker_retry(action_type: &str) {
        if action_type == WORKER_RETRY {
            panic!("injected worker fault on the retry path");
        }
    }
}
