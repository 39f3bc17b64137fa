//! The REST API: routes, authentication and authorization, the OpenAPI document.
//!
//! Every route is declared once, with `#[utoipa::path]`: its method, path, parameters, bodies and
//! the roles that may call it (`security(("api_key" = ["admin", "operator"]))`). The router and
//! `/openapi.json` are both built from those declarations, and so is the table the
//! authorization layer checks: a route cannot be served without appearing in the document, nor
//! be documented with other roles than it enforces.

pub mod auth;
pub mod error;
mod events;
mod health;
pub mod keys_cli;
mod ops;
pub mod query;
mod registry_routes;
mod requests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use atamo_core::store::Store;
use atamo_core::{Control, HubHandle};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::Metrics;
use crate::registry::Registry;
pub use events::MAX_BATCH;

use auth::{Caller, KeyRing, Role};
use error::ApiError;

/// Limits and defaults of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// Requests per second per key; 0 turns the limit off.
    pub rate_limit: u32,
    /// The burst a key may send above its rate.
    pub rate_burst: u32,
    /// The longest `wait_ms` a request may ask for.
    pub request_wait_max: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            body_limit: 1 << 20,
            rate_limit: 100,
            rate_burst: 200,
            request_wait_max: Duration::from_secs(30),
        }
    }
}

/// What every handler reaches.
pub struct AppState {
    /// Publishing and requests.
    pub hub: HubHandle,
    /// Registration and inspection.
    pub control: Control,
    /// The store (a memory store for a stateless service).
    pub store: Arc<dyn Store>,
    /// Agents, rules and types, applied to the hub and kept in the store.
    pub registry: Registry,
    /// The API keys.
    pub keys: Arc<KeyRing>,
    /// The service's metrics.
    pub metrics: Arc<Metrics>,
    /// Limits.
    pub settings: ApiSettings,
    /// Cancelled when the service stops: live feeds end so connections can close.
    pub shutdown: CancellationToken,
    /// False while starting and once stopping.
    pub ready: AtomicBool,
    /// Per-key request rates.
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// The roles each route admits, from the OpenAPI document.
    roles: std::sync::OnceLock<RoleTable>,
    /// The OpenAPI document, as served.
    openapi: std::sync::OnceLock<Arc<str>>,
    /// Whether the hub keeps events, actions and steps in the store.
    pub stateful: bool,
    /// The tenant of each request sent through this node, for the keep-alive time.
    pub request_tenants:
        moka::sync::Cache<atamo_core::ids::RequestId, Option<atamo_core::ids::TenantId>>,
    /// Events published with `"monitor": true`: their steps, for the keep-alive time.
    pub monitored: moka::sync::Cache<atamo_core::ids::EventId, Arc<events::Monitored>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The shared state handlers take.
pub type Shared = Arc<AppState>;

/// `(method, route template)` to the roles that may call it.
type RoleTable = HashMap<(Method, String), Vec<Role>>;

impl AppState {
    /// The state of a service over these parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: HubHandle,
        control: Control,
        store: Arc<dyn Store>,
        registry: Registry,
        keys: Arc<KeyRing>,
        metrics: Arc<Metrics>,
        settings: ApiSettings,
        shutdown: CancellationToken,
        stateful: bool,
        keep_alive: Duration,
    ) -> Shared {
        let limiter = std::num::NonZeroU32::new(settings.rate_limit).map(|rate| {
            let burst = std::num::NonZeroU32::new(settings.rate_burst.max(settings.rate_limit))
                .unwrap_or(rate);
            governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Arc::new(Self {
            hub,
            control,
            store,
            registry,
            keys,
            metrics,
            settings,
            shutdown,
            ready: AtomicBool::new(true),
            limiter,
            roles: std::sync::OnceLock::new(),
            openapi: std::sync::OnceLock::new(),
            stateful,
            request_tenants: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(keep_alive + Duration::from_secs(60))
                .build(),
            monitored: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(keep_alive + Duration::from_secs(60))
                .build(),
        })
    }

    /// Whether the service takes traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.hub.is_accepting()
    }
}

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
        .routes(routes!(events::publish, events::list))
        .routes(routes!(events::publish_batch))
        .routes(routes!(events::get_event))
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

/// Checks the key and its role against the route's, then the key's request rate.
async fn authorize(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let roles = path.and_then(|p| {
        state
            .roles
            .get()
            .and_then(|t| t.get(&(req.method().clone(), p)).cloned())
    });
    let Some(roles) = roles else {
        return next.run(req).await;
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return ApiError::unauthorized("send an API key: `Authorization: Bearer <key>`")
            .into_response();
    };
    let Some(caller) = state.keys.verify(token).await else {
        return ApiError::unauthorized("the API key is not valid").into_response();
    };
    if !roles.contains(&caller.role) {
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return ApiError::forbidden(format!(
            "a key with role `{}` may not do this; it needs one of: {}",
            caller.role,
            names.join(", ")
        ))
        .into_response();
    }
    if let Some(limiter) = &state.limiter {
        if let Err(not_until) = limiter.check_key(&caller.key) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return ApiError::too_many(wait.as_secs_f64().ceil() as u64).into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Counts the request in the metrics, by route template.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(req).await;
    state.metrics.observe_http(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The caller, as the authorization layer found it.
pub(crate) fn caller(req: &axum::http::Extensions) -> Result<Caller, ApiError> {
    req.get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("send an API key: `Authorization: Bearer <key>`"))
}

/// The caller, as an extractor.
pub(crate) struct Authed(pub Caller);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        caller(&parts.extensions).map(Authed)
    }
}
