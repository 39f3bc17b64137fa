//! Write Atamo agents and rule providers as plugins.
//!
//! A plugin is a Rust library that implements [`PluginAgent`] or [`PluginRuleProvider`] for
//! one or more types and exports them with [`export_plugin!`]. Built as a `cdylib`, it is a
//! native plugin the hub loads at run time through the versioned C ABI of `atamo-plugin-abi`;
//! run from a `main` with [`serve_stdio`], the very same types make a process agent that the hub
//! starts and supervises. Authors write no `unsafe`: the macro generates every `extern "C"`
//! shim, each of which catches panics.
//!
//! ```
//! use atamo_plugin_sdk::{async_trait, Call, CallError, CallRequest, PluginAgent, Value};
//!
//! pub struct Greeter {
//!     greeting: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! pub struct GreeterConfig {
//!     greeting: String,
//! }
//!
//! #[async_trait]
//! impl PluginAgent for Greeter {
//!     type Config = GreeterConfig;
//!     const CONFIG_SCHEMA: &'static str = r#"{"type": "object",
//!         "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}"#;
//!
//!     fn new(config: GreeterConfig) -> Result<Self, String> {
//!         Ok(Self { greeting: config.greeting })
//!     }
//!
//!     async fn call(&self, request: CallRequest, call: Call) -> Result<Option<Value>, CallError> {
//!         call.emit(format!("{}, {}", self.greeting, request.user)).await?;
//!         Ok(None)
//!     }
//! }
//!
//! // In the plugin crate (crate-type = ["cdylib"]):
//! // atamo_plugin_sdk::export_plugin! {
//! //     name: "greeter",
//! //     version: env!("CARGO_PKG_VERSION"),
//! //     agents: { "greeter" => Greeter },
//! // }
//! ```
//!
//! # What runs where
//! A native plugin runs its calls on its own tokio runtime (two worker threads unless
//! `ATAMO_PLUGIN_THREADS` says otherwise), created when the first instance is made; nothing
//! async crosses the boundary. Spawn with [`spawn`] to have a panic in the spawned task fail
//! the call that awaits it. Log with [`tracing`]: a native plugin's events go to the host's
//! log, a process agent's to its stderr, which the host logs.

mod call;
#[doc(hidden)]
pub mod export;
mod kinds;
mod native;
mod runtime;
mod spawn;
mod stdio;

/// The JSON shapes that cross between host and plugin, for native plugins (inside the C ABI's
/// byte buffers) and process agents (one JSON object per line) alike: the crate
/// `atamo-plugin-protocol`, which the host links too, so the two sides cannot drift.
pub use atamo_plugin_protocol as protocol;

/// Implements [`PluginAgent`] (whose `call` is an `async fn`) without naming `async-trait` as a
/// dependency of your own.
pub use async_trait::async_trait;
pub use atamo_plugin_abi as abi;
pub use call::Call;
pub use kinds::{Plugin, PluginAgent, PluginRuleProvider};
pub use protocol::{CallError, CallRequest, EventIn, ProposalOut};
pub use serde_json::{json, Value};
pub use spawn::{spawn, JoinHandle};
pub use stdio::{serve_stdio, serve_stdio_with, StdioError, MAX_LINE_BYTES};
pub use tracing;

/// The SDK's version, recorded in every plugin's declaration.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
