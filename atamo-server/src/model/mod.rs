//! The shapes the service reads and writes: the REST bodies of agents, types, events and
//! requests, shared by the API and by `atamo.toml`, their conversion into the hub's own types,
//! and the reader that turns a body into one of them naming every bad field.
//!
//! Each body type is also its OpenAPI schema: the type that parses a body is the one the
//! document shows. Rules use [`atamo_config::Rule`] as they are: its JSON is already the REST
//! shape, and its schema comes with it.

mod agent;
pub mod body;
mod event;
mod numbers;
mod types;

pub use agent::{check_id, AgentDef, AgentKind};
pub use event::{EventIn, RequestIn};
pub use types::{ActionTypeBody, EventTypeBody};
