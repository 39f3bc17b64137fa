//! The router under supervision: it is not restarted after a panic (see
//! [`supervise`](crate::hub::supervise) for why); it fails for good, which stops intake.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::run::{Router, RouterReport};
use crate::hub::components::ComponentHandle;
use crate::hub::envelope::Envelope;
use crate::hub::shared::Shared;
use crate::hub::supervise::catching;
use crate::request::RequestState;

/// Runs the router until intake closes. After a panic, the router is failed for good: the
/// events still queued for routing are taken off the queue (in a stateful hub their
/// publishers are told they were not taken; in a stateless one they were already answered and
/// are counted as lost), and the task waits for shutdown, then lets the workers stop.
pub(crate) async fn router(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Envelope>,
    component: ComponentHandle,
) -> RouterReport {
    let router = Router::new(shared.clone());
    let panic = match catching(router.run(&mut rx)).await {
        Ok(report) => return report,
        Err(panic) => panic,
    };
    component.failed_for_good(format!(
        "panicked ({panic}); the hub takes no more events until it is restarted"
    ));
    rx.close();
    let mut queued = 0u64;
    while let Ok(env) = rx.try_recv() {
        queued += 1;
        if let Some(r) = &env.request {
            r.stop(RequestState::Failed);
        }
        // A stateful hub's publisher waits on `env.ack`: dropping it answers that the event
        // was not taken.
    }
    let stateful = shared.durable.is_some();
    tracing::error!(
        component = "router",
        %panic,
        queued,
        stateful,
        "the router panicked; the hub takes no more events. Events of the batch it was routing \
         are lost, and so are the queued ones of a stateless hub (a stateful hub refused them)"
    );
    shared.lifecycle.drain.cancelled().await;
    shared.lifecycle.intake_done.cancel();
    RouterReport::default()
}
