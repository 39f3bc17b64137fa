//! Why a process agent could not be started.

use std::time::Duration;

use atamo_core::hub::ConfigError;
use atamo_core::AgentId;

/// Why a process agent could not be started (or registered).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The spec is invalid; every problem is listed.
    #[error("invalid process spec: {}", problems.join("; "))]
    BadSpec {
        /// What is wrong.
        problems: Vec<String>,
    },
    /// The program does not exist (or is not in `PATH`).
    #[error("cannot start `{program}`: program not found ({error}); check the path, or that it is in PATH")]
    NotFound {
        /// The command line.
        program: String,
        /// The system's error.
        error: String,
    },
    /// The program exists but could not be started (permissions, not executable, ...).
    #[error("cannot start `{program}`: {error}")]
    CannotStart {
        /// The command line.
        program: String,
        /// The system's error.
        error: String,
    },
    /// The program did not answer the `hello` in time.
    #[error("`{program}` did not answer the hello within {}ms; does it speak the Atamo process protocol on stdout?", .after.as_millis())]
    HandshakeTimeout {
        /// The command line.
        program: String,
        /// The limit.
        after: Duration,
    },
    /// The program speaks another version of the protocol.
    #[error("`{program}` speaks process protocol {program_version}, this hub speaks {host_version}: rebuild the program against an atamo-plugin-sdk with PROCESS_PROTOCOL_VERSION {host_version} (or run a hub that speaks {program_version})")]
    WrongVersion {
        /// The command line.
        program: String,
        /// The version the program announced.
        program_version: u32,
        /// The version this hub speaks.
        host_version: u32,
    },
    /// The program refused to create the instance (`init_failed`); its message is passed
    /// through.
    #[error("`{program}` could not initialise kind `{kind}`: {error}")]
    InitFailed {
        /// The command line.
        program: String,
        /// The kind asked for.
        kind: String,
        /// The program's message.
        error: String,
    },
    /// The program answered the `hello` with something else than a `hello` or `init_failed`.
    #[error("`{program}` answered the hello with {found} ({error}); stdout must carry protocol lines only: log to stderr")]
    BadHandshake {
        /// The command line.
        program: String,
        /// The start of the line it wrote.
        found: String,
        /// Why it is not a hello.
        error: String,
    },
    /// The program ended (or closed its stdout) before answering the `hello`.
    #[error("`{program}` exited before answering the hello ({status}); see its stderr in the log")]
    ExitedEarly {
        /// The command line.
        program: String,
        /// Its exit status, as far as known.
        status: String,
    },
    /// The hub refused the registration.
    #[error("cannot register agent `{agent}`: {error}")]
    Register {
        /// The agent.
        agent: AgentId,
        /// The hub's reasons.
        error: ConfigError,
    },
}
