//! Native plugins: libraries loaded at run time through the versioned C ABI of
//! `atamo-plugin-abi`, and the agents and rule providers they offer.
//!
//! ```no_run
//! use atamo_agents::native::{NativeAgent, PluginLoader};
//! use atamo_core::{ActionTypeDef, AgentSpec, Hub};
//!
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let loader = PluginLoader::new("plugins");
//! let plugin = loader.load("libweather.so")?;
//! let agent = NativeAgent::new(plugin, "forecast", &serde_json::json!({"units": "metric"}), "weather")?;
//! let hub = Hub::builder()
//!     .action_type(ActionTypeDef::new("forecast"))
//!     .agent(AgentSpec::new("weather", agent).handles(["forecast"]))
//!     .build()?;
//! # drop(hub); Ok(()) }
//! ```

#![allow(unsafe_code)]
// A load error carries the file, the plugin and both versions so its message is complete; it is
// returned once per load, never on a call path, so its size does not matter.
#![allow(clippy::result_large_err)]

mod agent;
mod error;
mod host;
mod loader;
mod provider;

pub use agent::NativeAgent;
pub use error::LoadError;
pub use loader::{inspect, NativePlugin, PluginInfo, PluginLoader};
pub use provider::NativeRuleProvider;
