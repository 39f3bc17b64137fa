//! The layers every route goes through: authorization (key, role, rate) and metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::Shared;

/// Checks the key and its role against the route's, then the key's request rate.
pub(super) async fn authorize(
    State(state): State<Shared>,
    mut req: Request,
    next: Next,
) -> Response {
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
pub(super) async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
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
