//! One event, where it stands, and the path it took.

use atamo_core::ids::EventId;
use atamo_core::store::{AuditQuery, AuditRecord, EventRecord};
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::api::extract::Authed;
use crate::api::state::Shared;

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
        (status = 404, description = "No such event (or not yours)", body = crate::api::error::Problem)),
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
