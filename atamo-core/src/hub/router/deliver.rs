//! Queuing a batch's actions on their agents' queues.

use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;

use crate::hub::dispatch::Dispatch;
use crate::hub::routing::AgentEntry;
use crate::hub::shared::Shared;
use crate::request::RequestState;
use crate::telemetry::{AbandonReason, Sink, TelemetryKind};

/// Queues a batch's actions. A full agent queue makes the router wait (and so, in turn,
/// publishers): backpressure, not loss. Once the shutdown deadline has passed, what cannot be
/// queued is reported abandoned; returns how many were.
pub(super) async fn deliver(
    shared: &Shared,
    dispatches: &mut Vec<(Arc<AgentEntry>, Dispatch)>,
    sink: &mut Sink,
) -> u64 {
    let mut abandoned = 0;
    for (entry, d) in dispatches.drain(..) {
        let d = match entry.tx.try_send(d) {
            Ok(()) => continue,
            Err(TrySendError::Full(d)) => {
                tokio::select! {
                    permit = entry.tx.reserve() => match permit {
                        Ok(permit) => {
                            permit.send(d);
                            continue;
                        }
                        Err(_) => d,
                    },
                    _ = shared.lifecycle.abort.cancelled() => d,
                }
            }
            Err(TrySendError::Closed(d)) => d,
        };
        abandoned += 1;
        if let Some(r) = &d.request {
            r.stop(RequestState::Cancelled);
        }
        sink.begin();
        sink.emit(
            TelemetryKind::ActionAbandoned {
                action: d.action.meta,
                reason: AbandonReason::ShutdownDeadline,
            },
            d.monitor.as_ref(),
        );
    }
    abandoned
}
