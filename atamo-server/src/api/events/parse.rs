//! Reading an event as a client sends it: every bad field named, the caller's tenant applied.

use atamo_core::ids::{EventType, GroupId, TenantId, UserId};
use atamo_core::message::{Event, Principal};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::error::FieldError;

/// An event as a client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct EventIn {
    /// The event type (registered).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who it is published for.
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's tenant. A tenant-bound key publishes into its own tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The payload: a JSON object.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Ask for the event's steps to be kept for `GET /v1/events/{id}` (they always are when the
    /// store keeps an audit log; this makes the answer carry the link).
    #[serde(default)]
    pub monitor: bool,
    /// Events with the same key within the dedupe window are accepted once; the second
    /// publish gets the first receipt.
    #[serde(default)]
    pub dedupe_key: Option<String>,
}

/// What a request adds to an event.
pub(crate) struct Parsed {
    pub event: Event,
    pub monitor: bool,
    pub wait_ms: Option<u64>,
}

const EVENT_FIELDS: &[&str] = &[
    "type",
    "user",
    "groups",
    "tenant",
    "payload",
    "monitor",
    "dedupe_key",
];

fn name_problem(field: &str, r: Result<(), atamo_core::ids::NameError>, out: &mut Vec<FieldError>) {
    if let Err(e) = r {
        out.push(FieldError {
            field: field.to_owned(),
            message: e.to_string(),
        });
    }
}

/// Reads an event object, naming every bad field (prefixed with `prefix`), and applies the
/// caller's tenant.
pub(crate) fn parse_event(
    value: Value,
    prefix: &str,
    with_wait: bool,
    caller: &Caller,
) -> Result<Parsed, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = |name: &str| format!("{prefix}{name}");
    let Value::Object(mut map) = value else {
        return Err(vec![FieldError {
            field: if prefix.is_empty() {
                "body".into()
            } else {
                prefix.trim_end_matches('.').to_owned()
            },
            message: "must be a JSON object".into(),
        }]);
    };
    for key in map.keys() {
        if !(EVENT_FIELDS.contains(&key.as_str()) || (with_wait && key == "wait_ms")) {
            errors.push(FieldError {
                field: f(key),
                message: "unknown field".into(),
            });
        }
    }
    let mut string =
        |map: &mut Map<String, Value>, name: &str, required: bool| match map.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                errors.push(FieldError {
                    field: f(name),
                    message: "is required".into(),
                });
                None
            }
            Some(_) => {
                errors.push(FieldError {
                    field: f(name),
                    message: "must be a string".into(),
                });
                None
            }
        };
    let event_type = string(&mut map, "type", true);
    let user = string(&mut map, "user", true);
    let mut tenant = string(&mut map, "tenant", false);
    let dedupe_key = string(&mut map, "dedupe_key", false);
    let mut groups = Vec::new();
    match map.remove("groups") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, g) in items.into_iter().enumerate() {
                match g {
                    Value::String(s) => groups.push(s),
                    _ => errors.push(FieldError {
                        field: f(&format!("groups[{i}]")),
                        message: "must be a string".into(),
                    }),
                }
            }
        }
        Some(_) => errors.push(FieldError {
            field: f("groups"),
            message: "must be an array of strings".into(),
        }),
    }
    let payload = match map.remove("payload") {
        Some(v @ Value::Object(_)) => Some(v),
        None => {
            errors.push(FieldError {
                field: f("payload"),
                message: "is required".into(),
            });
            None
        }
        Some(_) => {
            errors.push(FieldError {
                field: f("payload"),
                message: "must be a JSON object".into(),
            });
            None
        }
    };
    let monitor = match map.remove("monitor") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            errors.push(FieldError {
                field: f("monitor"),
                message: "must be true or false".into(),
            });
            false
        }
    };
    let wait_ms = match map.remove("wait_ms") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(ms) => Some(ms),
            None => {
                errors.push(FieldError {
                    field: f("wait_ms"),
                    message: "must be a whole number of milliseconds".into(),
                });
                None
            }
        },
    };
    if let Some(t) = &event_type {
        name_problem(
            &f("type"),
            EventType::from(t.as_str()).validate(),
            &mut errors,
        );
    }
    if let Some(u) = &user {
        name_problem(&f("user"), UserId::from(u.as_str()).validate(), &mut errors);
    }
    for (i, g) in groups.iter().enumerate() {
        name_problem(
            &f(&format!("groups[{i}]")),
            GroupId::from(g.as_str()).validate(),
            &mut errors,
        );
    }
    if let Some(k) = &dedupe_key {
        if k.is_empty() || k.len() > 256 {
            errors.push(FieldError {
                field: f("dedupe_key"),
                message: "must be 1 to 256 bytes".into(),
            });
        }
    }
    match (&caller.tenant, &tenant) {
        (Some(mine), Some(t)) if mine.as_str() != t => errors.push(FieldError {
            field: f("tenant"),
            message: format!("this key publishes into tenant `{mine}` only"),
        }),
        (Some(mine), None) => tenant = Some(mine.to_string()),
        _ => {}
    }
    if let Some(t) = &tenant {
        name_problem(
            &f("tenant"),
            TenantId::from(t.as_str()).validate(),
            &mut errors,
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(event_type), Some(user), Some(payload)) = (event_type, user, payload) else {
        return Err(errors);
    };
    let mut principal = Principal::user(user);
    for g in groups {
        principal = principal.in_group(g);
    }
    if let Some(t) = tenant {
        principal = principal.in_tenant(t);
    }
    let mut builder = Event::builder(event_type, principal).payload(payload);
    if let Some(k) = dedupe_key {
        builder = builder.dedupe_key(k);
    }
    Ok(Parsed {
        event: builder.build(),
        monitor,
        wait_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::api::auth::Role;
    use serde_json::json;

    fn client(tenant: Option<&str>) -> Caller {
        Caller {
            key: "k".into(),
            role: Role::Client,
            tenant: tenant.map(Into::into),
        }
    }

    #[test]
    fn every_bad_field_is_listed() {
        let errors = parse_event(
            json!({"type": 3, "groups": ["ok", 4], "payload": [], "monitor": "yes",
                   "colour": "red", "tenant": "other"}),
            "",
            false,
            &client(Some("acme")),
        )
        .err()
        .unwrap();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "colour",
            "type",
            "user",
            "groups[1]",
            "payload",
            "monitor",
            "tenant",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let errors = parse_event(json!([]), "events[2].", true, &client(None))
            .err()
            .unwrap();
        assert_eq!(errors[0].field, "events[2]");
    }

    #[test]
    fn a_tenant_bound_key_publishes_into_its_tenant() {
        let p = parse_event(
            json!({"type": "t", "user": "u", "payload": {}, "wait_ms": 5}),
            "",
            true,
            &client(Some("acme")),
        )
        .ok()
        .unwrap();
        assert_eq!(
            p.event.principal().tenant.as_ref().unwrap().as_str(),
            "acme"
        );
        assert_eq!(p.wait_ms, Some(5));
    }
}
