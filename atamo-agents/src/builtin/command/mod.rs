//! The built-in `command` agent: runs a program with arguments, never through a shell.
//!
//! The agent's registration ([`CommandConfig`]) gives the fixed part: the program, its leading
//! arguments, the working directory, the environment and the time limit. Each action
//! ([`CommandAction`]) adds arguments (filled by a rule's template from the event), optionally
//! text for standard input and more environment variables.
//!
//! Arguments are handed to the program as separate `argv` entries: no shell sees them, so
//! spaces, quotes, `$HOME`, `*` and `;` arrive exactly as written and cannot start another
//! command.
//!
//! What a call gives back:
//! - each line the program writes to standard output is one answer, `{"line": "..."}`, in
//!   order (a long output is a live feed; for an event, not a request, lines are read and
//!   counted but there is nobody to answer);
//! - exit status 0: the call succeeds with `{"exit": 0, "lines": <number of stdout lines>}`;
//! - another exit status: a permanent failure (retryable when the status is listed in
//!   [`CommandConfig::retry_exit_codes`]) whose reason carries the status and the end of
//!   standard error;
//! - killed by a signal it was not sent by the agent:
//!   [`AgentError::Crashed`](atamo_core::agent::AgentError::Crashed) (retryable);
//! - still running after [`CommandConfig::timeout_ms`]: the program and every process in its
//!   process group are killed and the call fails with
//!   [`AgentError::Timeout`](atamo_core::agent::AgentError::Timeout);
//! - the call is cancelled, or its request ends: the processes are killed the same way.
//!
//! ```
//! use atamo_agents::builtin::command::CommandAgent;
//! use serde_json::json;
//!
//! let agent = CommandAgent::from_config(
//!     "logger",
//!     &json!({"program": "tee", "args": ["-a"], "timeout_ms": 5000}),
//! )?;
//! assert_eq!(agent.config().program, "tee");
//!
//! let bad = CommandAgent::from_config("logger", &json!({"program": "./relative", "timeout_ms": 0}))
//!     .unwrap_err();
//! assert_eq!(bad.problems.len(), 2, "{bad}");
//! # Ok::<(), atamo_agents::builtin::ConfigProblems>(())
//! ```

mod action;
mod agent;
mod config;
mod group;
mod output;

pub use action::{CommandAction, ACTION_SCHEMA};
pub use agent::CommandAgent;
pub use config::{
    CommandConfig, CONFIG_SCHEMA, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_STDERR_BYTES,
    DEFAULT_TIMEOUT_MS,
};
