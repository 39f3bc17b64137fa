//! `ProcessSpec`: which program to run for a process agent, and how to supervise it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ProcessError;

/// Default [`ProcessSpec::ping_interval`]: 5 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(5);
/// Default [`ProcessSpec::ping_timeout`]: 2 s.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`ProcessSpec::restart_backoff_initial`]: 100 ms.
pub const DEFAULT_RESTART_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Default [`ProcessSpec::restart_backoff_max`]: 30 s.
pub const DEFAULT_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default [`ProcessSpec::max_failed_restarts`]: 5.
pub const DEFAULT_MAX_FAILED_RESTARTS: u32 = 5;
/// Default [`ProcessSpec::handshake_timeout`]: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`ProcessSpec::stop_grace`]: 5 s.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);
/// Default [`ProcessSpec::call_wait`]: 10 s.
pub const DEFAULT_CALL_WAIT: Duration = Duration::from_secs(10);
/// Default [`ProcessSpec::max_line_bytes`]: 32 MiB, room for a 16 MiB payload and its framing
/// (JSON escaping can double a string's size).
pub const DEFAULT_MAX_LINE_BYTES: usize = 32 * 1024 * 1024;
/// Default [`ProcessSpec::credits`]: 32 answers per call ahead of the client.
pub const DEFAULT_CREDITS: u32 = 32;

/// Which program to run as a process agent, and how to supervise it.
///
/// Build one in code with [`ProcessSpec::new`] and the builder methods, or read it from
/// configuration (JSON, TOML, ...) with serde. In configuration every duration is a whole
/// number of milliseconds in a field ending in `_ms`; unknown fields are refused, so a typo
/// does not silently fall back to a default:
///
/// ```
/// use atamo_agents::process::ProcessSpec;
/// use std::time::Duration;
///
/// let spec: ProcessSpec = serde_json::from_value(serde_json::json!({
///     "program": "python3",
///     "args": ["plugins/python-agent/agent.py"],
///     "kind": "words",
///     "config": {"greeting": "hi"},
///     "ping_interval_ms": 1000,
/// })).unwrap();
/// assert_eq!(spec.ping_interval, Duration::from_secs(1));
/// assert_eq!(spec.ping_timeout, Duration::from_secs(2)); // the default
///
/// let same = ProcessSpec::new("python3")
///     .kind("words")
///     .arg("plugins/python-agent/agent.py")
///     .config(serde_json::json!({"greeting": "hi"}))
///     .ping_interval(Duration::from_secs(1));
/// assert_eq!(spec, same);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProcessSpec {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Its command-line arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables added to (or replacing those of) the hub's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The directory it runs in; the hub's own when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// The agent kind to create, sent in the `hello` (default: `default`). Programs offering
    /// one kind may ignore it; a program built on the SDK's `serve_stdio` refuses a kind it
    /// does not offer (`init_failed`), so name the kind for those.
    #[serde(default = "d_kind")]
    pub kind: String,
    /// The init metadata, sent in the `hello` (default: `{}`).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// How often the process is pinged (`ping_interval_ms`, default 5000).
    #[serde(rename = "ping_interval_ms", with = "ms", default = "d_ping_interval")]
    pub ping_interval: Duration,
    /// How long a `pong` may take before the process is deemed hung, killed and restarted
    /// (`ping_timeout_ms`, default 2000).
    #[serde(rename = "ping_timeout_ms", with = "ms", default = "d_ping_timeout")]
    pub ping_timeout: Duration,
    /// The pause before the first restart; it doubles with each failed restart in a row
    /// (`restart_backoff_initial_ms`, default 100).
    #[serde(
        rename = "restart_backoff_initial_ms",
        with = "ms",
        default = "d_backoff_initial"
    )]
    pub restart_backoff_initial: Duration,
    /// The longest pause between restarts (`restart_backoff_max_ms`, default 30000).
    #[serde(
        rename = "restart_backoff_max_ms",
        with = "ms",
        default = "d_backoff_max"
    )]
    pub restart_backoff_max: Duration,
    /// After this many restarts in a row that never became healthy, the agent goes offline
    /// (default 5). A process is healthy once it has answered its first ping.
    #[serde(default = "d_max_failed_restarts")]
    pub max_failed_restarts: u32,
    /// How long the program may take to answer the `hello` (`handshake_timeout_ms`, default
    /// 10000).
    #[serde(rename = "handshake_timeout_ms", with = "ms", default = "d_handshake")]
    pub handshake_timeout: Duration,
    /// How long a stop waits after `goodbye` before SIGTERM, and after SIGTERM before SIGKILL;
    /// also how long a cancelled call waits for the program to end it (`stop_grace_ms`,
    /// default 5000).
    #[serde(rename = "stop_grace_ms", with = "ms", default = "d_stop_grace")]
    pub stop_grace: Duration,
    /// How long a new call waits for a restarting process before it fails as `Crashed`
    /// (retryable) (`call_wait_ms`, default 10000). Calls fail at once while the agent is
    /// offline or stopped.
    #[serde(rename = "call_wait_ms", with = "ms", default = "d_call_wait")]
    pub call_wait: Duration,
    /// The longest line accepted from the program's stdout, in bytes (default 32 MiB). A
    /// longer line is a protocol violation: the process is killed and restarted.
    #[serde(default = "d_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How many answers a call may send ahead of its client (default 32); one more is granted
    /// for each answer the client takes.
    #[serde(default = "d_credits")]
    pub credits: u32,
}

/// The kind asked for when none is named.
pub const DEFAULT_KIND: &str = "default";

fn d_kind() -> String {
    DEFAULT_KIND.to_owned()
}
fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}
fn d_ping_interval() -> Duration {
    DEFAULT_PING_INTERVAL
}
fn d_ping_timeout() -> Duration {
    DEFAULT_PING_TIMEOUT
}
fn d_backoff_initial() -> Duration {
    DEFAULT_RESTART_BACKOFF_INITIAL
}
fn d_backoff_max() -> Duration {
    DEFAULT_RESTART_BACKOFF_MAX
}
fn d_max_failed_restarts() -> u32 {
    DEFAULT_MAX_FAILED_RESTARTS
}
fn d_handshake() -> Duration {
    DEFAULT_HANDSHAKE_TIMEOUT
}
fn d_stop_grace() -> Duration {
    DEFAULT_STOP_GRACE
}
fn d_call_wait() -> Duration {
    DEFAULT_CALL_WAIT
}
fn d_max_line_bytes() -> usize {
    DEFAULT_MAX_LINE_BYTES
}
fn d_credits() -> u32 {
    DEFAULT_CREDITS
}

/// Durations as whole milliseconds.
mod ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Whole milliseconds up to 24 hours (the range of a backoff): a longer pause or timeout
    /// would overflow the supervisor's clock arithmetic, and means a mistake.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        atamo_core::bounded::Backoff::deserialize(d).map(|b| b.get())
    }
}

impl ProcessSpec {
    /// Runs `program` (a path, or a name looked up in `PATH`); everything else has its
    /// default (kind `default`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            kind: d_kind(),
            config: empty_object(),
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            restart_backoff_initial: DEFAULT_RESTART_BACKOFF_INITIAL,
            restart_backoff_max: DEFAULT_RESTART_BACKOFF_MAX,
            max_failed_restarts: DEFAULT_MAX_FAILED_RESTARTS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            stop_grace: DEFAULT_STOP_GRACE,
            call_wait: DEFAULT_CALL_WAIT,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            credits: DEFAULT_CREDITS,
        }
    }

    /// Sets the agent kind asked for in the `hello`.
    #[must_use]
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds one command-line argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds command-line arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the program.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets the directory the program runs in.
    #[must_use]
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Sets the init metadata sent in the `hello`.
    #[must_use]
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Sets how often the process is pinged.
    #[must_use]
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.ping_interval = d;
        self
    }

    /// Sets how long a `pong` may take before the process counts as hung.
    #[must_use]
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.ping_timeout = d;
        self
    }

    /// Sets the first and the longest pause between restarts.
    #[must_use]
    pub fn restart_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.restart_backoff_initial = initial;
        self.restart_backoff_max = max;
        self
    }

    /// Sets how many restarts in a row may fail before the agent goes offline.
    #[must_use]
    pub fn max_failed_restarts(mut self, n: u32) -> Self {
        self.max_failed_restarts = n;
        self
    }

    /// Sets how long the program may take to answer the `hello`.
    #[must_use]
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Sets the grace periods of a stop (and of a cancelled call).
    #[must_use]
    pub fn stop_grace(mut self, d: Duration) -> Self {
        self.stop_grace = d;
        self
    }

    /// Sets how long a new call waits for a restarting process.
    #[must_use]
    pub fn call_wait(mut self, d: Duration) -> Self {
        self.call_wait = d;
        self
    }

    /// Sets the longest line accepted from the program.
    #[must_use]
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n;
        self
    }

    /// Sets how many answers a call may send ahead of its client.
    #[must_use]
    pub fn credits(mut self, n: u32) -> Self {
        self.credits = n;
        self
    }

    /// Every problem with the spec, or nothing.
    pub fn check(&self) -> Result<(), ProcessError> {
        let mut problems = Vec::new();
        if self.program.as_os_str().is_empty() {
            problems.push("`program` is empty".to_owned());
        }
        if self.kind.is_empty() {
            problems.push("`kind` is empty".to_owned());
        }
        for (name, d) in [
            ("ping_interval_ms", self.ping_interval),
            ("ping_timeout_ms", self.ping_timeout),
            ("handshake_timeout_ms", self.handshake_timeout),
        ] {
            if d.is_zero() {
                problems.push(format!("`{name}` must be more than 0"));
            }
        }
        if self.restart_backoff_max < self.restart_backoff_initial {
            problems.push(
                "`restart_backoff_max_ms` is less than `restart_backoff_initial_ms`".to_owned(),
            );
        }
        if self.credits == 0 {
            problems.push("`credits` must be at least 1".to_owned());
        }
        if self.max_line_bytes < 1024 {
            problems.push("`max_line_bytes` must be at least 1024".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProcessError::BadSpec { problems })
        }
    }

    /// The program and its arguments as one readable line, for messages.
    pub fn command_line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn unknown_fields_are_refused_and_defaults_filled() {
        let err = serde_json::from_value::<ProcessSpec>(serde_json::json!({
            "program": "x", "kind": "k", "ping_interval": 5
        }))
        .unwrap_err();
        assert!(err.to_string().contains("ping_interval"), "{err}");
        let spec: ProcessSpec =
            serde_json::from_value(serde_json::json!({"program": "x"})).unwrap();
        assert_eq!(spec, ProcessSpec::new("x"));
        assert_eq!(spec.kind, "default");
        let back: ProcessSpec =
            serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn the_guides_example_parses_and_shows_the_defaults() {
        let guide = include_str!("../../../guides/11-process-agent.md");
        let start = guide.find("```json\n").unwrap() + "```json\n".len();
        let end = start + guide[start..].find("```").unwrap();
        let spec: ProcessSpec = serde_json::from_str(&guide[start..end]).unwrap();
        let expected = ProcessSpec::new("python3")
            .arg("plugins/python-agent/agent.py")
            .env("PYTHONUNBUFFERED", "1")
            .working_dir("/srv/atamo")
            .kind("words")
            .config(serde_json::json!({"lowercase_counts": true}));
        assert_eq!(spec, expected);
        spec.check().unwrap();
    }

    #[test]
    fn check_names_every_problem() {
        let err = ProcessSpec::new("")
            .kind("")
            .credits(0)
            .restart_backoff(Duration::from_secs(2), Duration::from_secs(1))
            .check()
            .unwrap_err();
        let ProcessError::BadSpec { problems } = err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
