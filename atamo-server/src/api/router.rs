//! The routes, their OpenAPI document, and the whole service's router with its layers.

use std::sync::Arc;

use axum::http::Method;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Role;
use super::error::ApiError;
use super::middleware::{authorize, observe};
use super::state::{RoleTable, Shared};
use super::{events, health, ops, registry_routes, requests};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Atamo",
        description = "Rule-driven, auditable, asynchronous work: publish events and requests, \
                       enrol agents and rules, follow every path a message takes."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "messages", description = "Events and requests"),
        (name = "registry", description = "Agents, rules and types"),
        (name = "operations", description = "Audit, dead letters, telemetry and keys"),
        (name = "service", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The routes and their document, before the state is attached.
fn routes() -> (Router<Shared>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(events::publish::publish, events::list::list))
        .routes(routes!(events::publish::publish_batch))
        .routes(routes!(events::view::get_event))
        .routes(routes!(requests::send))
        .routes(routes!(requests::get_request, requests::cancel))
        .routes(routes!(requests::feed))
        .routes(routes!(
            registry_routes::create_agent,
            registry_routes::list_agents
        ))
        .routes(routes!(
            registry_routes::get_agent,
            registry_routes::put_agent,
            registry_routes::delete_agent
        ))
        .routes(routes!(registry_routes::set_agent_status))
        .routes(routes!(registry_routes::control_agent))
        .routes(routes!(
            registry_routes::create_rule,
            registry_routes::list_rules
        ))
        .routes(routes!(
            registry_routes::get_rule,
            registry_routes::put_rule,
            registry_routes::delete_rule
        ))
        .routes(routes!(registry_routes::dry_run))
        .routes(routes!(
            registry_routes::create_event_type,
            registry_routes::list_event_types
        ))
        .routes(routes!(
            registry_routes::create_action_type,
            registry_routes::list_action_types
        ))
        .routes(routes!(ops::audit))
        .routes(routes!(ops::dead_letters))
        .routes(routes!(ops::redrive))
        .routes(routes!(ops::telemetry))
        .routes(routes!(ops::create_key, ops::list_keys))
        .routes(routes!(ops::revoke_key))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi_json))
        .split_for_parts()
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The roles each operation of `doc` admits (operations without security are public).
fn role_table(doc: &serde_json::Value) -> RoleTable {
    let mut table = RoleTable::new();
    let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) else {
        return table;
    };
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for (method, op) in item {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let roles: Vec<Role> = op
                .get("security")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
                .filter_map(|req| req.get("api_key"))
                .filter_map(|scopes| scopes.as_array())
                .flatten()
                .filter_map(|s| s.as_str().and_then(Role::parse))
                .collect();
            if !roles.is_empty() {
                table.insert((method, path.clone()), roles);
            }
        }
    }
    table
}

/// The whole service: the API, `/docs`, and the layers (auth, limits, metrics).
pub fn router(state: Shared) -> Router {
    let (api, doc) = routes();
    let doc_json = serde_json::to_value(&doc).unwrap_or_default();
    let _ = state.roles.set(role_table(&doc_json));
    let _ = state
        .openapi
        .set(Arc::from(serde_json::to_string(&doc).unwrap_or_default()));
    let body_limit = state.settings.body_limit;
    api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        authorize,
    ))
    .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe))
    .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/docs/openapi.json", doc))
    .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
    .fallback(not_found)
    .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no such route; see /openapi.json",
    )
}
