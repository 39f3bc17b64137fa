//! One run of an agent's program: starting it, the `hello` handshake, and the connection that
//! calls use while it lives.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use atamo_core::AgentId;
use atamo_plugin_protocol::{HostMessage, PluginMessage, PROCESS_PROTOCOL_VERSION};
use serde_json::Value;
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::error::ProcessError;
use super::io::{forward_stderr, write_lines, Activity, Line, LineReader};
use super::spec::ProcessSpec;

/// What the program sent for one call.
#[derive(Debug)]
pub(super) enum Delivery {
    /// An answer.
    Data(Value),
    /// The call succeeded.
    End(Option<Value>),
    /// The call failed.
    Error(atamo_plugin_protocol::CallError),
}

/// The calls of one process, and the way to its stdin. Shared by the calls (which register
/// themselves and send), the stdout reader (which delivers) and the supervisor (which fails
/// them all when the process dies).
pub(super) struct Conn {
    pub(super) pid: u32,
    /// How the reading of stdout progresses.
    pub(super) activity: Arc<Activity>,
    tx: mpsc::UnboundedSender<HostMessage>,
    /// `None` once the process is gone: late calls must not wait for answers that never come.
    calls: Mutex<Option<HashMap<u64, mpsc::Sender<Delivery>>>>,
    death: OnceLock<String>,
}

/// A line from the program that breaks the protocol.
pub(super) struct Violation(pub(super) String);

impl Conn {
    fn new(pid: u32, tx: mpsc::UnboundedSender<HostMessage>) -> Self {
        Self {
            pid,
            activity: Arc::default(),
            tx,
            calls: Mutex::new(Some(HashMap::new())),
            death: OnceLock::new(),
        }
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, Option<HashMap<u64, mpsc::Sender<Delivery>>>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a line to the program; false when its stdin is gone.
    pub(super) fn send(&self, message: HostMessage) -> bool {
        self.tx.send(message).is_ok()
    }

    /// Registers call `id`, or `None` when the process is already gone.
    pub(super) fn register(&self, id: u64, capacity: usize) -> Option<mpsc::Receiver<Delivery>> {
        let (tx, rx) = mpsc::channel(capacity);
        self.calls().as_mut()?.insert(id, tx);
        Some(rx)
    }

    /// Forgets call `id`; its late answers are dropped.
    pub(super) fn forget(&self, id: u64) {
        if let Some(calls) = self.calls().as_mut() {
            calls.remove(&id);
        }
    }

    /// How many calls are waiting for this process.
    pub(super) fn in_flight(&self) -> usize {
        self.calls().as_ref().map_or(0, HashMap::len)
    }

    /// Hands what the program sent to its call. A call that no longer waits (dropped) is
    /// skipped; more answers than the call's credits allow break the protocol.
    fn deliver(&self, id: u64, delivery: Delivery, ends: bool) -> Result<(), Violation> {
        let mut calls = self.calls();
        let Some(calls) = calls.as_mut() else {
            return Ok(());
        };
        let sender = if ends {
            calls.remove(&id)
        } else {
            calls.get(&id).cloned()
        };
        let Some(sender) = sender else {
            tracing::debug!(id, "dropping a line for a call that is no longer waiting");
            return Ok(());
        };
        match sender.try_send(delivery) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Violation(format!(
                "sent more answers for call {id} than its credits allow"
            ))),
        }
    }

    /// Marks the process gone: every call waiting on it ends as crashed with `reason`.
    pub(super) fn fail_all(&self, reason: &str) {
        let _ = self.death.set(reason.to_owned());
        let calls = self.calls().take();
        // Dropping the senders wakes the calls; they read the reason.
        drop(calls);
    }

    /// Why the process is gone, for calls that saw it go.
    pub(super) fn death_reason(&self) -> String {
        self.death
            .get()
            .cloned()
            .unwrap_or_else(|| "the process ended".to_owned())
    }
}

/// What the stdout reader tells the supervisor.
#[derive(Debug)]
pub(super) enum ReaderEvent {
    /// A `pong`.
    Pong(u64),
    /// A line broke the protocol; reading stopped.
    Garbage(String),
    /// Stdout closed (or could not be read).
    Eof,
}

/// A running process after a successful handshake.
pub(super) struct Incarnation {
    pub(super) child: Child,
    pub(super) conn: Arc<Conn>,
    pub(super) events: mpsc::UnboundedReceiver<ReaderEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Incarnation {
    fn drop(&mut self) {
        // The reader ends with stdout, the writer with the channel; abort them anyway so
        // neither outlives the process (a grandchild may hold a pipe open). The stderr task is
        // left to finish: a program's last words (a panic message) come right before it dies.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Incarnation {
    pub(super) fn pid(&self) -> u32 {
        self.conn.pid
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub(super) async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// After the process exited: waits a moment for the reader to hand over what the program
    /// wrote before it went (an `end` right before exiting), then stops reading.
    pub(super) async fn drain(&mut self) {
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(Some(event)) = tokio::time::timeout_at(until, self.events.recv()).await {
            if matches!(event, ReaderEvent::Eof | ReaderEvent::Garbage(_)) {
                break;
            }
        }
    }
}

/// Starts the program and does the handshake; on any failure the process is killed.
pub(super) async fn start(
    agent: &AgentId,
    spec: &ProcessSpec,
) -> Result<Incarnation, ProcessError> {
    let program = spec.command_line();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound {
                program: program.clone(),
                error: e.to_string(),
            }
        } else {
            ProcessError::CannotStart {
                program: program.clone(),
                error: e.to_string(),
            }
        }
    })?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ProcessError::CannotStart {
            program,
            error: "its standard streams could not be piped".to_owned(),
        });
    };
    tokio::spawn(forward_stderr(agent.clone(), pid, stderr));
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(rx, stdin));
    let conn = Arc::new(Conn::new(pid, tx));
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut incarnation = Incarnation {
        child,
        conn,
        events,
        tasks: vec![writer],
    };
    let mut stdout = LineReader::new(stdout, spec.max_line_bytes);
    incarnation.conn.send(HostMessage::Hello {
        protocol: PROCESS_PROTOCOL_VERSION,
        agent: agent.to_string(),
        kind: spec.kind.clone(),
        config: spec.config.clone(),
    });
    match handshake(&mut incarnation, &mut stdout, spec, &program).await {
        Ok(()) => {
            let conn = incarnation.conn.clone();
            let stdout = stdout.with_activity(conn.activity.clone());
            incarnation
                .tasks
                .push(tokio::spawn(read_stdout(stdout, conn, events_tx)));
            Ok(incarnation)
        }
        Err(e) => {
            incarnation.kill().await;
            Err(e)
        }
    }
}

async fn handshake(
    incarnation: &mut Incarnation,
    stdout: &mut LineReader<ChildStdout>,
    spec: &ProcessSpec,
    program: &str,
) -> Result<(), ProcessError> {
    let deadline = tokio::time::Instant::now() + spec.handshake_timeout;
    loop {
        let line = match tokio::time::timeout_at(deadline, stdout.next_line()).await {
            Err(_) => {
                return Err(ProcessError::HandshakeTimeout {
                    program: program.to_owned(),
                    after: spec.handshake_timeout,
                })
            }
            Ok(Ok(line)) => line,
            Ok(Err(_)) => Line::Eof,
        };
        let bad = |error: String, bytes: &[u8]| ProcessError::BadHandshake {
            program: program.to_owned(),
            found: preview(bytes),
            error,
        };
        match line {
            Line::Eof => {
                let status =
                    match tokio::time::timeout(Duration::from_secs(1), incarnation.child.wait())
                        .await
                    {
                        Ok(Ok(status)) => status.to_string(),
                        _ => "it closed its stdout".to_owned(),
                    };
                return Err(ProcessError::ExitedEarly {
                    program: program.to_owned(),
                    status,
                });
            }
            Line::TooLong => {
                return Err(bad(
                    format!("a line longer than {} bytes", spec.max_line_bytes),
                    &stdout.buf,
                ))
            }
            Line::Complete if stdout.buf.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Complete => {}
        }
        return match serde_json::from_slice::<PluginMessage>(&stdout.buf) {
            Ok(PluginMessage::Hello { protocol, .. }) if protocol == PROCESS_PROTOCOL_VERSION => {
                Ok(())
            }
            Ok(PluginMessage::Hello { protocol, .. }) => Err(ProcessError::WrongVersion {
                program: program.to_owned(),
                program_version: protocol,
                host_version: PROCESS_PROTOCOL_VERSION,
            }),
            Ok(PluginMessage::InitFailed { error }) => Err(ProcessError::InitFailed {
                program: program.to_owned(),
                kind: spec.kind.clone(),
                error,
            }),
            Ok(_) => Err(bad(
                "expected `hello` or `init_failed`".to_owned(),
                &stdout.buf,
            )),
            Err(e) => Err(bad(format!("not a protocol line: {e}"), &stdout.buf)),
        };
    }
}

/// The start of a line, for messages.
pub(super) fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 120;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    if bytes.len() > MAX {
        format!("{text:?}...")
    } else {
        format!("{text:?}")
    }
}

/// Reads the program's stdout after the handshake: answers go straight to their calls,
/// `pong`s and trouble to the supervisor.
async fn read_stdout(
    mut stdout: LineReader<ChildStdout>,
    conn: Arc<Conn>,
    events: mpsc::UnboundedSender<ReaderEvent>,
) {
    let max = stdout.max;
    let end = loop {
        match stdout.next_line().await {
            Ok(Line::Eof) | Err(_) => break ReaderEvent::Eof,
            Ok(Line::TooLong) => {
                break ReaderEvent::Garbage(format!(
                    "wrote a line longer than {max} bytes, starting {}",
                    preview(&stdout.buf)
                ))
            }
            Ok(Line::Complete) => {}
        }
        if stdout.buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A big line takes a while to parse: a `pong` behind it is late because of the host,
        // not the process. The supervisor sees this and waits.
        conn.activity.set_busy(true);
        let handled = handle_line(&stdout.buf, &conn, &events);
        conn.activity.set_busy(false);
        conn.activity.bump();
        if let Err(end) = handled {
            break end;
        }
    };
    let _ = events.send(end);
}

/// Parses one line and hands it on; an error is the event that ends reading.
fn handle_line(
    line: &[u8],
    conn: &Conn,
    events: &mpsc::UnboundedSender<ReaderEvent>,
) -> Result<(), ReaderEvent> {
    let message = match serde_json::from_slice::<PluginMessage>(line) {
        Ok(message) => message,
        Err(e) => {
            return Err(ReaderEvent::Garbage(format!(
                "wrote a line that is not protocol JSON ({e}): {}",
                preview(line)
            )))
        }
    };
    let delivered = match message {
        PluginMessage::Data { id, payload } => conn.deliver(id, Delivery::Data(payload), false),
        PluginMessage::End { id, payload } => conn.deliver(id, Delivery::End(payload), true),
        PluginMessage::Error { id, error } => conn.deliver(id, Delivery::Error(error), true),
        PluginMessage::Pong { id } => {
            let _ = events.send(ReaderEvent::Pong(id));
            Ok(())
        }
        PluginMessage::Hello { .. } | PluginMessage::InitFailed { .. } => {
            tracing::warn!("ignoring a second handshake line from the process");
            Ok(())
        }
    };
    delivered.map_err(|Violation(reason)| ReaderEvent::Garbage(reason))
}
