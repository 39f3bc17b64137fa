//! The audit record of a telemetry step: what a stateful hub writes to its store's audit log.

use serde_json::Value;

use super::event::{TelemetryEvent, TelemetryKind};
use crate::ids::AgentId;
use crate::store::AuditRecord;

/// Builds the audit record of a telemetry step.
pub fn audit_record(step: &TelemetryEvent) -> AuditRecord {
    let event = step.event();
    let action = step.action();
    let agent = action
        .map(|a| a.agent.clone())
        .or_else(|| step_agent(&step.kind));
    AuditRecord {
        seq: 0,
        at: step.at,
        step: step.name().to_owned(),
        event_id: event.map(|e| e.id),
        correlation_id: event.map(|e| e.correlation_id),
        request_id: event.and_then(|e| e.request),
        action_id: action.map(|a| a.id),
        event_type: event.map(|e| e.event_type.clone()),
        user: event.map(|e| e.principal.user.clone()),
        tenant: event.and_then(|e| e.principal.tenant.clone()),
        agent,
        detail: compact(step),
    }
}

/// The step as JSON, less what the record's columns already hold (time, step name, the ids,
/// the event's type, user and tenant, the agent): about half the bytes, and the audit log's
/// writes are most of a stateful hub's cost. The `accepted` step keeps what else the event
/// header has (groups, dedupe key, origin); action steps keep the attempt, action type, rule
/// and provider.
fn compact(step: &TelemetryEvent) -> Value {
    let mut v = serde_json::to_value(step).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("at");
        obj.remove("kind");
        if let Some(event) = obj.get_mut("event").and_then(Value::as_object_mut) {
            for column in ["id", "type", "correlation_id", "request_id"] {
                event.remove(column);
            }
            if let Some(p) = event.get_mut("principal").and_then(Value::as_object_mut) {
                p.remove("user");
                p.remove("tenant");
                if p.is_empty() {
                    event.remove("principal");
                }
            }
            if event.is_empty() {
                obj.remove("event");
            }
        }
        if let Some(action) = obj.get_mut("action").and_then(Value::as_object_mut) {
            for column in ["event", "id", "agent"] {
                action.remove(column);
            }
        }
        if obj.get("agent").and_then(Value::as_str).is_some() {
            obj.remove("agent");
        }
    }
    v
}

fn step_agent(kind: &TelemetryKind) -> Option<AgentId> {
    use TelemetryKind::*;
    match kind {
        RuleMatched { agent, .. } | RouteSuppressed { agent, .. } => Some(agent.clone()),
        _ => None,
    }
}
