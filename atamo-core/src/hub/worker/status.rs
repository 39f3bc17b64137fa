//! Telling everyone that an agent's status changed.

use crate::failure::STATUS_CHANGED_EVENT;
use crate::hub::handle::HubHandle;
use crate::hub::supervise::spawn_logged;
use crate::message::Event;
use crate::status::{AgentState, AgentStatus};
use crate::telemetry::TelemetryKind;

/// Tells everyone an agent's status changed: telemetry, and an `atamo.agent.status_changed`
/// event from the hub itself (user `atamo`, group `atamo.controller`) that rules can route,
/// for example to the agent's owner.
pub(crate) fn announce(hub: &HubHandle, from: AgentState, status: AgentStatus) {
    tracing::info!(agent = %status.agent, ?from, to = ?status.state, reason = %status.reason, "agent status changed");
    let payload = serde_json::json!({
        "agent": status.agent,
        "from": from,
        "to": status.state,
        "reason": status.reason,
        "manual": status.manual,
        "owner": status.owner,
        "version": status.version,
    });
    hub.shared
        .bus
        .emit(TelemetryKind::AgentStatusChanged { from, status });
    let event = Event::new(
        STATUS_CHANGED_EVENT,
        crate::message::Principal::user("atamo").in_group("atamo.controller"),
        payload,
    );
    let publisher = hub.clone();
    spawn_logged(&hub.shared.runtime, "status_event", async move {
        if let Err(err) = publisher.publish(event).await {
            tracing::debug!(%err, "status event not published");
        }
    });
}
