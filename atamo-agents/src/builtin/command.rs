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
//! - killed by a signal it was not sent by the agent: [`AgentError::Crashed`] (retryable);
//! - still running after [`CommandConfig::timeout_ms`]: the program and every process in its
//!   process group are killed and the call fails with [`AgentError::Timeout`];
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::request::AnswerError;
use atamo_core::Action;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{parse_config, ConfigProblems};

/// The kind name used in configuration problems.
const KIND: &str = "command";

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

/// The JSON schema of an action's payload ([`CommandAction`]).
pub const ACTION_SCHEMA: &str = r#"{
  "type": ["object", "null"],
  "properties": {
    "args": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
    "stdin": {"type": "string"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}}
  },
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

/// One action's payload: what this call adds to the agent's fixed configuration.
///
/// ```json
/// {
///   "args": ["--order", "{{payload.order.id}}", "{{payload.customer.name}}"],
///   "stdin": "{{payload.note}}",
///   "env": {"ORDER_ID": "{{payload.order.id}}"}
/// }
/// ```
///
/// Every field is optional (`{}` or `null` runs the program with its configured arguments
/// only). An argument may be a string, a number or a boolean (a template like
/// `"{{payload.order.id}}"` keeps the field's JSON type); it is passed as its text. A
/// payload of any other shape fails the call permanently, naming each field at fault.
///
/// The program also receives, whatever `clear_env` says, `ATAMO_USER` (the user the event
/// came from, on whose behalf the agent acts), `ATAMO_ACTION_ID` (the same for every attempt of
/// one action: use it as an idempotency key) and `ATAMO_ATTEMPT` (1 for the first try).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandAction {
    /// Arguments after the configured ones.
    pub args: Vec<String>,
    /// Text written to the program's standard input, which is then closed (when absent,
    /// standard input is empty).
    pub stdin: Option<String>,
    /// Environment variables set after the configured ones (overriding them).
    pub env: BTreeMap<String, String>,
}

impl CommandAction {
    /// Reads an action's payload, naming every field at fault.
    pub fn from_payload(payload: &Value) -> Result<Self, Vec<String>> {
        let schema: Value = serde_json::from_str(ACTION_SCHEMA).map_err(|e| vec![e.to_string()])?;
        let mut problems = crate::schema::check(payload, &schema);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut action = CommandAction::default();
        if let Some(args) = payload.get("args").and_then(Value::as_array) {
            for arg in args {
                action.args.push(match arg {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        action.stdin = payload
            .get("stdin")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(env) = payload.get("env").and_then(Value::as_object) {
            for (k, v) in env {
                action
                    .env
                    .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
        }
        for (i, arg) in action.args.iter().enumerate() {
            if arg.contains('\0') {
                problems.push(format!("field `args[{i}]`: contains a NUL character"));
            }
        }
        env_problems(&action.env, "env", &mut problems);
        if problems.is_empty() {
            Ok(action)
        } else {
            Err(problems)
        }
    }
}

/// The `command` agent; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct CommandAgent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    agent_id: String,
    config: CommandConfig,
}

impl CommandAgent {
    /// Builds the agent registered as `agent_id` from its configuration, naming every problem:
    /// fields of the wrong type or unknown, an absolute `program` that does not exist or cannot
    /// be run, a relative program path, a `working_dir` that is not a directory, environment
    /// variable names that cannot be set.
    pub fn from_config(agent_id: &str, config: &Value) -> Result<Self, ConfigProblems> {
        let schema: Value = serde_json::from_str(CONFIG_SCHEMA).map_err(|e| ConfigProblems {
            agent: agent_id.to_owned(),
            kind: KIND,
            problems: vec![format!("the command agent's own schema is broken: {e}")],
        })?;
        let mut problems = crate::schema::check(config, &schema);
        problems.extend(semantic_problems(config));
        if !problems.is_empty() {
            return Err(ConfigProblems {
                agent: agent_id.to_owned(),
                kind: KIND,
                problems,
            });
        }
        let config: CommandConfig = parse_config(agent_id, KIND, &schema, config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                agent_id: agent_id.to_owned(),
                config,
            }),
        })
    }

    /// The configuration the agent runs with.
    pub fn config(&self) -> &CommandConfig {
        &self.inner.config
    }
}

/// Checks the schema cannot express, on the raw configuration so that they are reported
/// together with the schema's problems. Fields of the wrong type are left to the schema.
fn semantic_problems(config: &Value) -> Vec<String> {
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

fn env_problems(env: &BTreeMap<String, String>, field: &str, problems: &mut Vec<String>) {
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

#[async_trait]
impl Agent for CommandAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        inner.run(action, ctx).await
    }
}

/// How the program's run ended, before its exit status is judged.
enum Ended {
    /// It exited (`lines` stdout lines read).
    Exited { status: ExitStatus, lines: u64 },
    /// The time limit passed.
    TimedOut,
    /// The call was cancelled or its request ended.
    Cancelled,
    /// A stdout line was longer than allowed.
    LineTooLong,
    /// Reading stdout or waiting for the program failed.
    Io(std::io::Error),
}

impl Inner {
    fn who(&self) -> String {
        format!(
            "command agent `{}`: `{}`",
            self.agent_id, self.config.program
        )
    }

    async fn run(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let config = &self.config;
        let request = CommandAction::from_payload(action.payload()).map_err(|problems| {
            AgentError::permanent(format!(
                "command agent `{}`: bad action payload: {}",
                self.agent_id,
                problems.join("; ")
            ))
        })?;
        let started = Instant::now();
        let limit = Duration::from_millis(config.timeout_ms);
        let deadline = started + limit;

        let mut command = Command::new(&config.program);
        command
            .args(&config.args)
            .args(&request.args)
            .stdin(if request.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        if let Some(dir) = &config.working_dir {
            command.current_dir(dir);
        }
        if config.clear_env {
            command.env_clear();
        }
        command
            .envs(&config.env)
            .envs(&request.env)
            .env("ATAMO_USER", action.principal().user.as_str())
            .env("ATAMO_ACTION_ID", action.id().to_string())
            .env("ATAMO_ATTEMPT", action.attempt().to_string());

        let mut child = command.spawn().map_err(|e| self.spawn_error(&e))?;
        let mut group = GroupGuard::new(child.id());

        if let (Some(text), Some(mut stdin)) = (request.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                // A program that exits without reading its input is not an error here: its
                // exit status says how it went.
                let _ = stdin.write_all(text.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        let stderr = child.stderr.take().map(|err| {
            let max = usize::try_from(config.max_stderr_bytes).unwrap_or(usize::MAX);
            tokio::spawn(tail(err, max))
        });
        let Some(stdout) = child.stdout.take() else {
            return Err(AgentError::permanent(format!(
                "{}: standard output was not captured",
                self.who()
            )));
        };
        let max_line = usize::try_from(config.max_line_bytes).unwrap_or(usize::MAX);

        let ended = tokio::select! {
            biased;
            _ = ctx.cancelled() => Ended::Cancelled,
            _ = tokio::time::sleep_until(deadline) => Ended::TimedOut,
            ended = read_and_wait(&mut child, stdout, max_line, &ctx) => ended,
        };

        if let Ended::Exited { status, lines } = ended {
            group.disarm();
            // Whatever the program wrote to stderr, waiting no longer than the deadline (with a
            // moment's grace): a process it left behind may hold stderr open.
            let grace = deadline.max(Instant::now() + STDERR_GRACE);
            let stderr = collect_stderr(stderr, grace).await;
            return self.judge(status, lines, &stderr);
        }
        group.kill();
        let _ = child.kill().await;
        match ended {
            Ended::TimedOut => {
                abort_stderr(stderr);
                Err(AgentError::Timeout { after: limit })
            }
            Ended::Cancelled | Ended::Exited { .. } => {
                abort_stderr(stderr);
                Err(AgentError::Cancelled)
            }
            Ended::LineTooLong => {
                let stderr = collect_stderr(stderr, Instant::now() + STDERR_GRACE).await;
                Err(AgentError::permanent(format!(
                    "{}: a standard output line is longer than max_line_bytes ({}); the \
                     program was stopped{}",
                    self.who(),
                    config.max_line_bytes,
                    stderr_suffix(&stderr)
                )))
            }
            Ended::Io(e) => {
                let stderr = collect_stderr(stderr, Instant::now() + STDERR_GRACE).await;
                Err(AgentError::Crashed {
                    reason: format!("{}: {e}{}", self.who(), stderr_suffix(&stderr)),
                })
            }
        }
    }

    fn judge(&self, status: ExitStatus, lines: u64, stderr: &str) -> Result<Reply, AgentError> {
        match status.code() {
            Some(0) => Ok(Reply::with(json!({"exit": 0, "lines": lines}))),
            Some(code) => {
                let reason = format!(
                    "{} exited with status {code}{}",
                    self.who(),
                    stderr_suffix(stderr)
                );
                if self.config.retry_exit_codes.contains(&code) {
                    Err(AgentError::retry(reason))
                } else {
                    Err(AgentError::permanent(reason))
                }
            }
            None => Err(AgentError::Crashed {
                reason: format!(
                    "{} was killed{}{}",
                    self.who(),
                    signal_of(status)
                        .map(|s| format!(" by signal {s}"))
                        .unwrap_or_default(),
                    stderr_suffix(stderr)
                ),
            }),
        }
    }

    fn spawn_error(&self, e: &std::io::Error) -> AgentError {
        use std::io::ErrorKind;
        let place = self
            .config
            .working_dir
            .as_ref()
            .map(|d| format!(" in `{}`", d.display()))
            .unwrap_or_default();
        let reason = format!("{}: cannot start it{place}: {e}", self.who());
        match e.kind() {
            ErrorKind::NotFound => AgentError::permanent(format!(
                "{reason} (the program, or the working directory, does not exist)"
            )),
            ErrorKind::PermissionDenied | ErrorKind::InvalidInput => AgentError::permanent(reason),
            // Out of processes or file descriptors: that passes.
            _ => AgentError::retry(reason),
        }
    }
}

/// Reads stdout line by line, answering each, then waits for the program to exit.
async fn read_and_wait(
    child: &mut Child,
    stdout: impl AsyncRead + Unpin,
    max_line: usize,
    ctx: &CallContext,
) -> Ended {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut answering = true;
    loop {
        match read_line(&mut reader, &mut buf, max_line).await {
            Ok(Line::Eof) => break,
            Ok(Line::TooLong) => return Ended::LineTooLong,
            Ok(Line::Text(line)) => {
                lines += 1;
                if answering {
                    match ctx.answer(json!({ "line": line })).await {
                        Ok(()) => {}
                        Err(AnswerError::NotARequest) => answering = false,
                        Err(_) => return Ended::Cancelled,
                    }
                }
            }
            Err(e) => return Ended::Io(e),
        }
    }
    match child.wait().await {
        Ok(status) => Ended::Exited { status, lines },
        Err(e) => Ended::Io(e),
    }
}

enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// One line of at most `max` bytes (without its `\n` or `\r\n`), as lossy UTF-8.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = (&mut *reader).take(limit).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(Line::Eof);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(String::from_utf8_lossy(buf).into_owned()))
}

/// The last `max` bytes a stream gives before it ends.
async fn tail<R: AsyncRead + Unpin>(mut reader: R, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > max.saturating_mul(2).max(8192) {
                    let cut = kept.len() - max;
                    kept.drain(..cut);
                }
            }
        }
    }
    if kept.len() > max {
        let cut = kept.len() - max;
        kept.drain(..cut);
    }
    kept
}

/// How long stderr may take to reach its end once the program has exited or been killed, past
/// the call's deadline.
const STDERR_GRACE: Duration = Duration::from_millis(100);

/// The text the stderr task kept, or nothing if it does not end by `until`.
async fn collect_stderr(task: Option<JoinHandle<Vec<u8>>>, until: Instant) -> String {
    let Some(task) = task else {
        return String::new();
    };
    let abort = task.abort_handle();
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim_end().to_owned(),
        _ => {
            abort.abort();
            String::new()
        }
    }
}

fn abort_stderr(task: Option<JoinHandle<Vec<u8>>>) {
    if let Some(task) = task {
        task.abort();
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

/// Kills the program's whole process group (the program and whatever it started) unless the
/// program has exited: when the call times out, is cancelled, or its future is dropped (the
/// hub's own call timeout). `kill_on_drop` covers the program itself on other platforms.
struct GroupGuard {
    #[cfg_attr(not(unix), allow(dead_code))]
    pid: Option<u32>,
    armed: bool,
}

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        Self { pid, armed: true }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    fn kill(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        #[cfg(unix)]
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            use nix::sys::signal::{killpg, Signal};
            use nix::unistd::Pid;
            // The group may already be gone (ESRCH): nothing left to kill.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
