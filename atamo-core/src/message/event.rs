use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::Principal;
use crate::ids::{ActionId, AgentId, CorrelationId, EventId, EventType};

/// Something that happened, published by a client: "order.created by alice".
///
/// Cheap to clone: the header and the payload are shared. Build one with [`Event::new`] or
/// [`Event::builder`].
///
/// ```
/// use atamo_core::{Event, Principal};
/// use serde_json::json;
///
/// let event = Event::builder("order.created", Principal::user("alice").in_group("sales"))
///     .payload(json!({"order": {"id": 7}}))
///     .dedupe_key("order-7")
///     .build();
/// assert_eq!(event.event_type().as_str(), "order.created");
/// assert_eq!(event.principal().user.as_str(), "alice");
/// ```
#[derive(Clone)]
pub struct Event {
    pub(crate) meta: Arc<EventMeta>,
    pub(crate) payload: Arc<Value>,
}

/// Everything about an event but its payload. Telemetry and actions share it by `Arc`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMeta {
    /// The event's id, generated when it was built.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// Who it was published for.
    pub principal: Principal,
    /// Ties the event to the work it causes; follow-up events keep their cause's id.
    pub correlation_id: CorrelationId,
    /// A key under which repeated publishes of the same thing can be recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<Arc<str>>,
    /// Set when an agent published this event as a follow-up of one of its actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// Set when the event was sent as a request: the request's id.
    #[serde(rename = "request_id", skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::ids::RequestId>,
}

/// The agent action that published a follow-up event. The hub never routes a follow-up event
/// back to the agent that published it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The agent that published the event.
    pub agent: AgentId,
    /// The action it was performing.
    pub action: ActionId,
}

impl Event {
    /// An event of `event_type` for `principal` with a payload, a new id and a new correlation id.
    pub fn new(event_type: impl Into<EventType>, principal: Principal, payload: Value) -> Self {
        Self::builder(event_type, principal)
            .payload(payload)
            .build()
    }

    /// Starts building an event.
    pub fn builder(event_type: impl Into<EventType>, principal: Principal) -> EventBuilder {
        EventBuilder {
            meta: EventMeta {
                id: EventId::generate(),
                event_type: event_type.into(),
                principal,
                correlation_id: CorrelationId::generate(),
                dedupe_key: None,
                origin: None,
                request: None,
            },
            payload: Value::Object(Default::default()),
        }
    }

    /// The event's id.
    pub fn id(&self) -> EventId {
        self.meta.id
    }

    /// Its type.
    pub fn event_type(&self) -> &EventType {
        &self.meta.event_type
    }

    /// Who it was published for.
    pub fn principal(&self) -> &Principal {
        &self.meta.principal
    }

    /// Its correlation id.
    pub fn correlation_id(&self) -> CorrelationId {
        self.meta.correlation_id
    }

    /// Its dedupe key, if any.
    pub fn dedupe_key(&self) -> Option<&str> {
        self.meta.dedupe_key.as_deref()
    }

    /// The agent action that published it, for follow-up events.
    pub fn origin(&self) -> Option<&Origin> {
        self.meta.origin.as_ref()
    }

    /// The header shared with telemetry and actions.
    pub fn meta(&self) -> &Arc<EventMeta> {
        &self.meta
    }

    /// The JSON payload.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The payload as a shared value.
    pub fn shared_payload(&self) -> &Arc<Value> {
        &self.payload
    }

    pub(crate) fn meta_mut(&mut self) -> &mut EventMeta {
        Arc::make_mut(&mut self.meta)
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.meta.id)
            .field("type", &self.meta.event_type)
            .field("user", &self.meta.principal.user)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Repr<'a> {
            #[serde(flatten)]
            meta: &'a EventMeta,
            payload: &'a Value,
        }
        Repr {
            meta: &self.meta,
            payload: &self.payload,
        }
        .serialize(s)
    }
}

/// Builds an [`Event`].
#[must_use]
#[derive(Debug)]
pub struct EventBuilder {
    meta: EventMeta,
    payload: Value,
}

impl EventBuilder {
    /// The JSON payload (an object; anything else is rejected when published).
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }

    /// Uses an existing correlation id, to tie this event to earlier work.
    pub fn correlation_id(mut self, id: CorrelationId) -> Self {
        self.meta.correlation_id = id;
        self
    }

    /// Sets a dedupe key.
    pub fn dedupe_key(mut self, key: impl Into<Arc<str>>) -> Self {
        self.meta.dedupe_key = Some(key.into());
        self
    }

    /// Uses a given event id instead of a generated one.
    pub fn id(mut self, id: EventId) -> Self {
        self.meta.id = id;
        self
    }

    /// Finishes the event.
    pub fn build(self) -> Event {
        Event {
            meta: Arc::new(self.meta),
            payload: Arc::new(self.payload),
        }
    }
}
