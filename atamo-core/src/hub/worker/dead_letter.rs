//! An action that failed for good: kept as a dead letter, alerted on, and published as an
//! `atamo.action.exhausted` event that rules can route.

use crate::failure::{EXHAUSTED_EVENT, STATUS_CHANGED_EVENT};
use crate::hub::dispatch::Dispatch;
use crate::hub::handle::HubHandle;
use crate::hub::supervise::spawn_logged;
use crate::message::{Event, Origin};
use crate::outcome::AgentError;
use crate::telemetry::{AlertKind, Sink, TelemetryKind};

/// An action failed for good: keep it as a dead letter, raise the alert, and publish the
/// `atamo.action.exhausted` event for the same user and correlation id (unless the action
/// was itself handling such an event, so that failures never feed on themselves).
pub(super) fn dead_letter(hub: &HubHandle, d: &Dispatch, error: &AgentError, sink: &mut Sink) {
    let meta = &d.action.meta;
    let attempts = meta.attempt;
    hub.shared
        .dead_letters
        .push(d.action.clone(), error.clone(), attempts);
    sink.emit(
        TelemetryKind::ActionDeadLettered {
            action: meta.clone(),
            error: error.clone(),
            attempts,
        },
        d.monitor.as_ref(),
    );
    sink.emit(
        TelemetryKind::Alert {
            alert: AlertKind::RetriesExhausted,
            agent: Some(meta.agent.clone()),
            raised: true,
            detail: format!(
                "action `{}` ({}) failed after {attempts} attempt(s): {error}",
                meta.id, meta.action_type
            ),
        },
        // An alert is the controller's, not a step of the client's event.
        None,
    );
    let event_type = meta.event.event_type.as_str();
    if event_type == EXHAUSTED_EVENT || event_type == STATUS_CHANGED_EVENT {
        return;
    }
    let payload = serde_json::json!({
        "action_id": meta.id,
        "action_type": meta.action_type,
        "agent": meta.agent,
        "attempts": attempts,
        "error": error,
        "event_id": meta.event.id,
        "event_type": meta.event.event_type,
        "payload": d.action.payload(),
    });
    let mut event = Event::builder(EXHAUSTED_EVENT, meta.event.principal.clone())
        .payload(payload)
        .correlation_id(meta.event.correlation_id)
        .build();
    // Like an agent's own follow-up: never routed back to the agent that failed.
    event.meta_mut().origin = Some(Origin {
        agent: meta.agent.clone(),
        action: meta.id,
    });
    let publisher = hub.clone();
    spawn_logged(&hub.shared.runtime, "exhausted_event", async move {
        if let Err(err) = publisher.publish(event).await {
            tracing::debug!(%err, "exhausted event not published");
        }
    });
}
