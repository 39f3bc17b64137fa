//! The caller, as the authorization layer left it in the request.

use super::auth::Caller;
use super::error::ApiError;

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
