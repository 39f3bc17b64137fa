//! Killing the program together with every process it started.

/// Kills the program's whole process group (the program and whatever it started) unless the
/// program has exited: when the call times out, is cancelled, or its future is dropped (the
/// hub's own call timeout). `kill_on_drop` covers the program itself on other platforms.
pub(super) struct GroupGuard {
    #[cfg_attr(not(unix), allow(dead_code))]
    pid: Option<u32>,
    armed: bool,
}

impl GroupGuard {
    pub(super) fn new(pid: Option<u32>) -> Self {
        Self { pid, armed: true }
    }

    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }

    pub(super) fn kill(&mut self) {
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
