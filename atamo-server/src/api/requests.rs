//! Requests: send one (and optionally wait for its answers), poll it, follow it as a live feed,
//! cancel it.

use std::convert::Infallible;
use std::time::Duration;

use atamo_core::ids::RequestId;
use atamo_core::request::{RequestOptions, RequestStatus, RequestUpdate, WaitError};
use atamo_core::store::AuditQuery;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use super::events::{parse_event, publish_error};
use super::{Authed, Shared};

/// The answer to a request sent without waiting (or that did not finish in time).
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestAccepted {
    /// Collect the answers under this id.
    #[schema(value_type = String)]
    pub request_id: RequestId,
    /// The event carrying it.
    pub event_id: String,
    /// Its correlation id.
    pub correlation_id: String,
}

fn request_id(id: &str) -> Result<RequestId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("request `{id}`")))
}

/// Whether `caller` may see request `id`: its tenant comes from its stored audit (the hub's
/// request cache does not keep the principal).
async fn check_visible(state: &Shared, caller: &Caller, id: RequestId) -> Result<(), ApiError> {
    if caller.tenant.is_none() && caller.role != super::auth::Role::Client {
        return Ok(());
    }
    if let Some(tenant) = state.request_tenants.get(&id) {
        return if caller.may_see(tenant.as_ref()) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("request `{id}`")))
        };
    }
    let page = state
        .store
        .audit(AuditQuery {
            request_id: Some(id),
            step: Some("accepted".into()),
            limit: 1,
            ..AuditQuery::default()
        })
        .await?;
    match page.items.first() {
        Some(r) if caller.may_see(r.tenant.as_ref()) => Ok(()),
        _ => Err(ApiError::not_found(format!("request `{id}`"))),
    }
}

/// Sends a request. With `wait_ms`, answers 200 with every answer once the request completes
/// within that time; otherwise (or when it does not) 202 with the id to collect them under.
#[utoipa::path(post, path = "/v1/requests", tag = "messages",
    request_body = crate::model::RequestIn,
    responses(
        (status = 200, description = "Completed within wait_ms: state and answers", body = Object),
        (status = 202, description = "Accepted", body = RequestAccepted),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 503, description = "Shutting down, or the store cannot be reached", body = super::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn send(
    State(state): State<Shared>,
    Authed(caller): Authed,
    super::error::Body(body): super::error::Body<Value>,
) -> Result<Response, ApiError> {
    let parsed = parse_event(body, "", true, &caller).map_err(ApiError::invalid)?;
    let wait = parsed.wait_ms.map(Duration::from_millis);
    let tenant = parsed.event.principal().tenant.clone();
    if let Some(w) = wait {
        if w > state.settings.request_wait_max {
            return Err(ApiError::field(
                "wait_ms",
                format!("at most {} ms", state.settings.request_wait_max.as_millis()),
            ));
        }
    }
    let receipt = state
        .hub
        .request_with(parsed.event, RequestOptions::default())
        .await
        .map_err(|e| publish_error(e, ""))?;
    state.request_tenants.insert(receipt.request_id, tenant);
    let location = format!("/v1/requests/{}", receipt.request_id);
    let accepted = RequestAccepted {
        request_id: receipt.request_id,
        event_id: receipt.event_id.to_string(),
        correlation_id: receipt.correlation_id.to_string(),
    };
    if let Some(w) = wait.filter(|w| !w.is_zero()) {
        let waited = tokio::select! {
            r = state.hub.wait(receipt.request_id, w) => Some(r),
            _ = state.shutdown.cancelled() => None,
        };
        if let Some(Ok(snapshot)) = waited {
            return Ok((
                StatusCode::OK,
                [(header::LOCATION, location)],
                Json(snapshot),
            )
                .into_response());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(accepted),
    )
        .into_response())
}

/// A request's state and its answers so far. A request this node no longer holds in memory
/// (it expired from the cache, or the hub restarted) answers from the store's results while
/// they are kept.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "messages",
    params(("id" = String, Path, description = "The request id")),
    responses(
        (status = 200, description = "State and answers", body = Object),
        (status = 404, description = "Unknown, expired, or not yours", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn get_request(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = request_id(&id)?;
    check_visible(&state, &caller, id).await?;
    match state.hub.poll(id) {
        RequestStatus::Known(snapshot) => Ok(Json(json!(snapshot))),
        _ => {
            let stored = state.hub.stored_answers(id).await?;
            if stored.is_empty() {
                return Err(ApiError::not_found(format!(
                    "request `{id}` (unknown, or its answers are no longer kept)"
                )));
            }
            Ok(Json(json!({
                "request_id": id,
                "state": "stored",
                "answers": stored,
            })))
        }
    }
}

/// Cancels a running request: its agents see the cancellation.
#[utoipa::path(delete, path = "/v1/requests/{id}", tag = "messages",
    params(("id" = String, Path, description = "The request id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "Unknown or not yours", body = super::error::Problem),
        (status = 409, description = "It had already ended", body = super::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn cancel(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = request_id(&id)?;
    check_visible(&state, &caller, id).await?;
    match state.hub.poll(id) {
        RequestStatus::Known(_) => {
            if state.hub.cancel(id) {
                Ok(StatusCode::NO_CONTENT)
            } else {
                Err(ApiError::conflict(format!(
                    "request `{id}` has already ended"
                )))
            }
        }
        _ => Err(ApiError::not_found(format!("request `{id}`"))),
    }
}

/// The SSE event name of an update.
fn update_name(u: &RequestUpdate) -> &'static str {
    match serde_json::to_value(u)
        .ok()
        .and_then(|v| v.get("update").and_then(|n| n.as_str().map(str::to_owned)))
        .as_deref()
    {
        Some("answer") => "answer",
        Some("part_ended") => "part_ended",
        Some("ended") => "ended",
        _ => "update",
    }
}

/// Follows a request as Server-Sent Events: every update still kept, then live ones, until
/// every agent ends its part, the client goes away, or the service stops. Each event's name is
/// the update's kind (`answer`, `part_ended`, `ended`); its data is the update as JSON.
#[utoipa::path(get, path = "/v1/requests/{id}/feed", tag = "messages",
    params(("id" = String, Path, description = "The request id")),
    responses(
        (status = 200, description = "text/event-stream of updates", content_type = "text/event-stream", body = String),
        (status = 404, description = "Unknown, expired, or not yours", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn feed(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let id = request_id(&id)?;
    check_visible(&state, &caller, id).await?;
    let stream = state.hub.subscribe(id).map_err(|e| match e {
        WaitError::Expired(_) => {
            ApiError::not_found(format!("request `{id}` (its answers are no longer kept)"))
        }
        _ => ApiError::not_found(format!("request `{id}`")),
    })?;
    let stop = state.shutdown.clone();
    let events = futures_util::stream::unfold(
        (stream, stop, false),
        |(mut stream, stop, done)| async move {
            if done {
                return None;
            }
            tokio::select! {
                update = stream.next() => match update {
                    Some(u) => {
                        let ev = SseEvent::default()
                            .event(update_name(&u))
                            .json_data(&u)
                            .unwrap_or_default();
                        Some((Ok(ev), (stream, stop, false)))
                    }
                    None => None,
                },
                _ = stop.cancelled() => {
                    let ev = SseEvent::default().event("shutdown").data("the service is stopping");
                    Some((Ok(ev), (stream, stop, true)))
                }
            }
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
