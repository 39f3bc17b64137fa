//! Where a process agent stands, and what its handles, calls and supervisor task share.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};

use atamo_core::telemetry::ProcessChange;
use atamo_core::{AgentId, Control, TelemetryKind};
use tokio::sync::watch;

use super::conn::Conn;
use super::spec::ProcessSpec;

/// What calls, handles and the supervisor task share.
pub(super) struct Shared {
    pub(super) id: AgentId,
    pub(super) spec: ProcessSpec,
    pub(super) control: Option<Control>,
    pub(super) link: watch::Sender<Link>,
    pub(super) restarts: AtomicU32,
    pub(super) stopped: Mutex<Option<StopHow>>,
    pub(super) next_call: AtomicU64,
}

impl Shared {
    pub(super) fn record(&self, change: ProcessChange) {
        self.record_kind(TelemetryKind::AgentProcess {
            agent: self.id.clone(),
            change,
        });
    }

    /// Records a telemetry step, when there is a hub to record it in.
    pub(super) fn record_kind(&self, kind: TelemetryKind) {
        if let Some(control) = &self.control {
            control.record(kind);
        }
    }

    pub(super) fn set_link(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// Where the process stands, as calls see it.
#[derive(Clone)]
pub(super) enum Link {
    /// Running: calls go to this connection.
    Up(Arc<Conn>),
    /// Between two processes.
    Restarting,
    /// Too many failed restarts.
    Offline(Arc<str>),
    /// A stop is under way.
    Stopping,
    /// Stopped for good.
    Stopped,
}

/// Where an agent's process stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Running and taking calls.
    Running {
        /// Its process id.
        pid: u32,
    },
    /// Between two processes: new calls wait (up to [`ProcessSpec::call_wait`]).
    Restarting,
    /// Too many restarts failed in a row; calls fail at once.
    Offline {
        /// Why.
        reason: String,
    },
    /// A graceful stop is under way; new calls fail at once.
    Stopping,
    /// Stopped; calls fail at once.
    Stopped,
}

/// How a stop ended the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopHow {
    /// It exited after `goodbye`, within the grace period.
    Goodbye,
    /// It ignored `goodbye` and ended on SIGTERM.
    Sigterm,
    /// It ignored SIGTERM too (or the last handle was dropped) and was killed.
    Sigkill,
    /// No process was running (restarting, offline, already stopped).
    NotRunning,
}

impl StopHow {
    /// The name used in telemetry: `goodbye`, `sigterm`, `sigkill` or `not_running`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Goodbye => "goodbye",
            Self::Sigterm => "sigterm",
            Self::Sigkill => "sigkill",
            Self::NotRunning => "not_running",
        }
    }
}

impl std::fmt::Display for StopHow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
