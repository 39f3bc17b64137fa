//! The supervisor task of one process agent: pings, kills, restarts, goes offline, stops.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::telemetry::ProcessChange;
use atamo_core::TelemetryKind;
use atamo_plugin_protocol::HostMessage;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::conn::{self, Incarnation, ReaderEvent};
use super::state::{Link, Shared, StopHow};

/// What a handle asks of the supervisor.
#[derive(Debug)]
pub(super) enum Command {
    /// Stop gracefully.
    Stop,
}

/// How one process's run ended.
enum RunEnd {
    /// It died or was killed for misbehaving; `healthy` says whether it had answered a ping.
    Died { reason: String, healthy: bool },
    /// It was stopped on purpose.
    Stopped(StopHow),
}

/// Sets the agent `Stopped` however the supervisor task ends (even by a panic), so that
/// `stop()` never waits forever.
struct StoppedOnExit(Arc<Shared>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        self.0.set_link(Link::Stopped);
    }
}

/// Records how the stop ended, then lets `stop()` return it.
fn finish(shared: &Shared, how: StopHow) {
    *shared.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
    shared.record(ProcessChange::Stopped {
        how: how.as_str().to_owned(),
    });
    tracing::info!(how = how.as_str(), "process agent stopped");
    shared.set_link(Link::Stopped);
}

/// The pause before restart `attempt` (1-based): the initial backoff doubled per failed
/// attempt, at most the maximum, less up to a fifth at random so that many agents restarted
/// together do not stay in step.
fn backoff(shared: &Shared, attempt: u32) -> Duration {
    let initial = shared.spec.restart_backoff_initial;
    let max = shared.spec.restart_backoff_max;
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    let base = initial.saturating_mul(factor).min(max);
    let jitter = base.mul_f64(fastrand::f64() * 0.2);
    base.saturating_sub(jitter)
}

pub(super) async fn supervise(
    shared: Arc<Shared>,
    mut incarnation: Incarnation,
    mut commands: mpsc::UnboundedReceiver<Command>,
    dropped: CancellationToken,
) {
    let _stopped = StoppedOnExit(shared.clone());
    // Restarts in a row whose process never became healthy.
    let mut failed: u32 = 0;
    loop {
        let end = run(&shared, &mut incarnation, &mut commands, &dropped).await;
        let pid = incarnation.pid();
        match end {
            RunEnd::Stopped(how) => {
                incarnation
                    .conn
                    .fail_all(&format!("was stopped ({})", how.as_str()));
                finish(&shared, how);
                return;
            }
            RunEnd::Died { reason, healthy } => {
                shared.set_link(Link::Restarting);
                incarnation.conn.fail_all(&reason);
                tracing::warn!(pid, "process agent {reason}");
                shared.record(ProcessChange::Exited { reason });
                if healthy {
                    failed = 0;
                }
            }
        }
        drop(incarnation);
        // Restart, with backoff, until a process passes its handshake.
        incarnation = loop {
            if failed >= shared.spec.max_failed_restarts {
                offline(&shared, failed, &mut commands, &dropped).await;
                return;
            }
            failed += 1;
            let after = backoff(&shared, failed);
            shared.record(ProcessChange::Restarting {
                attempt: failed,
                after,
            });
            tracing::info!(
                attempt = failed,
                after_ms = after.as_millis() as u64,
                "restarting the process agent"
            );
            let started = tokio::select! {
                _ = tokio::time::sleep(after) => {
                    tokio::select! {
                        started = conn::start(&shared.id, &shared.spec) => Some(started),
                        _ = stop_requested(&mut commands, &dropped) => None,
                    }
                }
                _ = stop_requested(&mut commands, &dropped) => None,
            };
            match started {
                None => {
                    // Stopped (or dropped) between two processes.
                    finish(&shared, StopHow::NotRunning);
                    return;
                }
                Some(Ok(new)) => {
                    let restarts = shared.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                    let pid = new.pid();
                    shared.set_link(Link::Up(new.conn.clone()));
                    shared.record(ProcessChange::Started { pid, restarts });
                    tracing::info!(pid, restarts, "process agent restarted");
                    break new;
                }
                Some(Err(e)) => {
                    let reason = format!("restart failed: {e}");
                    tracing::warn!("{reason}");
                    shared.record(ProcessChange::Exited { reason });
                }
            }
        };
    }
}

/// Waits for a stop: true for `stop()` (goodbye first), false when the last handle was dropped
/// (kill at once).
async fn stop_requested(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    dropped: &CancellationToken,
) -> bool {
    tokio::select! {
        command = commands.recv() => match command {
            Some(Command::Stop) => true,
            None => false,
        },
        _ = dropped.cancelled() => false,
    }
}

async fn offline(
    shared: &Shared,
    failed: u32,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    dropped: &CancellationToken,
) {
    let reason = format!(
        "{failed} restarts in a row failed (max_failed_restarts is {}); start it again (or reconcile) once the program is fixed",
        shared.spec.max_failed_restarts
    );
    tracing::error!("process agent offline: {reason}");
    shared.set_link(Link::Offline(Arc::from(reason.as_str())));
    shared.record(ProcessChange::Offline {
        reason: reason.clone(),
    });
    shared.record_kind(TelemetryKind::Alert {
        alert: atamo_core::telemetry::AlertKind::AgentOffline,
        agent: Some(shared.id.clone()),
        raised: true,
        detail: format!(
            "agent `{}` ({}) is offline: {reason}",
            shared.id,
            shared.spec.command_line()
        ),
    });
    stop_requested(commands, dropped).await;
    finish(shared, StopHow::NotRunning);
}

/// Where a graceful stop is.
#[derive(Clone, Copy)]
enum Phase {
    Goodbye,
    Sigterm,
    Sigkill,
}

/// Runs one process until it dies, is killed for misbehaving, or is stopped.
async fn run(
    shared: &Shared,
    incarnation: &mut Incarnation,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    dropped: &CancellationToken,
) -> RunEnd {
    let spec = &shared.spec;
    let pid = incarnation.pid();
    let mut healthy = false;
    let mut next_ping = Instant::now() + spec.ping_interval;
    let mut ping_id: u64 = 0;
    // The ping awaiting its pong, and by when.
    let mut pending: Option<(u64, Instant)> = None;
    // How far stdout had been read when the deadline was set.
    let mut read_mark = 0;
    // Set once stdout closed: by when the process must have exited.
    let mut exit_by: Option<Instant> = None;
    let mut stopping: Option<(Phase, Instant)> = None;
    loop {
        let wake = match (stopping, exit_by, pending) {
            (Some((_, at)), _, _) => at,
            (None, Some(at), _) => at,
            (None, None, Some((_, at))) => at,
            (None, None, None) => next_ping,
        };
        tokio::select! {
            status = incarnation.child.wait() => {
                incarnation.drain().await;
                if let Some((phase, _)) = stopping {
                    return RunEnd::Stopped(match phase {
                        Phase::Goodbye => StopHow::Goodbye,
                        Phase::Sigterm => StopHow::Sigterm,
                        Phase::Sigkill => StopHow::Sigkill,
                    });
                }
                let reason = match status {
                    Ok(status) => format!("exited ({status})"),
                    Err(e) => format!("could not be waited for: {e}"),
                };
                return RunEnd::Died { reason, healthy };
            }
            event = incarnation.events.recv(), if exit_by.is_none() => match event {
                Some(ReaderEvent::Pong(id)) => {
                    if pending.is_some_and(|(p, _)| p == id) {
                        pending = None;
                        if !healthy {
                            healthy = true;
                            tracing::debug!(pid, "process agent healthy (first pong)");
                        }
                    }
                }
                Some(ReaderEvent::Garbage(what)) => {
                    incarnation.kill().await;
                    if stopping.is_some() {
                        return RunEnd::Stopped(StopHow::Sigkill);
                    }
                    return RunEnd::Died {
                        reason: format!("{what}: killed"),
                        healthy,
                    };
                }
                Some(ReaderEvent::Eof) | None => {
                    // The process usually exits right after closing its stdout; if it does
                    // not within the grace period, it is killed. No pong can come now.
                    exit_by = Some(Instant::now() + spec.stop_grace);
                    pending = None;
                }
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                match stopping {
                    Some((Phase::Goodbye, at)) if now >= at => {
                        tracing::warn!(pid, "the process ignored goodbye: SIGTERM");
                        terminate(incarnation);
                        stopping = Some((Phase::Sigterm, now + spec.stop_grace));
                    }
                    Some((Phase::Sigterm, at)) if now >= at => {
                        tracing::warn!(pid, "the process ignored SIGTERM: SIGKILL");
                        let _ = incarnation.child.start_kill();
                        // Waits for the exit; the deadline only paces this loop.
                        stopping = Some((Phase::Sigkill, now + Duration::from_secs(3600)));
                    }
                    Some(_) => {}
                    None => {
                        if exit_by.is_some_and(|at| now >= at) {
                            incarnation.kill().await;
                            let reason = format!(
                                "closed its stdout and did not exit within {}ms: killed",
                                spec.stop_grace.as_millis()
                            );
                            return RunEnd::Died { reason, healthy };
                        }
                        let activity = &incarnation.conn.activity;
                        match pending {
                            Some((id, at))
                                if now >= at
                                    && (activity.is_busy() || activity.mark() != read_mark) =>
                            {
                                // Output is still coming, or the host is still busy with a
                                // line (a big one): the pong may be queued behind it. The
                                // process is alive; give it another timeout.
                                tracing::debug!(pid, id, "pong late behind other output: waiting");
                                read_mark = activity.mark();
                                pending = Some((id, now + spec.ping_timeout));
                            }
                            Some((id, at)) if now >= at => {
                                incarnation.kill().await;
                                let reason = format!(
                                    "did not answer ping {id} within {}ms: killed as hung",
                                    spec.ping_timeout.as_millis()
                                );
                                return RunEnd::Died { reason, healthy };
                            }
                            None if exit_by.is_none() && now >= next_ping => {
                                ping_id += 1;
                                incarnation.conn.send(HostMessage::Ping { id: ping_id });
                                read_mark = activity.mark();
                                pending = Some((ping_id, now + spec.ping_timeout));
                                next_ping = now + spec.ping_interval;
                            }
                            _ => {}
                        }
                    }
                }
            }
            stop = stop_requested(commands, dropped) => {
                if !stop {
                    // The last handle is gone: no goodbye, just kill.
                    incarnation.kill().await;
                    return RunEnd::Stopped(StopHow::Sigkill);
                }
                if stopping.is_none() {
                    shared.set_link(Link::Stopping);
                    tracing::info!(pid, "stopping the process agent: goodbye");
                    incarnation.conn.send(HostMessage::Goodbye);
                    stopping = Some((Phase::Goodbye, Instant::now() + spec.stop_grace));
                }
            }
        }
    }
}

/// Sends SIGTERM (Unix); elsewhere there is no polite signal, so it kills.
#[cfg(unix)]
fn terminate(incarnation: &mut Incarnation) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    match i32::try_from(incarnation.pid()) {
        Ok(pid) if pid > 0 => {
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
                tracing::warn!(pid, "cannot send SIGTERM: {e}");
            }
        }
        _ => {
            let _ = incarnation.child.start_kill();
        }
    }
}

#[cfg(not(unix))]
fn terminate(incarnation: &mut Incarnation) {
    let _ = incarnation.child.start_kill();
}
