//! Reading an event as a client sends it: read as [`EventIn`] (its schema), every bad field
//! named, its names checked, the caller's tenant applied.

use atamo_core::bounded::Wait;
use atamo_core::ids::{EventType, GroupId, TenantId, UserId};
use atamo_core::message::{Event, Principal};
use serde_json::Value;

use crate::api::auth::Caller;
use crate::api::error::FieldError;
pub use crate::model::EventIn;
use crate::model::{body, RequestIn};

/// What a request adds to an event.
pub(crate) struct Parsed {
    pub event: Event,
    pub monitor: bool,
    pub wait_ms: Option<u64>,
}

fn name_problem(field: &str, r: Result<(), atamo_core::ids::NameError>, out: &mut Vec<FieldError>) {
    if let Err(e) = r {
        out.push(FieldError {
            field: field.to_owned(),
            message: e.to_string(),
        });
    }
}

/// Reads an event object (a request's, with `wait_ms`, when `with_wait`) as [`EventIn`] or
/// [`RequestIn`], naming every bad field (prefixed with `prefix`), checks its names, and
/// applies the caller's tenant.
pub(crate) fn parse_event(
    value: Value,
    prefix: &str,
    with_wait: bool,
    caller: &Caller,
) -> Result<Parsed, Vec<FieldError>> {
    let repair = body::is_small(&value);
    let (read, problems) = if with_wait {
        let (r, p) = body::read_all::<RequestIn>(value, prefix, repair);
        (r.map(RequestIn::into_parts), p)
    } else {
        let (r, p) = body::read_all::<EventIn>(value, prefix, repair);
        (r.map(|e| (e, None)), p)
    };
    let mut errors: Vec<FieldError> = problems
        .into_iter()
        .map(|(field, message)| FieldError { field, message })
        .collect();
    let Some((event, wait)) = read else {
        return Err(errors);
    };
    match check_event(event, wait, prefix, caller) {
        Ok(parsed) if errors.is_empty() => Ok(parsed),
        Ok(_) => Err(errors),
        Err(more) => {
            for e in more {
                if !errors.iter().any(|f| f.field == e.field) {
                    errors.push(e);
                }
            }
            Err(errors)
        }
    }
}

/// Checks the names of an event read as [`EventIn`] and applies the caller's tenant.
fn check_event(
    ev: EventIn,
    wait: Option<Wait>,
    prefix: &str,
    caller: &Caller,
) -> Result<Parsed, Vec<FieldError>> {
    let mut errors = Vec::new();
    let f = |name: &str| format!("{prefix}{name}");
    let EventIn {
        event_type,
        user,
        groups,
        mut tenant,
        payload,
        monitor,
        dedupe_key,
    } = ev;
    name_problem(
        &f("type"),
        EventType::from(event_type.as_str()).validate(),
        &mut errors,
    );
    name_problem(
        &f("user"),
        UserId::from(user.as_str()).validate(),
        &mut errors,
    );
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
    let mut principal = Principal::user(user);
    for g in groups {
        principal = principal.in_group(g);
    }
    if let Some(t) = tenant {
        principal = principal.in_tenant(t);
    }
    let mut builder = Event::builder(event_type, principal).payload(Value::Object(payload));
    if let Some(k) = dedupe_key {
        builder = builder.dedupe_key(k);
    }
    Ok(Parsed {
        event: builder.build(),
        monitor,
        wait_ms: wait.map(Wait::as_millis),
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
