//! An example native agent: a warehouse inventory.
//!
//! Registered with init metadata such as
//! `{"warehouse": "berlin", "stock": {"A-100": 5, "B-200": 0}}`, it answers two action types:
//!
//! - `check` (`{"sku": "A-100"}`): one answer, `{"sku", "available", "in_stock", "warehouse"}`;
//!   an unknown SKU is a permanent failure (asking again will not help).
//! - `list` (`{}`): a feed, one answer per SKU in name order, then `{"skus": n}`.
//!
//! Build it with `cargo build -p atamo-example-agent`; the library is
//! `target/debug/libatamo_example_agent.so` (`.dylib` on macOS, `.dll` on Windows).

use std::collections::BTreeMap;

use atamo_plugin_sdk::{
    async_trait, export_plugin, json, tracing, Call, CallError, CallRequest, PluginAgent, Value,
};
use serde::Deserialize;

/// The agent: one warehouse's stock.
pub struct Inventory {
    warehouse: String,
    stock: BTreeMap<String, u64>,
}

/// Its init metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// The warehouse's name.
    pub warehouse: String,
    /// Stock per SKU.
    #[serde(default)]
    pub stock: BTreeMap<String, u64>,
}

#[async_trait]
impl PluginAgent for Inventory {
    type Config = InventoryConfig;

    const DESCRIPTION: &'static str = "answers stock questions for one warehouse";

    // The host checks registrations against this schema before `new` runs, and names the
    // field at fault.
    const CONFIG_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "warehouse": {"type": "string", "minLength": 1},
            "stock": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
        },
        "required": ["warehouse"],
        "additionalProperties": false
    }"#;

    fn new(config: InventoryConfig) -> Result<Self, String> {
        tracing::info!(
            "inventory for {} with {} SKUs",
            config.warehouse,
            config.stock.len()
        );
        Ok(Self {
            warehouse: config.warehouse,
            stock: config.stock,
        })
    }

    async fn call(&self, request: CallRequest, call: Call) -> Result<Option<Value>, CallError> {
        match request.action_type.as_str() {
            "check" => {
                let sku = request.payload["sku"]
                    .as_str()
                    .ok_or_else(|| CallError::permanent("`sku` is missing"))?;
                let available = *self
                    .stock
                    .get(sku)
                    .ok_or_else(|| CallError::permanent(format!("unknown SKU `{sku}`")))?;
                Ok(Some(json!({
                    "sku": sku,
                    "available": available,
                    "in_stock": available > 0,
                    "warehouse": self.warehouse,
                })))
            }
            "list" => {
                // A feed: each answer waits for a credit, so a slow client slows the plugin
                // instead of piling answers up; a cancelled request stops it here.
                for (sku, available) in &self.stock {
                    call.emit(json!({"sku": sku, "available": available}))
                        .await?;
                }
                Ok(Some(json!({"skus": self.stock.len()})))
            }
            other => Err(CallError::permanent(format!(
                "inventory does not do `{other}`"
            ))),
        }
    }
}

export_plugin! {
    name: "example-inventory",
    version: env!("CARGO_PKG_VERSION"),
    agents: { "inventory" => Inventory },
}
