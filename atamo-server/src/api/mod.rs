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
mod extract;
mod health;
pub mod keys_cli;
mod middleware;
mod ops;
pub mod query;
mod registry_routes;
mod requests;
mod router;
mod state;

pub use events::MAX_BATCH;
pub(crate) use extract::Authed;
pub use router::{openapi, router};
pub use state::{ApiSettings, AppState, Shared};
