//! What a rule provider sees of an event, and the actions it proposes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event as a rule-provider plugin sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventIn {
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its correlation id.
    pub correlation_id: String,
    /// Who sent it.
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Its payload.
    pub payload: Value,
}

/// An action a rule-provider plugin proposes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposalOut {
    /// The rule that matched (its id, for telemetry and listings).
    pub rule: String,
    /// The agent to send the action to.
    pub agent: String,
    /// The action type.
    pub action: String,
    /// The action's payload.
    pub payload: Value,
    /// Who may share one call of identical requests: `off`, `user` (the default), `tenant`
    /// or `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<String>,
    /// Keep a successful call's answers this long for identical requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_ms: Option<u64>,
}

/// What `evaluate` returns: the proposals, or why evaluation failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluateOut {
    /// The matched rules' actions.
    #[serde(default)]
    pub proposals: Vec<ProposalOut>,
    /// Set when the provider could not evaluate the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
