//! The built-in `http` agent: calls a REST endpoint on behalf of the event's user.
//!
//! Its registration ([`HttpConfig`]) gives the destination: the base URL, the default method,
//! fixed headers, a timeout and TLS settings (rustls). Each action ([`HttpAction`]) gives the
//! details: method, path, query, JSON body and extra headers, usually filled by a rule's template
//! from the event. The credential of (agent, event user) from the
//! [`CredentialProvider`](super::CredentialProvider) is sent
//! with the request: a token as `Authorization: Bearer`, a password as basic auth, an API key in
//! its header. Every request carries `Idempotency-Key: <action id>`, the same for every attempt
//! of an action (and after a restart of a stateful hub), so the endpoint can ignore repeats.
//!
//! The response becomes the call's answer (see [`HttpAgent`]). `429` and `5xx` are retryable
//! (with the server's `Retry-After`), other `4xx` are permanent, connection errors are retryable
//! and the request timeout is
//! [`AgentError::Timeout`](atamo_core::agent::AgentError::Timeout).
//!
//! ```
//! use std::sync::Arc;
//! use atamo_agents::builtin::{http::HttpAgent, ConfigCredentials, Credential, Secret};
//! use atamo_core::AgentSpec;
//! use serde_json::json;
//!
//! let credentials = ConfigCredentials::new()
//!     .with("shop-api", "alice", Credential::Token(Secret::new("alice-token")));
//! let agent = HttpAgent::from_config(
//!     "shop-api",
//!     &json!({"base_url": "http://127.0.0.1:8080/api", "timeout_ms": 5000}),
//!     Arc::new(credentials),
//! )?;
//! let spec = AgentSpec::new("shop-api", agent).handles(["http.request"]);
//! # let _ = spec;
//! # Ok::<(), atamo_agents::builtin::ConfigProblems>(())
//! ```

mod agent;
mod config;
mod request;
mod response;
mod retry_after;
mod secrets;

pub use agent::HttpAgent;
pub use config::{HttpConfig, TlsConfig, CONFIG_SCHEMA, DEFAULT_METHOD, DEFAULT_TIMEOUT_MS, KIND};
pub use request::{HttpAction, ACTION_SCHEMA};
pub use retry_after::retry_after;
