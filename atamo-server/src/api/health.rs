//! Health, readiness, metrics and the OpenAPI document: no key needed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use atamo_core::ids::ActionId;
use atamo_core::status::{ComponentState, NotReady};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Shared;

/// How long the store may take to answer the health probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Health of each part: 200 while the hub can accept and keep work and the store answers,
/// 503 otherwise. `components` holds the hub's summary, the store (its answer to a probe and
/// its condition), the agents, and every long-lived component of the hub by name (`router`,
/// `agent_worker:<agent>`, `settle_writer`, ...) with its state, since when, and restarts.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "Healthy (`ok`), or working with a degraded component (`degraded`); each component's status", body = Object),
        (status = 503, description = "The hub cannot accept and keep work, or the store does not answer; each component's status and the reasons", body = Object)))]
pub(crate) async fn healthz(State(state): State<Shared>) -> Response {
    let started = Instant::now();
    // A point lookup of an id nobody has: it reaches the database without costing a scan.
    let probe = tokio::time::timeout(
        STORE_PROBE_TIMEOUT,
        state.store.action(ActionId::generate()),
    )
    .await;
    let mut store = match probe {
        Ok(Ok(_)) => json!({"status": "ok", "latency_ms": started.elapsed().as_secs_f64() * 1e3}),
        Ok(Err(e)) => json!({"status": "failing", "error": super::error::error_chain(&e)}),
        Err(_) => {
            json!({"status": "failing", "error": format!("no answer within {STORE_PROBE_TIMEOUT:?}")})
        }
    };
    let health = state.control.health();
    let readiness = state.control.readiness();
    let parts = state.control.components();
    let statuses = state.control.agent_statuses();
    let offline: Vec<String> = statuses
        .iter()
        .filter(|s| s.state == atamo_core::failure::AgentState::Offline)
        .map(|s| s.agent.to_string())
        .collect();
    let mut components = json!({
        "hub": {
            "status": if !health.accepting {
                "stopping"
            } else if readiness.ready {
                "ok"
            } else {
                "failing"
            },
            "queued_actions": health.queued_actions,
            "in_flight_actions": health.in_flight_actions,
            "requests_running": health.requests_running,
        },
        "agents": {
            // An agent that is down degrades its routes, not the service.
            "status": if offline.is_empty() { "ok" } else { "degraded" },
            "registered": statuses.len(),
            "offline": offline,
        },
    });
    for part in &parts {
        let mut entry = serde_json::to_value(part).unwrap_or_default();
        entry["status"] = json!(status_word(&part.state));
        if part.name == "store" {
            // The hub's view of the store (its condition) beside the probe's.
            if !part.state.is_working() {
                store["status"] = json!("failing");
                store["error"] = json!(part.state.reason().unwrap_or("not working"));
            }
            store["condition"] = entry;
        } else {
            components[part.name.as_str()] = entry;
        }
    }
    let store_ok = store["status"] == "ok";
    components["store"] = store;
    let healthy = store_ok && health.accepting && readiness.ready;
    let degraded = parts
        .iter()
        .any(|p| !matches!(p.state, ComponentState::Ready));
    let mut body = json!({
        "status": if !healthy { "failing" } else if degraded { "degraded" } else { "ok" },
        "components": components,
    });
    if !readiness.ready {
        body["reasons"] = json!(readiness.reasons);
    }
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// One word for a component's state, as `/healthz` reports each part.
fn status_word(state: &ComponentState) -> &'static str {
    match state {
        ComponentState::Starting => "starting",
        ComponentState::Ready => "ok",
        ComponentState::Degraded { .. } => "degraded",
        ComponentState::Failed { .. } => "failing",
    }
}

/// Ready for traffic: 200 while the service is up and the hub can accept and keep work; 503
/// with the reasons while starting or stopping, or while an essential component of the hub
/// is not working (its router stopped, the settle writer keeps failing, the store's condition
/// is failed: its writer is down, its disk is full, damage was found).
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready: starting, stopping, or the hub cannot accept and keep work; `reasons` names each component and what is wrong", body = Object)))]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    let mut readiness = state.control.readiness();
    if !state.ready.load(Ordering::Acquire) {
        readiness.reasons.insert(
            0,
            NotReady {
                component: "service".into(),
                reason: "starting or stopping".into(),
            },
        );
        readiness.ready = false;
    }
    if readiness.ready {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reasons": readiness.reasons})),
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
