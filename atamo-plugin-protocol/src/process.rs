//! The process-agent line protocol: one JSON object per line, host to program on stdin,
//! program to host on stdout.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{CallError, CallRequest};

/// The version of the process-agent line protocol. The host and the program exchange it in
/// their `hello` messages and refuse each other when they differ.
pub const PROCESS_PROTOCOL_VERSION: u32 = 1;

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
