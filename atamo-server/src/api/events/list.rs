//! Stored events, newest first, filtered.

use atamo_core::ids::{EventType, TenantId, UserId};
use atamo_core::store::{EventQuery, EventRecord, PayloadFilter};
use axum::extract::State;
use axum::Json;

use crate::api::error::ApiError;
use crate::api::extract::Authed;
use crate::api::query::Query;
use crate::api::state::Shared;

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
        (status = 400, description = "A bad parameter", body = crate::api::error::Problem)),
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
