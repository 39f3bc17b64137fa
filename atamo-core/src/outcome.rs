//! How a call ends: a [`Reply`], or an [`AgentError`] that says whether trying again can help.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// What a successful call returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reply {
    /// An optional result value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl Reply {
    /// Done, nothing to report.
    pub fn done() -> Self {
        Self { payload: None }
    }

    /// Done, with a result value.
    pub fn with(payload: Value) -> Self {
        Self {
            payload: Some(payload),
        }
    }
}

/// Why a call failed. The variant says whether trying again can help; the hub matches on it and
/// never parses the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentError {
    /// A passing failure: trying again later may succeed (after `after`, when given).
    #[error("retryable failure: {reason}")]
    Retry {
        /// What went wrong.
        reason: String,
        /// How long to wait before the next try, when the other side said (Retry-After).
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "crate::serde_ms::ser_opt_duration_ms"
        )]
        after: Option<Duration>,
    },
    /// Trying again cannot help: bad input, refused, not found.
    #[error("permanent failure: {reason}")]
    Permanent {
        /// What went wrong.
        reason: String,
    },
    /// The call took longer than allowed.
    #[error("timed out after {}ms", .after.as_millis())]
    Timeout {
        /// The limit that was exceeded.
        #[serde(serialize_with = "crate::serde_ms::ser_duration_ms")]
        after: Duration,
    },
    /// The agent panicked.
    #[error("agent panicked: {message}")]
    Panicked {
        /// The panic message, when it was text.
        message: String,
    },
    /// The agent's process or connection died during the call.
    #[error("agent crashed: {reason}")]
    Crashed {
        /// What is known about it.
        reason: String,
    },
    /// The call was cancelled (the hub is stopping, or the client went away).
    #[error("cancelled")]
    Cancelled,
}

impl AgentError {
    /// A retryable failure.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    /// A retryable failure with a hint of when to try again.
    pub fn retry_after(reason: impl Into<String>, after: Duration) -> Self {
        Self::Retry {
            reason: reason.into(),
            after: Some(after),
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Permanent { .. } | Self::Cancelled)
    }
}

/// The message of a caught panic, when it was text.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
}
