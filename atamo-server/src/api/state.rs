//! What every handler reaches: [`AppState`], shared as [`Shared`], and the HTTP layer's
//! [`ApiSettings`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::ids::TenantId;
use atamo_core::store::{AuditRecord, Store};
use atamo_core::{Control, HubHandle};
use axum::http::Method;
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio_util::sync::CancellationToken;

use super::auth::{KeyRing, Role};
use crate::metrics::Metrics;
use crate::registry::Registry;

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
    pub(super) limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// The roles each route admits, from the OpenAPI document.
    pub(super) roles: std::sync::OnceLock<RoleTable>,
    /// The OpenAPI document, as served.
    pub(super) openapi: std::sync::OnceLock<Arc<str>>,
    /// Whether the hub keeps events, actions and steps in the store.
    pub stateful: bool,
    /// The tenant of each request sent through this node, for the keep-alive time.
    pub request_tenants:
        moka::sync::Cache<atamo_core::ids::RequestId, Option<atamo_core::ids::TenantId>>,
    /// Events published with `"monitor": true`: their steps, for the keep-alive time.
    pub monitored: moka::sync::Cache<atamo_core::ids::EventId, Arc<Monitored>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The shared state handlers take.
pub type Shared = Arc<AppState>;

/// `(method, route template)` to the roles that may call it.
pub(super) type RoleTable = HashMap<(Method, String), Vec<Role>>;

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

/// A monitored event's steps, as its monitor stream delivers them.
#[derive(Debug)]
pub struct Monitored {
    /// The event's tenant.
    pub tenant: Option<TenantId>,
    /// Its steps so far, oldest first.
    pub steps: std::sync::Mutex<Vec<AuditRecord>>,
}
