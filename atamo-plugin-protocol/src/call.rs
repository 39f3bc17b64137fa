//! One call of an agent: what it is asked to do, and how it can fail.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One action for an agent to perform, with what it needs to know about the event behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// The action's id; stable across retries, so usable as an idempotency key.
    pub action_id: String,
    /// What to do.
    pub action_type: String,
    /// 1 for the first try, 2 for the first retry, and so on.
    #[serde(default = "one")]
    pub attempt: u32,
    /// The event that caused the action.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Ties together everything one original event caused.
    pub correlation_id: String,
    /// The user the agent acts for.
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Set when the action answers a request: answers then reach the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The action's payload.
    pub payload: Value,
}

fn one() -> u32 {
    1
}

/// Why a call failed, as the plugin reports it. The host maps it onto its own `AgentError`,
/// so the variant decides whether the hub tries again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallError {
    /// A passing failure: trying again later may succeed (after `after_ms`, when given).
    Retry {
        /// What went wrong.
        reason: String,
        /// How long to wait before the next try.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_ms: Option<u64>,
    },
    /// Trying again cannot help.
    Permanent {
        /// What went wrong.
        reason: String,
    },
    /// The call took longer than the plugin allows itself.
    Timeout {
        /// The limit.
        after_ms: u64,
    },
    /// The plugin panicked; the panic was caught.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// Something the plugin depends on died.
    Crashed {
        /// What is known.
        reason: String,
    },
    /// The call stopped because it was cancelled.
    Cancelled,
}

impl CallError {
    /// A retryable failure.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after_ms: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Retry { reason, .. } => write!(f, "retryable failure: {reason}"),
            Self::Permanent { reason } => write!(f, "permanent failure: {reason}"),
            Self::Timeout { after_ms } => write!(f, "timed out after {after_ms}ms"),
            Self::Panicked { message } => write!(f, "panicked: {message}"),
            Self::Crashed { reason } => write!(f, "crashed: {reason}"),
            Self::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for CallError {}
