//! The JSON shapes that cross between host and plugin, for native plugins (inside the C ABI's
//! byte buffers) and process agents (one JSON object per line) alike. The host uses the same
//! types, so the two sides cannot drift.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of the process-agent line protocol. The host and the program exchange it in
/// their `hello` messages and refuse each other when they differ.
pub const PROCESS_PROTOCOL_VERSION: u32 = 1;

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

/// A line the host writes to a process agent's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HostMessage {
    /// The first line: the protocol version, and the instance to create.
    Hello {
        /// [`PROCESS_PROTOCOL_VERSION`] of the host.
        protocol: u32,
        /// The agent id it is registered under.
        agent: String,
        /// The kind to create (programs offering one kind may ignore it).
        kind: String,
        /// The init metadata.
        config: Value,
    },
    /// Start a call. Answers are `data` lines, at most `credits` of them until more are granted.
    Call {
        /// The call's id, unique while it runs.
        id: u64,
        /// What to do.
        request: CallRequest,
        /// How many `data` lines may be sent before the next `credit`.
        credits: u32,
    },
    /// Grant call `id` more answers.
    Credit {
        /// The call.
        id: u64,
        /// How many more.
        credits: u32,
    },
    /// Stop call `id`; it still ends with `end` or `error`.
    Cancel {
        /// The call.
        id: u64,
    },
    /// Are you alive? Answer `pong` with the same id.
    Ping {
        /// Echoed back.
        id: u64,
    },
    /// Finish the calls in flight and exit.
    Goodbye,
}

/// A line a process agent writes to its stdout (stdout carries nothing else; logs go to stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginMessage {
    /// The answer to the host's `hello`: ready.
    Hello {
        /// [`PROCESS_PROTOCOL_VERSION`] of the program.
        protocol: u32,
        /// The program's name.
        name: String,
        /// The program's version.
        version: String,
    },
    /// The answer to the host's `hello`: the instance could not be created.
    InitFailed {
        /// Why (names the config field at fault where possible).
        error: String,
    },
    /// One answer of call `id`.
    Data {
        /// The call.
        id: u64,
        /// The answer.
        payload: Value,
    },
    /// Call `id` succeeded.
    End {
        /// The call.
        id: u64,
        /// Its final result, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<Value>,
    },
    /// Call `id` failed.
    Error {
        /// The call.
        id: u64,
        /// Why.
        error: CallError,
    },
    /// The answer to `ping`.
    Pong {
        /// The ping's id.
        id: u64,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_have_the_documented_shape() {
        let line = serde_json::to_string(&HostMessage::Ping { id: 3 }).unwrap();
        assert_eq!(line, r#"{"type":"ping","id":3}"#);
        let line = serde_json::to_string(&PluginMessage::Error {
            id: 7,
            error: CallError::Retry {
                reason: "busy".into(),
                after_ms: Some(50),
            },
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"type":"error","id":7,"error":{"kind":"retry","reason":"busy","after_ms":50}}"#
        );
        let back: PluginMessage = serde_json::from_str(r#"{"type":"end","id":1}"#).unwrap();
        assert_eq!(
            back,
            PluginMessage::End {
                id: 1,
                payload: None
            }
        );
    }
}
