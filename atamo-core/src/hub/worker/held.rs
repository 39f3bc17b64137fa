//! Actions waiting for the agent to take calls again (its circuit is open, or an operator set
//! it offline), and their way out to a fallback agent.

use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;

use super::retry::Retry;
use crate::hub::dispatch::Dispatch;
use crate::hub::routing::Routing;
use crate::message::Action;
use crate::telemetry::{Sink, TelemetryKind};

/// An action waiting for the agent: a new one, or a retry that came due.
pub(super) enum Held {
    New(Dispatch),
    Retry(Retry),
}

impl Held {
    pub(super) fn dispatch(&self) -> &Dispatch {
        match self {
            Held::New(d) => d,
            Held::Retry(r) => &r.dispatch,
        }
    }
}

/// Sends a new action the agent cannot take now to the fallback agent its rule named, if that
/// agent is registered, handles the action type and has room; `reason` says why the agent
/// takes no calls. Returns the action otherwise.
pub(super) fn reroute(
    routing: &Routing,
    held: Held,
    reason: impl FnOnce() -> String,
    sink: &mut Sink,
) -> Option<Held> {
    let Held::New(d) = held else {
        return Some(held);
    };
    let Some(fallback) = d.fallback.clone() else {
        return Some(Held::New(d));
    };
    let Some(entry) = routing
        .agents
        .get(&fallback)
        .filter(|e| e.info.handles.contains(d.action.action_type()))
    else {
        return Some(Held::New(d));
    };
    let from = d.action.agent().clone();
    let mut meta = (*d.action.meta).clone();
    meta.agent = fallback;
    let rerouted = Dispatch {
        action: Action {
            meta: Arc::new(meta),
            payload: d.action.payload.clone(),
        },
        fallback: None,
        ..d
    };
    let action = rerouted.action.meta.clone();
    let monitor = rerouted.monitor.clone();
    match entry.tx.try_send(rerouted) {
        Ok(()) => {
            sink.emit(
                TelemetryKind::ActionRerouted {
                    action,
                    from,
                    reason: reason(),
                },
                monitor.as_ref(),
            );
            None
        }
        Err(err) => {
            // The fallback is full or gone: keep it here, for its own agent.
            let mut d = match err {
                TrySendError::Full(d) | TrySendError::Closed(d) => d,
            };
            let mut meta = (*d.action.meta).clone();
            meta.agent = from;
            d.action.meta = Arc::new(meta);
            Some(Held::New(d))
        }
    }
}
