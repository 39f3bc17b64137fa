//! Health, readiness, metrics and the OpenAPI document: no key needed.

use std::time::{Duration, Instant};

use atamo_core::ids::ActionId;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Shared;

/// How long the store may take to answer the health probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Health of each part: 200 when the hub accepts events and the store answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "Healthy; each component's status", body = Object),
        (status = 503, description = "The store or the hub is unhealthy", body = Object)))]
pub(crate) async fn healthz(State(state): State<Shared>) -> Response {
    let started = Instant::now();
    // A point lookup of an id nobody has: it reaches the database without costing a scan.
    let probe = tokio::time::timeout(
        STORE_PROBE_TIMEOUT,
        state.store.action(ActionId::generate()),
    )
    .await;
    let store = match probe {
        Ok(Ok(_)) => json!({"status": "ok", "latency_ms": started.elapsed().as_secs_f64() * 1e3}),
        Ok(Err(e)) => json!({"status": "failing", "error": super::error::error_chain(&e)}),
        Err(_) => {
            json!({"status": "failing", "error": format!("no answer within {STORE_PROBE_TIMEOUT:?}")})
        }
    };
    let store_ok = store["status"] == "ok";
    let health = state.control.health();
    let hub_ok = health.accepting;
    let statuses = state.control.agent_statuses();
    let offline: Vec<String> = statuses
        .iter()
        .filter(|s| s.state == atamo_core::failure::AgentState::Offline)
        .map(|s| s.agent.to_string())
        .collect();
    let healthy = store_ok && hub_ok;
    let body = json!({
        "status": if healthy { "ok" } else { "failing" },
        "components": {
            "hub": {
                "status": if hub_ok { "ok" } else { "stopping" },
                "queued_actions": health.queued_actions,
                "in_flight_actions": health.in_flight_actions,
                "requests_running": health.requests_running,
            },
            "store": store,
            "agents": {
                // An agent that is down degrades its routes, not the service.
                "status": if offline.is_empty() { "ok" } else { "degraded" },
                "registered": statuses.len(),
                "offline": offline,
            },
        },
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Ready for traffic: 200 once started, 503 while starting or stopping.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Starting or stopping", body = Object)))]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready"})),
        )
            .into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::Metrics::CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", body = Object)))]
pub(crate) async fn openapi_json(State(state): State<Shared>) -> Response {
    let doc = state
        .openapi
        .get()
        .map(|d| d.to_string())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}
