//! Events: publish one or many, look one up with the path it took, list stored ones.

use std::sync::Arc;

use atamo_core::ids::{EventId, EventType, GroupId, TenantId, UserId};
use atamo_core::message::{Event, Principal, Problem as HubProblem};
use atamo_core::store::{AuditQuery, AuditRecord, EventQuery, EventRecord, PayloadFilter};
use atamo_core::{PublishError, Receipt};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, FieldError};
use super::query::Query;
use super::{Authed, Shared};

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

/// The hub's reasons for refusing an event, as fields.
pub(crate) fn hub_problems(problems: &[HubProblem], prefix: &str) -> Vec<FieldError> {
    problems
        .iter()
        .map(|p| FieldError {
            field: match p {
                HubProblem::UnknownEventType { .. } => format!("{prefix}type"),
                HubProblem::MissingField { field } => format!("{prefix}payload.{field}"),
                HubProblem::PayloadNotObject => format!("{prefix}payload"),
                _ => format!("{prefix}body"),
            },
            message: p.to_string(),
        })
        .collect()
}

/// A publish error as an answer.
pub(crate) fn publish_error(e: PublishError, prefix: &str) -> ApiError {
    match e {
        PublishError::Rejected { problems, .. } => {
            ApiError::invalid(hub_problems(&problems, prefix))
        }
        PublishError::ShuttingDown { .. } => {
            ApiError::unavailable("the hub is shutting down and accepts no more events")
        }
        PublishError::Store { error, .. } => {
            ApiError::unavailable(format!("the event could not be stored: {error}"))
        }
        other => ApiError::internal(other),
    }
}

/// A monitored event's steps, as its monitor stream delivers them.
#[derive(Debug)]
pub struct Monitored {
    /// The event's tenant.
    pub tenant: Option<TenantId>,
    /// Its steps so far, oldest first.
    pub steps: std::sync::Mutex<Vec<AuditRecord>>,
}

/// Publishes `event`, keeping its steps when `monitor` asks for it.
pub(crate) async fn publish_one(
    state: &Shared,
    event: Event,
    monitor: bool,
) -> Result<Receipt, PublishError> {
    if !monitor {
        return state.hub.publish(event).await;
    }
    let tenant = event.principal().tenant.clone();
    let (receipt, mut stream) = state.hub.publish_monitored(event).await?;
    let kept = Arc::new(Monitored {
        tenant,
        steps: std::sync::Mutex::new(Vec::new()),
    });
    state.monitored.insert(receipt.event_id, kept.clone());
    tokio::spawn(async move {
        while let Some(step) = stream.next().await {
            if let Ok(mut steps) = kept.steps.lock() {
                steps.push(atamo_core::telemetry::audit_record(&step));
            }
        }
    });
    Ok(receipt)
}

/// What publishing answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The event's id.
    #[schema(value_type = String)]
    pub event_id: EventId,
    /// Its correlation id: every follow-up event carries it.
    #[schema(value_type = String)]
    pub correlation_id: String,
    /// Where its state and path can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor: Option<String>,
}

fn accepted(r: Receipt, monitor: bool) -> Accepted {
    Accepted {
        event_id: r.event_id,
        correlation_id: r.correlation_id.to_string(),
        monitor: monitor.then(|| format!("/v1/events/{}", r.event_id)),
    }
}

/// Publishes an event: 202 once the hub has it (in a stateful hub, once it is committed).
#[utoipa::path(post, path = "/v1/events", tag = "messages",
    request_body = EventIn,
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 503, description = "Shutting down, or the store cannot be reached", body = super::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn publish(
    State(state): State<Shared>,
    Authed(caller): Authed,
    super::error::Body(body): super::error::Body<Value>,
) -> Result<Response, ApiError> {
    let parsed = parse_event(body, "", false, &caller).map_err(ApiError::invalid)?;
    let receipt = publish_one(&state, parsed.event, parsed.monitor)
        .await
        .map_err(|e| publish_error(e, ""))?;
    let location = format!("/v1/events/{}", receipt.event_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(accepted(receipt, parsed.monitor)),
    )
        .into_response())
}

/// Many events in one call.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchIn {
    /// The events (at most 1,000).
    #[schema(value_type = Vec<EventIn>)]
    pub events: Vec<Value>,
}

/// One event's outcome in a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    /// Accepted.
    Accepted(Accepted),
    /// Refused (the store could not take it, or the hub is stopping).
    Refused(super::error::Problem),
}

/// The outcomes, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    /// One per event.
    pub results: Vec<BatchItem>,
    /// How many were accepted.
    pub accepted: usize,
}

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// Publishes many events. Every event is checked first: if any is invalid, none is published
/// and every bad field of every event is listed (`events[3].payload`).
#[utoipa::path(post, path = "/v1/events:batch", tag = "messages",
    request_body = BatchIn,
    responses(
        (status = 202, description = "Published; each event's outcome in order", body = BatchOut),
        (status = 400, description = "Some event is invalid; nothing was published", body = super::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn publish_batch(
    State(state): State<Shared>,
    Authed(caller): Authed,
    super::error::Body(body): super::error::Body<BatchIn>,
) -> Result<Response, ApiError> {
    if body.events.is_empty() || body.events.len() > MAX_BATCH {
        return Err(ApiError::field(
            "events",
            format!("must hold 1 to {MAX_BATCH} events"),
        ));
    }
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(body.events.len());
    for (i, v) in body.events.into_iter().enumerate() {
        let prefix = format!("events[{i}].");
        match parse_event(v, &prefix, false, &caller) {
            Ok(p) => {
                let dry = state.hub.dry_run(&p.event);
                if dry.accepted() {
                    parsed.push(p);
                } else {
                    errors.extend(hub_problems(&dry.problems, &prefix));
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    // Published together, so a stateful hub commits them in a few group commits.
    let outcomes = futures_util::future::join_all(parsed.into_iter().map(|p| {
        let state = state.clone();
        async move { (publish_one(&state, p.event, p.monitor).await, p.monitor) }
    }))
    .await;
    let mut results = Vec::with_capacity(outcomes.len());
    let mut n = 0;
    for (i, (outcome, monitor)) in outcomes.into_iter().enumerate() {
        results.push(match outcome {
            Ok(r) => {
                n += 1;
                BatchItem::Accepted(accepted(r, monitor))
            }
            Err(e) => BatchItem::Refused(publish_error(e, &format!("events[{i}].")).problem()),
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchOut {
            results,
            accepted: n,
        }),
    )
        .into_response())
}

/// Where an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Accepted, actions under way.
    InProgress,
    /// Every action it caused succeeded.
    Done,
    /// Some action was given up (it is a dead letter).
    Failed,
    /// No rule sent it anywhere.
    NoRoute,
    /// The hub refused it.
    Rejected,
}

/// An event, where it stands, and the path it took.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The event as stored.
    #[schema(value_type = Object)]
    pub event: Option<EventRecord>,
    /// Where it stands.
    pub state: EventState,
    /// Every step, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub path: Vec<AuditRecord>,
}

/// The state a path shows.
pub(crate) fn state_of(path: &[AuditRecord]) -> EventState {
    let has = |s: &str| path.iter().any(|r| r.step == s);
    if has("rejected") {
        return EventState::Rejected;
    }
    if has("action_dead_lettered") {
        return EventState::Failed;
    }
    let dispatched: std::collections::HashSet<_> = path
        .iter()
        .filter(|r| r.step == "action_dispatched")
        .filter_map(|r| r.action_id)
        .collect();
    if dispatched.is_empty() {
        return if has("no_route") {
            EventState::NoRoute
        } else {
            EventState::InProgress
        };
    }
    let finished: std::collections::HashSet<_> = path
        .iter()
        .filter(|r| r.step == "action_succeeded")
        .filter_map(|r| r.action_id)
        .collect();
    if dispatched.iter().all(|a| finished.contains(a)) {
        EventState::Done
    } else {
        EventState::InProgress
    }
}

/// Reads every page of an audit query, oldest first (bounded: a path longer than this is cut).
pub(crate) async fn whole_path(
    state: &Shared,
    mut query: AuditQuery,
) -> Result<Vec<AuditRecord>, ApiError> {
    const MAX_STEPS: usize = 10_000;
    query.limit = atamo_core::store::MAX_PAGE;
    let mut out = Vec::new();
    loop {
        let page = state.store.audit(query.clone()).await?;
        out.extend(page.items);
        match page.next {
            Some(c) if out.len() < MAX_STEPS => query.cursor = Some(c),
            _ => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// An event's state and every step it took.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "messages",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "The event", body = EventView),
        (status = 404, description = "No such event (or not yours)", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn get_event(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<EventView>, ApiError> {
    let id: EventId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("event `{id}`")))?;
    let (event, path, tenant) = if let Some(m) = state.monitored.get(&id) {
        let path = m.steps.lock().map(|s| s.clone()).unwrap_or_default();
        let event = if state.stateful {
            state.store.event(id).await?
        } else {
            None
        };
        (event, path, m.tenant.clone())
    } else {
        let event = state.store.event(id).await?;
        let path = whole_path(
            &state,
            AuditQuery {
                event_id: Some(id),
                ..AuditQuery::default()
            },
        )
        .await?;
        let tenant = match (&event, path.first()) {
            (Some(e), _) => e.principal.tenant.clone(),
            (None, Some(r)) => r.tenant.clone(),
            (None, None) if !state.stateful => {
                return Err(ApiError::not_found(format!(
                    "event `{id}`: this service keeps no events (its store is `memory`); \
                     publish with \"monitor\": true to keep an event's steps for the keep-alive time"
                )))
            }
            (None, None) => return Err(ApiError::not_found(format!("event `{id}`"))),
        };
        (event, path, tenant)
    };
    if !caller.may_see(tenant.as_ref()) {
        return Err(ApiError::not_found(format!("event `{id}`")));
    }
    Ok(Json(EventView {
        state: state_of(&path),
        event,
        path,
    }))
}

/// Lists stored events newest first, filtered by type, user, tenant, time and payload fields
/// (`payload.state=open`: a string equal to the value, or a number or boolean written the
/// same way).
#[utoipa::path(get, path = "/v1/events", tag = "messages",
    params(
        ("type" = Option<String>, Query, description = "Event type"),
        ("user" = Option<String>, Query, description = "User"),
        ("tenant" = Option<String>, Query, description = "Tenant"),
        ("since" = Option<String>, Query, description = "Accepted at or after (RFC 3339 or unix ms)"),
        ("until" = Option<String>, Query, description = "Accepted before"),
        ("payload.<field>" = Option<String>, Query, description = "A payload field's value; nested fields with dots"),
        ("cursor" = Option<String>, Query, description = "From the previous page's `next`"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (100)")),
    responses(
        (status = 200, description = "A page of events", body = Object),
        (status = 400, description = "A bad parameter", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn list(
    State(state): State<Shared>,
    Authed(caller): Authed,
    mut q: Query,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut query = EventQuery {
        event_type: q.get("type").map(EventType::from),
        user: q.get("user").map(UserId::from),
        since: q.time("since"),
        until: q.time("until"),
        cursor: q.cursor(),
        limit: q.limit(),
        ..EventQuery::default()
    };
    let asked = q.get("tenant").map(TenantId::from);
    for (field, value) in q.with_prefix("payload.") {
        if field.is_empty() || field.split('.').any(str::is_empty) {
            q.problem(
                &format!("payload.{field}"),
                "name a payload field: `payload.state=open`",
            );
            continue;
        }
        query.payload.push(PayloadFilter::parse(&field, value));
    }
    if query.payload.len() > atamo_core::store::MAX_PAYLOAD_FILTERS {
        q.problem(
            "payload",
            format!(
                "at most {} payload filters",
                atamo_core::store::MAX_PAYLOAD_FILTERS
            ),
        );
    }
    match caller.scope(asked) {
        Ok(t) => query.tenant = t,
        Err(_) => q.problem("tenant", "this key sees its own tenant only"),
    }
    q.finish()?;
    let page = state.store.events(query).await?;
    let items: Vec<EventRecord> = page
        .items
        .into_iter()
        .filter(|e| caller.may_see(e.principal.tenant.as_ref()))
        .collect();
    Ok(Json(serde_json::json!({
        "items": items,
        "next": page.next.map(|c| c.to_string()),
    })))
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
