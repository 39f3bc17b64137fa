//! The stored forms of events and actions, and a claimed action made a dispatch again.

use std::sync::Arc;

use crate::hub::dispatch::Dispatch;
use crate::message::{Action, ActionMeta, Event, EventMeta, Origin, Timestamp};
use crate::rules::Sharing;
use crate::store::{ActionRecord, Claimed, EventHeader, EventRecord, OriginRecord};

/// The stored form of an event.
pub(crate) fn event_record(event: &Event, at: Timestamp) -> EventRecord {
    let m = event.meta();
    EventRecord {
        id: m.id,
        event_type: m.event_type.clone(),
        principal: m.principal.clone(),
        correlation_id: m.correlation_id,
        dedupe_key: m.dedupe_key.as_deref().map(str::to_owned),
        origin: m.origin.as_ref().map(OriginRecord::from),
        request: m.request,
        payload: event.payload().clone(),
        accepted_at: at,
    }
}

/// The stored form of a dispatched action.
pub(crate) fn action_record(d: &Dispatch) -> ActionRecord {
    let m = &d.action.meta;
    let e = &m.event;
    ActionRecord {
        id: m.id,
        agent: m.agent.clone(),
        action_type: m.action_type.clone(),
        rule: m.rule.clone(),
        provider: m.provider.clone(),
        event: EventHeader {
            id: e.id,
            event_type: e.event_type.clone(),
            principal: e.principal.clone(),
            correlation_id: e.correlation_id,
            dedupe_key: e.dedupe_key.as_deref().map(str::to_owned),
            origin: e.origin.as_ref().map(OriginRecord::from),
        },
        request: e.request,
        payload: d.action.payload().clone(),
        retry: d.retry,
        fallback: d.fallback.clone(),
    }
}

/// A claimed action, ready for its agent's worker.
pub(crate) fn dispatch_of(claimed: Claimed) -> Dispatch {
    let Claimed { record, attempt } = claimed;
    let h = record.event;
    let event = Arc::new(EventMeta {
        id: h.id,
        event_type: h.event_type,
        principal: h.principal,
        correlation_id: h.correlation_id,
        dedupe_key: h.dedupe_key.map(Arc::from),
        origin: h.origin.map(|o| Origin {
            agent: o.agent,
            action: o.action,
        }),
        request: record.request,
    });
    let action = Action::new(
        ActionMeta {
            id: record.id,
            agent: record.agent,
            action_type: record.action_type,
            rule: record.rule,
            provider: record.provider,
            attempt,
            event,
        },
        Arc::new(record.payload),
    );
    Dispatch {
        action,
        monitor: None,
        request: None,
        sharing: Sharing::default(),
        retry: record.retry,
        fallback: record.fallback,
        first_attempt: None,
        lease: Some(attempt),
    }
}
