//! The plugin `atamo bench plugin` measures: kind `noop` succeeds at once with nothing to say,
//! whatever the action. Built like any plugin an author would ship (the system allocator, the
//! SDK's defaults), so the benchmark measures the cost of the boundary and nothing else.

use atamo_plugin_sdk::{
    async_trait, export_plugin, Call, CallError, CallRequest, PluginAgent, Value,
};

/// Does nothing.
pub struct Noop;

#[async_trait]
impl PluginAgent for Noop {
    type Config = Value;
    const DESCRIPTION: &'static str = "does nothing, for benchmarks";

    fn new(_: Value) -> Result<Self, String> {
        Ok(Noop)
    }

    async fn call(&self, _request: CallRequest, _call: Call) -> Result<Option<Value>, CallError> {
        Ok(None)
    }
}

export_plugin! {
    name: "atamo-bench-plugin",
    version: env!("CARGO_PKG_VERSION"),
    agents: { "noop" => Noop },
}
