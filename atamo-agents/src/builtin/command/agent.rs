//! The `command` agent itself: starts the program for each call and judges how it ended.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::Action;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::time::Instant;

use super::action::CommandAction;
use super::config::{semantic_problems, CommandConfig, CONFIG_SCHEMA, KIND};
use super::group::GroupGuard;
use super::output::{
    abort_stderr, collect_stderr, read_and_wait, stderr_suffix, tail, Ended, STDERR_GRACE,
};
use crate::builtin::config::{parse_config, ConfigProblems};

/// The `command` agent; see the [module docs](super).
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

#[async_trait]
impl Agent for CommandAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        inner.run(action, ctx).await
    }
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

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}
