//! What a plugin offers: its kinds, each an agent or a rule provider, with its config schema.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin offers: the `description` of its declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// Its kinds.
    pub kinds: Vec<KindInfo>,
}

/// One kind of agent or rule provider a plugin offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindInfo {
    /// The kind's name, given at registration.
    pub name: String,
    /// Agent or rule provider.
    pub role: Role,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The JSON schema of the init metadata (the registration's config).
    #[serde(default = "any_object")]
    pub config_schema: Value,
}

fn any_object() -> Value {
    serde_json::json!({"type": "object"})
}

/// Whether a kind is an agent or a rule provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Performs actions.
    Agent,
    /// Turns events into actions.
    RuleProvider,
}
