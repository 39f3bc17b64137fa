//! The `command` agent's registration: its shape, its schema, and the checks beyond the schema.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// The kind name used in configuration problems.
pub(super) const KIND: &str = "command";

/// Default time limit of one call: 60 s.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Default longest standard-output line: 1 MiB.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 1024 * 1024;
/// Default amount of standard error kept (its end): 64 KiB.
pub const DEFAULT_MAX_STDERR_BYTES: u64 = 64 * 1024;

/// The JSON schema of [`CommandConfig`].
pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "program": {"type": "string", "minLength": 1},
    "args": {"type": "array", "items": {"type": "string"}},
    "working_dir": {"type": "string", "minLength": 1},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "clear_env": {"type": "boolean"},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "max_line_bytes": {"type": "integer", "minimum": 1},
    "max_stderr_bytes": {"type": "integer", "minimum": 0},
    "retry_exit_codes": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 255}}
  },
  "required": ["program"],
  "additionalProperties": false
}"#;

/// The command agent's registration: which program it runs and how.
///
/// ```json
/// {
///   "program": "/usr/bin/python3",
///   "args": ["/opt/hooks/on_order.py", "--verbose"],
///   "working_dir": "/var/lib/hooks",
///   "env": {"HOOK_MODE": "live"},
///   "clear_env": false,
///   "timeout_ms": 10000,
///   "max_line_bytes": 65536,
///   "max_stderr_bytes": 65536,
///   "retry_exit_codes": [75]
/// }
/// ```
///
/// `Debug` shows the names of the environment variables but not their values, which may be
/// secrets.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandConfig {
    /// The program: an absolute path (checked at registration) or a bare name looked up on
    /// `PATH` when the call starts. A relative path such as `./run.sh` is refused, since it is
    /// ambiguous whether it is relative to the hub's directory or to `working_dir`.
    pub program: String,
    /// Arguments always given first, before the action's.
    #[serde(default)]
    pub args: Vec<String>,
    /// The directory the program runs in (default: the hub's).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Environment variables set for the program.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment rather than the hub's (then only `env`, the action's
    /// `env` and the `ATAMO_*` variables are set).
    #[serde(default)]
    pub clear_env: bool,
    /// The longest a call may run before its processes are killed (default 60 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The longest standard-output line, in bytes without the newline (default 1 MiB); a
    /// longer line fails the call (permanently) and stops the program.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: u64,
    /// How much of the end of standard error is kept for the failure reason (default 64 KiB).
    #[serde(default = "default_max_stderr_bytes")]
    pub max_stderr_bytes: u64,
    /// Exit statuses that mean "try again later" (for example 75, `EX_TEMPFAIL`): a call ending
    /// with one fails as retryable rather than permanent.
    #[serde(default)]
    pub retry_exit_codes: Vec<i32>,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_line_bytes() -> u64 {
    DEFAULT_MAX_LINE_BYTES
}

fn default_max_stderr_bytes() -> u64 {
    DEFAULT_MAX_STDERR_BYTES
}

impl fmt::Debug for CommandConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandConfig")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("working_dir", &self.working_dir)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("clear_env", &self.clear_env)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_stderr_bytes", &self.max_stderr_bytes)
            .field("retry_exit_codes", &self.retry_exit_codes)
            .finish()
    }
}

/// Checks the schema cannot express, on the raw configuration so that they are reported
/// together with the schema's problems. Fields of the wrong type are left to the schema.
pub(super) fn semantic_problems(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(program) = config.get("program").and_then(Value::as_str) {
        program_problems(program, &mut problems);
    }
    if let Some(args) = config.get("args").and_then(Value::as_array) {
        for (i, arg) in args.iter().enumerate() {
            if arg.as_str().is_some_and(|a| a.contains('\0')) {
                problems.push(format!("field `args[{i}]`: contains a NUL character"));
            }
        }
    }
    if let Some(dir) = config.get("working_dir").and_then(Value::as_str) {
        if !dir.is_empty() {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => problems.push(format!("field `working_dir`: `{dir}` is not a directory")),
                Err(e) => problems.push(format!("field `working_dir`: `{dir}`: {e}")),
            }
        }
    }
    if let Some(env) = config.get("env").and_then(Value::as_object) {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        env_problems(&env, "env", &mut problems);
    }
    problems
}

fn program_problems(program: &str, problems: &mut Vec<String>) {
    if program.is_empty() {
        return; // the schema names it
    }
    if program.contains('\0') {
        problems.push("field `program`: contains a NUL character".to_owned());
        return;
    }
    let path = Path::new(program);
    if path.is_absolute() {
        match std::fs::metadata(path) {
            Err(e) => problems.push(format!("field `program`: `{program}`: {e}")),
            Ok(m) if !m.is_file() => {
                problems.push(format!("field `program`: `{program}` is not a file"))
            }
            Ok(m) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if m.permissions().mode() & 0o111 == 0 {
                        problems.push(format!("field `program`: `{program}` is not executable"));
                    }
                }
                #[cfg(not(unix))]
                let _ = m;
            }
        }
    } else if program.contains('/') || program.contains(std::path::MAIN_SEPARATOR) {
        problems.push(format!(
            "field `program`: `{program}` is a relative path; give an absolute path or a bare \
             name looked up on PATH"
        ));
    }
}

pub(super) fn env_problems(
    env: &BTreeMap<String, String>,
    field: &str,
    problems: &mut Vec<String>,
) {
    for (name, value) in env {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            problems.push(format!(
                "field `{field}`: `{name}` is not a valid environment variable name"
            ));
        }
        if value.contains('\0') {
            problems.push(format!("field `{field}.{name}`: contains a NUL character"));
        }
    }
}
