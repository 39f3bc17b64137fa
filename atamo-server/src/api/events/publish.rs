//! Publishing: one event or a batch, monitored on request, and the hub's refusals as answers.

use std::sync::Arc;

use atamo_core::ids::EventId;
use atamo_core::message::{Event, Problem as HubProblem};
use atamo_core::{PublishError, Receipt};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::parse::{parse_event, EventIn};
use crate::api::error::{ApiError, FieldError};
use crate::api::extract::Authed;
use crate::api::state::{Monitored, Shared};

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
        PublishError::Unavailable { reason, .. } => ApiError::unavailable(format!(
            "the hub cannot accept and keep events now: {reason}"
        )),
        PublishError::Store { error, .. } => {
            ApiError::unavailable(format!("the event could not be stored: {error}"))
        }
        other => ApiError::internal(other),
    }
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
        (status = 400, description = "Invalid; every bad field listed", body = crate::api::error::Problem),
        (status = 503, description = "Shutting down, or the store cannot be reached", body = crate::api::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn publish(
    State(state): State<Shared>,
    Authed(caller): Authed,
    crate::api::error::Body(body): crate::api::error::Body<Value>,
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
    Refused(crate::api::error::Problem),
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
        (status = 400, description = "Some event is invalid; nothing was published", body = crate::api::error::Problem)),
    security(("api_key" = ["admin", "client"])))]
pub(crate) async fn publish_batch(
    State(state): State<Shared>,
    Authed(caller): Authed,
    crate::api::error::Body(body): crate::api::error::Body<BatchIn>,
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
