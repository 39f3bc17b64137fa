//! `ProcessAgent`: a supervised program behind the hub's `Agent` trait.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atamo_core::agent::{AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::request::AnswerError;
use atamo_core::telemetry::ProcessChange;
use atamo_core::{Action, AgentId, Control};
use atamo_plugin_protocol::HostMessage;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::conn::{self, Conn, Delivery};
use super::error::ProcessError;
use super::spec::ProcessSpec;
use super::state::{Link, ProcessState, Shared, StopHow};
use super::supervise::{supervise, Command};
use crate::wire::{agent_error, call_request};

/// An agent whose work is done by a separate program speaking JSON lines over its stdin and
/// stdout (see [`atamo_plugin_protocol`]), started and supervised by the hub.
///
/// [`ProcessAgent::start`] runs the program and returns once it has answered the `hello`, so
/// a program that cannot start, speaks another protocol version or refuses its config is
/// reported at once. From then on a supervisor task watches it: it pings the process, kills
/// it when it hangs or writes garbage, restarts it with exponential backoff when it ends, and
/// takes the agent offline after too many failed restarts in a row. Every change is recorded
/// as [`TelemetryKind::AgentProcess`](atamo_core::TelemetryKind::AgentProcess).
///
/// Calls in flight when the process dies fail as [`AgentError::Crashed`] (retryable). While
/// the process is restarting, new calls wait for it up to [`ProcessSpec::call_wait`], then
/// fail as `Crashed`; while the agent is offline or stopped they fail as `Crashed` at once.
///
/// The handle is cheap to clone. [`stop`](Self::stop) ends the program gracefully; dropping
/// the last handle (the hub holds one while the agent is registered) kills it.
#[derive(Clone)]
pub struct ProcessAgent {
    handle: Arc<Handle>,
}

/// Dropping the last one kills the process.
struct Handle {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    dropped: CancellationToken,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.dropped.cancel();
    }
}

impl std::fmt::Debug for ProcessAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessAgent")
            .field("id", &self.handle.shared.id)
            .field("program", &self.handle.shared.spec.command_line())
            .field("state", &self.state())
            .finish()
    }
}

impl ProcessAgent {
    /// Starts `spec`'s program for agent `id`, does the `hello` handshake, and hands the
    /// process to a supervisor task. Returns once the handshake succeeded, so every start-up
    /// error (program not found, handshake timeout, wrong protocol version, `init_failed`,
    /// garbage instead of a hello) is reported here.
    ///
    /// `control` is the hub whose telemetry records the process's changes (a [`Control`], or
    /// `None` to only log them, e.g. for an agent handed to `HubBuilder::agent` before the hub
    /// exists). The agent is not registered: see [`ProcessSupervisor`](super::ProcessSupervisor)
    /// for that, or register it yourself with
    /// [`AgentSpec::from_arc`](atamo_core::AgentSpec::from_arc).
    ///
    /// Must be called inside a tokio runtime.
    pub async fn start(
        id: AgentId,
        spec: ProcessSpec,
        control: impl Into<Option<Control>>,
    ) -> Result<ProcessAgent, ProcessError> {
        let control = control.into();
        spec.check()?;
        let incarnation = conn::start(&id, &spec).await?;
        let pid = incarnation.pid();
        tracing::info!(agent = %id, pid, program = %spec.command_line(), "process agent started");
        let (link, _) = watch::channel(Link::Up(incarnation.conn.clone()));
        let shared = Arc::new(Shared {
            id,
            spec,
            control,
            link,
            restarts: AtomicU32::new(0),
            stopped: Mutex::new(None),
            next_call: AtomicU64::new(1),
        });
        shared.record(ProcessChange::Started { pid, restarts: 0 });
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let dropped = CancellationToken::new();
        let span = tracing::info_span!("process_agent", agent = %shared.id);
        tokio::spawn(
            supervise(shared.clone(), incarnation, commands_rx, dropped.clone()).instrument(span),
        );
        Ok(ProcessAgent {
            handle: Arc::new(Handle {
                shared,
                commands,
                dropped,
            }),
        })
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.handle.shared.id
    }

    /// The spec it runs.
    pub fn spec(&self) -> &ProcessSpec {
        &self.handle.shared.spec
    }

    /// Where the process stands now.
    pub fn state(&self) -> ProcessState {
        match &*self.handle.shared.link.borrow() {
            Link::Up(conn) => ProcessState::Running { pid: conn.pid },
            Link::Restarting => ProcessState::Restarting,
            Link::Offline(reason) => ProcessState::Offline {
                reason: reason.to_string(),
            },
            Link::Stopping => ProcessState::Stopping,
            Link::Stopped => ProcessState::Stopped,
        }
    }

    /// The running process's id, if one runs.
    pub fn pid(&self) -> Option<u32> {
        match &*self.handle.shared.link.borrow() {
            Link::Up(conn) => Some(conn.pid),
            _ => None,
        }
    }

    /// How many times the process has been restarted since the agent started.
    pub fn restarts(&self) -> u32 {
        self.handle.shared.restarts.load(Ordering::Relaxed)
    }

    /// How many calls the running process has in flight.
    pub fn calls_in_flight(&self) -> usize {
        match &*self.handle.shared.link.borrow() {
            Link::Up(conn) => conn.in_flight(),
            _ => 0,
        }
    }

    /// Stops the process gracefully: sends `goodbye` (the program finishes its calls in flight
    /// and exits), waits [`ProcessSpec::stop_grace`], sends SIGTERM, waits again, then kills
    /// it. Records `Stopped { how }` and returns how it ended. New calls fail at once from
    /// the start of the stop; calls still in flight when the process ends fail as `Crashed`.
    /// Calling it again (or on a stopped agent) returns how the first stop ended.
    pub async fn stop(&self) -> StopHow {
        let shared = &self.handle.shared;
        let mut link = shared.link.subscribe();
        let _ = self.handle.commands.send(Command::Stop);
        // The supervisor sets `Stopped` when done, or when its task ends in any way.
        let _ = link.wait_for(|l| matches!(l, Link::Stopped)).await;
        let how = *shared.stopped.lock().unwrap_or_else(|p| p.into_inner());
        how.unwrap_or(StopHow::NotRunning)
    }
}

#[async_trait]
impl atamo_core::Agent for ProcessAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let shared = self.handle.shared.clone();
        call(shared, action, ctx).await
    }
}

/// Ends the call in the program if its future is dropped before the call ended.
struct CallGuard {
    conn: Arc<Conn>,
    id: u64,
    ended: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.forget(self.id);
            self.conn.send(HostMessage::Cancel { id: self.id });
        }
    }
}

fn crashed(reason: impl Into<String>) -> AgentError {
    AgentError::Crashed {
        reason: reason.into(),
    }
}

/// The process calls go to, waiting for a restart up to `call_wait`.
async fn connection(shared: &Shared, ctx: &CallContext) -> Result<Arc<Conn>, AgentError> {
    let mut link = shared.link.subscribe();
    let deadline = tokio::time::Instant::now() + shared.spec.call_wait;
    loop {
        let now = link.borrow_and_update().clone();
        match now {
            Link::Up(conn) => return Ok(conn),
            Link::Restarting => {}
            Link::Offline(reason) => {
                return Err(crashed(format!(
                    "agent `{}` is offline: {reason}",
                    shared.id
                )))
            }
            Link::Stopping | Link::Stopped => {
                return Err(crashed(format!(
                    "agent `{}`'s process has been stopped",
                    shared.id
                )))
            }
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, link.changed()) => match changed {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(crashed("the agent is gone")),
                Err(_) => return Err(crashed(format!(
                    "agent `{}`'s process is restarting and was not back within {}ms",
                    shared.id,
                    shared.spec.call_wait.as_millis()
                ))),
            },
            _ = ctx.cancelled() => return Err(AgentError::Cancelled),
        }
    }
}

async fn call(shared: Arc<Shared>, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
    let request = call_request(&action, &ctx);
    drop(action);
    let conn = connection(&shared, &ctx).await?;
    let id = shared.next_call.fetch_add(1, Ordering::Relaxed);
    let credits = shared.spec.credits.max(1);
    // Room for every answer the credits allow, the end, and one spare.
    let capacity = usize::try_from(credits).unwrap_or(usize::MAX / 2) + 2;
    let Some(mut rx) = conn.register(id, capacity) else {
        return Err(crashed(conn.death_reason()));
    };
    let mut guard = CallGuard {
        conn: conn.clone(),
        id,
        ended: false,
    };
    if !conn.send(HostMessage::Call {
        id,
        request,
        credits,
    }) {
        // The writer is gone: the process is going down. The supervisor fails the call.
        tracing::debug!(id, "the process's stdin is closed");
    }
    let grace = shared.spec.stop_grace;
    let mut cancelled_at: Option<tokio::time::Instant> = None;
    loop {
        let delivery = if let Some(at) = cancelled_at {
            match tokio::time::timeout_at(at + grace, rx.recv()).await {
                Ok(delivery) => delivery,
                // The program did not end the cancelled call in time; the guard cancels it
                // once more and forgets it.
                Err(_) => return Err(AgentError::Cancelled),
            }
        } else {
            tokio::select! {
                biased;
                delivery = rx.recv() => delivery,
                _ = ctx.cancelled() => {
                    conn.send(HostMessage::Cancel { id });
                    cancelled_at = Some(tokio::time::Instant::now());
                    continue;
                }
            }
        };
        match delivery {
            None => {
                guard.ended = true;
                return Err(crashed(format!(
                    "agent process {} {}",
                    conn.pid,
                    conn.death_reason()
                )));
            }
            Some(Delivery::Data(payload)) => {
                if let Err(AnswerError::Ended) = ctx.answer(payload).await {
                    // Nobody takes answers any more: stop the call.
                    if cancelled_at.is_none() {
                        conn.send(HostMessage::Cancel { id });
                        cancelled_at = Some(tokio::time::Instant::now());
                    }
                } else {
                    // Answered, or nobody asked (an event's call): either way the program may
                    // send one more. A slow client thus slows the program down.
                    conn.send(HostMessage::Credit { id, credits: 1 });
                }
            }
            Some(Delivery::End(payload)) => {
                guard.ended = true;
                return Ok(payload.map_or_else(Reply::done, Reply::with));
            }
            Some(Delivery::Error(error)) => {
                guard.ended = true;
                return Err(agent_error(error));
            }
        }
    }
}
