//! Operations: the audit log, dead letters, the telemetry stream, API keys.

use std::convert::Infallible;

use atamo_core::failure::RedriveError;
use atamo_core::ids::{ActionId, AgentId, EventType, TenantId, UserId};
use atamo_core::store::AuditQuery;
use atamo_core::telemetry::TelemetryRecvError;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{NewKey, Role};
use super::error::{ApiError, Body};
use super::query::Query;
use super::{Authed, Shared};

/// The audit log, newest first: every step of every message, and every registry change.
#[utoipa::path(get, path = "/v1/audit", tag = "operations",
    params(
        ("user" = Option<String>, Query, description = "The event's user (or `key:<id>` for registry changes)"),
        ("agent" = Option<String>, Query, description = "Agent"),
        ("event_type" = Option<String>, Query, description = "Event type"),
        ("state" = Option<String>, Query, description = "The step (`accepted`, `action_succeeded`, `action_dead_lettered`, ...)"),
        ("tenant" = Option<String>, Query, description = "Tenant"),
        ("event_id" = Option<String>, Query, description = "Event"),
        ("correlation_id" = Option<String>, Query, description = "Correlation id"),
        ("request_id" = Option<String>, Query, description = "Request"),
        ("action_id" = Option<String>, Query, description = "Action"),
        ("since" = Option<String>, Query, description = "At or after (RFC 3339 or unix ms)"),
        ("until" = Option<String>, Query, description = "Before"),
        ("cursor" = Option<String>, Query, description = "From the previous page's `next`"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (100)")),
    responses(
        (status = 200, description = "A page of audit records", body = Object),
        (status = 400, description = "A bad parameter", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn audit(
    State(state): State<Shared>,
    Authed(caller): Authed,
    mut q: Query,
) -> Result<Json<Value>, ApiError> {
    fn id<T: std::str::FromStr>(v: &str) -> Result<T, String> {
        v.parse().map_err(|_| "not a valid id".to_owned())
    }
    let mut query = AuditQuery {
        user: q.get("user").map(UserId::from),
        agent: q.get("agent").map(AgentId::from),
        event_type: q.get("event_type").map(EventType::from),
        step: q.get("state"),
        event_id: q.parsed("event_id", id),
        correlation_id: q.parsed("correlation_id", id),
        request_id: q.parsed("request_id", id),
        action_id: q.parsed("action_id", id),
        since: q.time("since"),
        until: q.time("until"),
        cursor: q.cursor(),
        limit: q.limit(),
        ..AuditQuery::default()
    };
    match caller.scope(q.get("tenant").map(TenantId::from)) {
        Ok(t) => query.tenant = t,
        Err(_) => q.problem("tenant", "this key sees its own tenant only"),
    }
    q.finish()?;
    let page = state.store.audit(query).await?;
    let items: Vec<_> = page
        .items
        .into_iter()
        .filter(|r| caller.may_see(r.tenant.as_ref()))
        .collect();
    Ok(Json(json!({
        "items": items,
        "next": page.next.map(|c| c.to_string()),
    })))
}

/// Dead letters: actions given up after their retries, newest first. Durable ones come from
/// the store, page by page; the first page also lists those a memory-only route kept in this
/// node.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "operations",
    params(
        ("cursor" = Option<String>, Query, description = "From the previous page's `next`"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 1000 (100)")),
    responses((status = 200, description = "A page of dead letters", body = Object)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn dead_letters(
    State(state): State<Shared>,
    Authed(caller): Authed,
    mut q: Query,
) -> Result<Json<Value>, ApiError> {
    let cursor = q.cursor();
    let limit = q.limit();
    q.finish()?;
    let page = state.store.dead_letters(cursor, limit).await?;
    let items: Vec<_> = page
        .items
        .into_iter()
        .filter(|r| caller.may_see(r.record.event.principal.tenant.as_ref()))
        .collect();
    let memory: Vec<_> = if cursor.is_none() {
        state
            .control
            .dead_letters()
            .into_iter()
            .filter(|d| caller.may_see(d.action.meta().event.principal.tenant.as_ref()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "items": items,
        "memory": memory,
        "next": page.next.map(|c| c.to_string()),
    })))
}

/// Sends a dead letter to its agent again, as the same action.
#[utoipa::path(post, path = "/v1/dead-letters/{id}/redrive", tag = "operations",
    params(("id" = String, Path, description = "The action id")),
    responses(
        (status = 202, description = "Sent again", body = Object),
        (status = 404, description = "No dead letter of that id", body = super::error::Problem),
        (status = 409, description = "Its agent is gone", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn redrive(
    State(state): State<Shared>,
    Authed(_caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let action: ActionId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("dead letter `{id}`")))?;
    match state.control.redrive(action).await {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(json!({ "action_id": action }))).into_response()),
        Err(RedriveError::NotFound(_)) => Err(ApiError::not_found(format!("dead letter `{id}`"))),
        Err(e @ RedriveError::AgentGone(_)) => Err(ApiError::conflict(e.to_string())),
        Err(RedriveError::ShuttingDown) => Err(ApiError::unavailable("the hub is stopping")),
        Err(RedriveError::Store(e)) => Err(e.into()),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// The controller's stream: every telemetry step of the hub as Server-Sent Events (event name:
/// the step's kind; data: the step as JSON). A reader too slow for the hub gets a `lagged`
/// event saying how many steps it missed.
#[utoipa::path(get, path = "/v1/telemetry", tag = "operations",
    responses((status = 200, description = "text/event-stream of telemetry", content_type = "text/event-stream", body = String)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn telemetry(
    State(state): State<Shared>,
    Authed(_caller): Authed,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let sub = state.control.subscribe();
    let stop = state.shutdown.clone();
    let events = futures_util::stream::unfold(
        (sub, stop, std::collections::VecDeque::new(), false),
        |(mut sub, stop, mut pending, done)| async move {
            loop {
                if let Some(ev) = pending.pop_front() {
                    return Some((Ok(ev), (sub, stop, pending, done)));
                }
                if done {
                    return None;
                }
                tokio::select! {
                    r = sub.recv() => match r {
                        Ok(step) => {
                            let name = serde_json::to_value(&step)
                                .ok()
                                .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_owned)))
                                .unwrap_or_else(|| "step".into());
                            pending.push_back(
                                SseEvent::default().event(name).json_data(&step).unwrap_or_default(),
                            );
                        }
                        Err(TelemetryRecvError::Lagged { missed }) => {
                            pending.push_back(
                                SseEvent::default().event("lagged").data(json!({"missed": missed}).to_string()),
                            );
                        }
                        Err(_) => return None,
                    },
                    _ = stop.cancelled() => {
                        let ev = SseEvent::default().event("shutdown").data("the service is stopping");
                        return Some((Ok(ev), (sub, stop, pending, true)));
                    }
                }
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A key to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// `admin`, `operator`, `client` or `reader`.
    pub role: Role,
    /// Bind it to a tenant: it sees and publishes that tenant's messages only.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A name for people.
    #[serde(default)]
    pub name: Option<String>,
}

/// Makes an API key. The token in the answer is shown once: only its hash is kept.
#[utoipa::path(post, path = "/v1/keys", tag = "operations",
    request_body = KeyIn,
    responses(
        (status = 201, description = "The key, with its token", body = NewKey),
        (status = 400, description = "Invalid", body = super::error::Problem)),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_key(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(body): Body<KeyIn>,
) -> Result<Response, ApiError> {
    let tenant = match body.tenant {
        Some(t) => {
            let t = TenantId::from(t.as_str());
            t.validate()
                .map_err(|e| ApiError::field("tenant", e.to_string()))?;
            Some(t)
        }
        None => None,
    };
    let record = key_record(
        &caller,
        "created",
        &json!({"role": body.role, "tenant": tenant, "name": body.name}),
    );
    let key = state
        .keys
        .create(body.role, tenant, body.name, vec![record])
        .await?;
    let location = format!("/v1/keys/{}", key.info.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(key),
    )
        .into_response())
}

fn key_record(
    caller: &super::auth::Caller,
    change: &str,
    detail: &Value,
) -> atamo_core::store::AuditRecord {
    atamo_core::store::AuditRecord {
        seq: 0,
        at: atamo_core::message::Timestamp::now(),
        step: "key_changed".into(),
        event_id: None,
        correlation_id: None,
        request_id: None,
        action_id: None,
        event_type: None,
        user: Some(caller.audit_name().as_str().into()),
        tenant: None,
        agent: None,
        detail: json!({"change": change, "key": detail}),
    }
}

/// Every API key (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "operations",
    responses((status = 200, description = "The keys", body = Object)),
    security(("api_key" = ["admin"])))]
pub(crate) async fn list_keys(State(state): State<Shared>, Authed(_caller): Authed) -> Json<Value> {
    Json(json!({ "items": state.keys.list() }))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "operations",
    params(("id" = String, Path, description = "The key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = super::error::Problem)),
    security(("api_key" = ["admin"])))]
pub(crate) async fn revoke_key(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = key_record(&caller, "revoked", &json!({"id": id}));
    if state.keys.revoke(&id, vec![record]).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("key `{id}`")))
    }
}
