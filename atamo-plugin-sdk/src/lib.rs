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
//! use std::sync::Arc;
//! use atamo_plugin_sdk::{Call, CallError, CallRequest, PluginAgent, Value};
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
//! impl PluginAgent for Greeter {
//!     type Config = GreeterConfig;
//!     const CONFIG_SCHEMA: &'static str = r#"{"type": "object",
//!         "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}"#;
//!
//!     fn new(config: GreeterConfig) -> Result<Self, String> {
//!         Ok(Self { greeting: config.greeting })
//!     }
//!
//!     async fn call(self: Arc<Self>, request: CallRequest, call: Call)
//!         -> Result<Option<Value>, CallError>
//!     {
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

pub mod protocol;

mod call;
#[doc(hidden)]
pub mod export;
mod kinds;
mod native;
mod stdio;

pub use atamo_plugin_abi as abi;
pub use call::Call;
pub use kinds::{Plugin, PluginAgent, PluginRuleProvider};
pub use protocol::{CallError, CallRequest, EventIn, ProposalOut};
pub use serde_json::{json, Value};
pub use stdio::{serve_stdio, serve_stdio_with, StdioError, MAX_LINE_BYTES};
pub use tracing;

/// The SDK's version, recorded in every plugin's declaration.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Spawns a task on the plugin's runtime. Awaiting the handle gives the task's output; if the
/// task panicked, the panic continues in the awaiting task, so a call that awaits a task
/// that panics fails as `Panicked` rather than hanging or losing the panic.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle(runtime::handle().spawn(future))
}

/// A task spawned with [`spawn`].
#[derive(Debug)]
pub struct JoinHandle<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for JoinHandle<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        match std::pin::Pin::new(&mut self.0).poll(cx) {
            std::task::Poll::Ready(Ok(value)) => std::task::Poll::Ready(value),
            std::task::Poll::Ready(Err(err)) if err.is_panic() => {
                std::panic::resume_unwind(err.into_panic())
            }
            std::task::Poll::Ready(Err(_)) => {
                // Cancelled: only happens when the runtime shuts down, which ends the call too.
                std::panic::resume_unwind(Box::new("spawned task was cancelled"))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<T> JoinHandle<T> {
    /// Stops the task.
    pub fn abort(&self) {
        self.0.abort();
    }
}

pub(crate) mod runtime {
    use std::sync::OnceLock;

    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

    /// The runtime the plugin's calls run on: the current one when there is one (a process
    /// agent's), otherwise the plugin's own.
    pub(crate) fn handle() -> tokio::runtime::Handle {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            return handle;
        }
        RUNTIME.get_or_init(build).handle().clone()
    }

    fn build() -> tokio::runtime::Runtime {
        let threads = std::env::var("ATAMO_PLUGIN_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(2);
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("atamo-plugin")
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            // Without a runtime the plugin cannot work at all; the panic is caught at the
            // boundary and the host reports `init` as failed.
            Err(err) => panic!("cannot start the plugin's runtime: {err}"),
        }
    }

    /// Panic payload as text.
    pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-text payload".to_owned()
        }
    }
}
