//! Agents, rules, event types and action types.

use std::time::Duration;

use atamo_config::Rule;
use atamo_core::failure::AgentState;
use atamo_core::ids::AgentId;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::error::{ApiError, Body};
use super::events::{hub_problems, parse_event};
use super::query::Query;
use super::{Authed, Shared};
use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};
use crate::registry::Source;

fn created(location: String, body: Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

/// Who may change an agent: native and process agents run code of their own choosing, so only
/// an admin may add them; a tenant-bound key manages its tenant's agents only.
fn may_manage(caller: &Caller, def: &AgentDef) -> Result<(), ApiError> {
    if def.kind.admin_only() && caller.role != Role::Admin {
        return Err(ApiError::forbidden(format!(
            "only an admin key may register {} agents",
            def.kind.as_str()
        )));
    }
    if let Some(mine) = &caller.tenant {
        if def.tenant.as_deref() != Some(mine.as_str()) {
            return Err(ApiError::forbidden(format!(
                "this key manages the agents of tenant `{mine}` only"
            )));
        }
    }
    Ok(())
}

fn agent_view(state: &Shared, def: &AgentDef, source: Source) -> Value {
    let id = AgentId::from(def.id.as_str());
    let status = state.control.agent_status(&id);
    let health = state
        .control
        .health()
        .agents
        .into_iter()
        .find(|a| a.id == id);
    json!({
        "definition": def,
        "source": source,
        "status": status,
        "health": health,
    })
}

fn visible_agent(caller: &Caller, def: &AgentDef) -> bool {
    match &caller.tenant {
        Some(mine) => def.tenant.as_deref() == Some(mine.as_str()),
        None => true,
    }
}

/// Registers an agent. `kind` is `http`, `sql`, `email`, `command`, `native` or `process`
/// (the last two for admin keys only).
#[utoipa::path(post, path = "/v1/agents", tag = "registry",
    request_body = AgentDef,
    responses(
        (status = 201, description = "Registered", body = Object),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 409, description = "An agent of that id exists", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn create_agent(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(def): Body<AgentDef>,
) -> Result<Response, ApiError> {
    may_manage(&caller, &def)?;
    state.registry.create_agent(def.clone(), &caller).await?;
    Ok(created(
        format!("/v1/agents/{}", def.id),
        agent_view(&state, &def, Source::Api),
    ))
}

/// Lists agents with their status, filtered by tenant and status.
#[utoipa::path(get, path = "/v1/agents", tag = "registry",
    params(
        ("tenant" = Option<String>, Query, description = "Only this tenant's agents"),
        ("status" = Option<String>, Query, description = "unknown, online, degraded or offline")),
    responses((status = 200, description = "The agents", body = Object)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn list_agents(
    State(state): State<Shared>,
    Authed(caller): Authed,
    mut q: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = q.get("tenant");
    let status = q.parsed("status", |s| {
        serde_json::from_value::<AgentState>(Value::String(s.to_owned()))
            .map_err(|_| "must be unknown, online, degraded or offline".to_owned())
    });
    q.finish()?;
    let items: Vec<Value> = state
        .registry
        .agent_defs()
        .into_iter()
        .filter(|(d, _)| visible_agent(&caller, d))
        .filter(|(d, _)| tenant.is_none() || d.tenant == tenant)
        .filter(|(d, _)| {
            status.is_none_or(|s| {
                state
                    .control
                    .agent_status(&AgentId::from(d.id.as_str()))
                    .is_some_and(|st| st.state == s)
            })
        })
        .map(|(d, src)| agent_view(&state, &d, src))
        .collect();
    Ok(Json(json!({ "items": items })))
}

fn find_agent(state: &Shared, caller: &Caller, id: &str) -> Result<(AgentDef, Source), ApiError> {
    state
        .registry
        .agent_def(id)
        .filter(|(d, _)| visible_agent(caller, d))
        .ok_or_else(|| ApiError::not_found(format!("agent `{id}`")))
}

/// An agent: its definition, status and queue.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "registry",
    params(("id" = String, Path, description = "The agent id")),
    responses(
        (status = 200, description = "The agent", body = Object),
        (status = 404, description = "No such agent", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn get_agent(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (def, source) = find_agent(&state, &caller, &id)?;
    Ok(Json(agent_view(&state, &def, source)))
}

/// Replaces an agent's definition; if the new one cannot be registered, the old one stays.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "registry",
    params(("id" = String, Path, description = "The agent id")),
    request_body = AgentDef,
    responses(
        (status = 200, description = "Replaced", body = Object),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 404, description = "No such agent", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn put_agent(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(def): Body<AgentDef>,
) -> Result<Json<Value>, ApiError> {
    if def.id != id {
        return Err(ApiError::field(
            "id",
            format!("must be `{id}`, as in the path"),
        ));
    }
    let (old, _) = find_agent(&state, &caller, &id)?;
    may_manage(&caller, &old)?;
    may_manage(&caller, &def)?;
    state.registry.replace_agent(def.clone(), &caller).await?;
    Ok(Json(agent_view(&state, &def, Source::Api)))
}

/// Unregisters an agent (refused while a rule names it).
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "registry",
    params(("id" = String, Path, description = "The agent id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such agent", body = super::error::Problem),
        (status = 409, description = "Rules still name it", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn delete_agent(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (old, _) = find_agent(&state, &caller, &id)?;
    may_manage(&caller, &old)?;
    state.registry.delete_agent(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A manual status.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusIn {
    /// `online` or `offline`; `auto` hands the status back to the hub.
    pub status: String,
    /// Why, for the record.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Takes an agent offline or brings it back online by hand (`auto` clears the manual status).
#[utoipa::path(put, path = "/v1/agents/{id}/status", tag = "registry",
    params(("id" = String, Path, description = "The agent id")),
    request_body = StatusIn,
    responses(
        (status = 200, description = "The new status", body = Object),
        (status = 400, description = "Invalid", body = super::error::Problem),
        (status = 404, description = "No such agent", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn set_agent_status(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<StatusIn>,
) -> Result<Json<Value>, ApiError> {
    let (def, _) = find_agent(&state, &caller, &id)?;
    may_manage(&caller, &def)?;
    let agent = AgentId::from(id.as_str());
    let reason = body
        .reason
        .unwrap_or_else(|| format!("set by {}", caller.audit_name()));
    let r = match body.status.as_str() {
        "online" => state
            .control
            .set_agent_status(&agent, AgentState::Online, reason),
        "offline" => state
            .control
            .set_agent_status(&agent, AgentState::Offline, reason),
        "auto" => state.control.clear_agent_status(&agent),
        _ => {
            return Err(ApiError::field(
                "status",
                "must be `online`, `offline` or `auto`",
            ))
        }
    };
    r.map_err(|_| ApiError::not_found(format!("agent `{id}`")))?;
    Ok(Json(json!(state.control.agent_status(&agent))))
}

/// A control message for an agent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlIn {
    /// The message (the agent decides what it means).
    #[schema(value_type = Object)]
    pub message: Value,
    /// How long to wait for the agent's acknowledgement (default 5,000, at most 60,000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Sends an agent a control message and answers with its acknowledgement.
#[utoipa::path(post, path = "/v1/agents/{id}/control", tag = "registry",
    params(("id" = String, Path, description = "The agent id")),
    request_body = ControlIn,
    responses(
        (status = 200, description = "The agent's acknowledgement", body = Object),
        (status = 404, description = "No such agent", body = super::error::Problem),
        (status = 422, description = "The agent refused or failed", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn control_agent(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(body): Body<ControlIn>,
) -> Result<Json<Value>, ApiError> {
    let (def, _) = find_agent(&state, &caller, &id)?;
    may_manage(&caller, &def)?;
    let timeout = body.timeout_ms.unwrap_or(5_000);
    if timeout == 0 || timeout > 60_000 {
        return Err(ApiError::field("timeout_ms", "must be 1 to 60000"));
    }
    match state
        .control
        .send_control(
            &AgentId::from(id.as_str()),
            body.message,
            Duration::from_millis(timeout),
        )
        .await
    {
        Ok(reply) => Ok(Json(json!({ "reply": reply }))),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("agent `{id}` did not acknowledge: {e}"),
        )),
    }
}

// ---- rules -----------------------------------------------------------------------------------

fn rule_view(state: &Shared, rule: &Rule) -> Value {
    let mut v = json!(rule);
    if let (Some(obj), Some(src)) = (
        v.as_object_mut(),
        state.registry.rule_source(rule.id.as_str()),
    ) {
        obj.insert("source".into(), json!(src));
    }
    v
}

/// Adds a rule: `{"id", "event_type", "user"? | "group"? | "tenant"?, "agent", "action",
/// "template"}`. Its agent and event type must be registered, and the agent must handle the
/// action.
#[utoipa::path(post, path = "/v1/rules", tag = "registry",
    request_body = Rule,
    responses(
        (status = 201, description = "Added", body = Object),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 409, description = "A rule of that id exists", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn create_rule(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(rule): Body<Rule>,
) -> Result<Response, ApiError> {
    state.registry.create_rule(rule.clone(), &caller).await?;
    Ok(created(
        format!("/v1/rules/{}", rule.id),
        rule_view(&state, &rule),
    ))
}

/// Every rule, in the order they are evaluated.
#[utoipa::path(get, path = "/v1/rules", tag = "registry",
    responses((status = 200, description = "The rules", body = Object)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn list_rules(
    State(state): State<Shared>,
    Authed(_caller): Authed,
    q: Query,
) -> Result<Json<Value>, ApiError> {
    q.finish()?;
    let items: Vec<Value> = state
        .registry
        .rules()
        .iter()
        .map(|r| rule_view(&state, r))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// A rule.
#[utoipa::path(get, path = "/v1/rules/{id}", tag = "registry",
    params(("id" = String, Path, description = "The rule id")),
    responses(
        (status = 200, description = "The rule", body = Object),
        (status = 404, description = "No such rule", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator", "reader"])))]
pub(crate) async fn get_rule(
    State(state): State<Shared>,
    Authed(_caller): Authed,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rule = state
        .registry
        .rule(&id)
        .ok_or_else(|| ApiError::not_found(format!("rule `{id}`")))?;
    Ok(Json(rule_view(&state, &rule)))
}

/// Replaces a rule.
#[utoipa::path(put, path = "/v1/rules/{id}", tag = "registry",
    params(("id" = String, Path, description = "The rule id")),
    request_body = Rule,
    responses(
        (status = 200, description = "Replaced", body = Object),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 404, description = "No such rule", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn put_rule(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    Body(rule): Body<Rule>,
) -> Result<Json<Value>, ApiError> {
    if rule.id.as_str() != id {
        return Err(ApiError::field(
            "id",
            format!("must be `{id}`, as in the path"),
        ));
    }
    state.registry.replace_rule(rule.clone(), &caller).await?;
    Ok(Json(rule_view(&state, &rule)))
}

/// Removes a rule.
#[utoipa::path(delete, path = "/v1/rules/{id}", tag = "registry",
    params(("id" = String, Path, description = "The rule id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such rule", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn delete_rule(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.registry.delete_rule(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the hub would do with an event: whether it would be accepted, which rules match and
/// the actions they would send. Nothing is sent.
#[utoipa::path(post, path = "/v1/rules:dry-run", tag = "registry",
    request_body = crate::model::EventIn,
    responses(
        (status = 200, description = "The verdict", body = Object),
        (status = 400, description = "The event is malformed", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn dry_run(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(body): Body<Value>,
) -> Result<Json<Value>, ApiError> {
    let parsed = parse_event(body, "", false, &caller).map_err(ApiError::invalid)?;
    let dry = state.hub.dry_run(&parsed.event);
    let problems = hub_problems(&dry.problems, "");
    let actions: Vec<Value> = dry.actions().map(|a| json!(a)).collect();
    Ok(Json(json!({
        "accepted": dry.accepted(),
        "problems": problems,
        "outcomes": dry.outcomes,
        "actions": actions,
    })))
}

// ---- types -----------------------------------------------------------------------------------

/// Registers an event type.
#[utoipa::path(post, path = "/v1/event-types", tag = "registry",
    request_body = EventTypeBody,
    responses(
        (status = 201, description = "Registered", body = EventTypeBody),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 409, description = "It exists", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn create_event_type(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(body): Body<EventTypeBody>,
) -> Result<Response, ApiError> {
    if let Err(p) = body.to_def() {
        return Err(ApiError::fields(p));
    }
    state
        .registry
        .create_event_type(body.clone(), &caller)
        .await?;
    Ok(created(
        format!("/v1/event-types/{}", body.name),
        json!(body),
    ))
}

/// Every event type.
#[utoipa::path(get, path = "/v1/event-types", tag = "registry",
    responses((status = 200, description = "The event types", body = Object)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn list_event_types(
    State(state): State<Shared>,
    Authed(_caller): Authed,
    q: Query,
) -> Result<Json<Value>, ApiError> {
    q.finish()?;
    Ok(Json(json!({ "items": state.registry.event_types() })))
}

/// Registers an action type.
#[utoipa::path(post, path = "/v1/action-types", tag = "registry",
    request_body = ActionTypeBody,
    responses(
        (status = 201, description = "Registered", body = ActionTypeBody),
        (status = 400, description = "Invalid; every bad field listed", body = super::error::Problem),
        (status = 409, description = "It exists", body = super::error::Problem)),
    security(("api_key" = ["admin", "operator"])))]
pub(crate) async fn create_action_type(
    State(state): State<Shared>,
    Authed(caller): Authed,
    Body(body): Body<ActionTypeBody>,
) -> Result<Response, ApiError> {
    if let Err(p) = body.to_def() {
        return Err(ApiError::fields(p));
    }
    state
        .registry
        .create_action_type(body.clone(), &caller)
        .await?;
    Ok(created(
        format!("/v1/action-types/{}", body.name),
        json!(body),
    ))
}

/// Every action type.
#[utoipa::path(get, path = "/v1/action-types", tag = "registry",
    responses((status = 200, description = "The action types", body = Object)),
    security(("api_key" = ["admin", "operator", "client", "reader"])))]
pub(crate) async fn list_action_types(
    State(state): State<Shared>,
    Authed(_caller): Authed,
    q: Query,
) -> Result<Json<Value>, ApiError> {
    q.finish()?;
    Ok(Json(json!({ "items": state.registry.action_types() })))
}
