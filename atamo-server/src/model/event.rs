//! Events and requests as a client sends them: the types `POST /v1/events`,
//! `POST /v1/events:batch`, `POST /v1/rules:dry-run` and `POST /v1/requests` read, which are
//! also their OpenAPI schemas.

use atamo_core::bounded::Wait;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// An event as a client sends it.
///
/// ```json
/// {"type": "order.created", "user": "alice", "groups": ["sales"],
///  "payload": {"order": {"id": 7}}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "order.created", "user": "alice", "groups": ["sales"],
                         "payload": {"order": {"id": 7}}}))]
pub struct EventIn {
    /// The event type (registered).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who it is published for.
    pub user: String,
    /// The user's groups.
    #[serde(default, deserialize_with = "null_is_default")]
    pub groups: Vec<String>,
    /// The user's tenant. A tenant-bound key publishes into its own tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The payload: a JSON object, with the fields its type requires.
    pub payload: Map<String, Value>,
    /// Ask for the event's steps to be kept for `GET /v1/events/{id}` (they always are when the
    /// store keeps an audit log; this makes the answer carry the link).
    #[serde(default, deserialize_with = "null_is_default")]
    pub monitor: bool,
    /// Events with the same key within the dedupe window are accepted once; the second
    /// publish gets the first receipt (1 to 256 bytes).
    #[serde(default)]
    pub dedupe_key: Option<String>,
}

/// A request: an event whose agents' answers the client collects, optionally waiting for them.
///
/// ```json
/// {"type": "stock.check", "user": "alice", "payload": {"sku": "A-1"}, "wait_ms": 2000}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"type": "stock.check", "user": "alice", "payload": {"sku": "A-1"},
                         "wait_ms": 2000}))]
pub struct RequestIn {
    /// The event type (registered).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who it is sent for.
    pub user: String,
    /// The user's groups.
    #[serde(default, deserialize_with = "null_is_default")]
    pub groups: Vec<String>,
    /// The user's tenant. A tenant-bound key sends into its own tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The payload: a JSON object, with the fields its type requires.
    pub payload: Map<String, Value>,
    /// Keep the event's steps for `GET /v1/events/{id}`.
    #[serde(default, deserialize_with = "null_is_default")]
    pub monitor: bool,
    /// Requests with the same key within the dedupe window are accepted once.
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// Wait up to this long (milliseconds; at most `[http] request_wait_max`) for the answers:
    /// 200 with them if the request completes in time, else 202.
    #[serde(default)]
    pub wait_ms: Option<Wait>,
}

impl RequestIn {
    /// The event it carries, and how long to wait.
    pub fn into_parts(self) -> (EventIn, Option<Wait>) {
        (
            EventIn {
                event_type: self.event_type,
                user: self.user,
                groups: self.groups,
                tenant: self.tenant,
                payload: self.payload,
                monitor: self.monitor,
                dedupe_key: self.dedupe_key,
            },
            self.wait_ms,
        )
    }
}

/// `null` read as the type's default (`"groups": null` is no groups).
fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::body::read;

    #[test]
    fn the_examples_read() {
        let e: EventIn = read(
            br#"{"type": "order.created", "user": "alice", "groups": null, "monitor": null,
                 "payload": {"order": {"id": 7}}}"#,
        )
        .unwrap();
        assert!(e.groups.is_empty() && !e.monitor);
        let r: RequestIn =
            read(br#"{"type": "t", "user": "u", "payload": {}, "wait_ms": 5}"#).unwrap();
        let (_, wait) = r.into_parts();
        assert_eq!(wait.unwrap().as_millis(), 5);
    }

    #[test]
    fn every_bad_field_of_an_event_is_named() {
        let problems = read::<EventIn>(
            br#"{"type": 3, "groups": ["ok", 4], "payload": [], "monitor": "yes",
                 "colour": "red", "wait_ms": 5}"#,
        )
        .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|(f, _)| f.as_str()).collect();
        for f in [
            "type",
            "groups[1]",
            "payload",
            "monitor",
            "colour",
            "wait_ms",
            "user",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let problems =
            read::<RequestIn>(br#"{"type": "t", "user": "u", "payload": {}, "wait_ms": -1}"#)
                .unwrap_err();
        assert_eq!(problems[0].0, "wait_ms");
    }
}
