//! Where a store reads the time, and arithmetic on timestamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::message::Timestamp;

/// Where a store reads the time. Leases, retries, windows and retention all use it.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to: for tests of leases, windows and retention.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            micros: AtomicU64::new(start.unix_micros()),
        })
    }

    /// A clock showing the current wall-clock time.
    pub fn starting_now() -> Arc<Self> {
        Self::new(Timestamp::now())
    }

    /// Moves the clock forward (never past [`Timestamp::MAX`]).
    pub fn advance(&self, by: Duration) {
        let mut now = self.micros.load(Ordering::SeqCst);
        loop {
            let next = Timestamp::from_unix_micros(now)
                .saturating_add(by)
                .unix_micros();
            match self
                .micros
                .compare_exchange(now, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// `t + d`, saturating at [`Timestamp::MAX`] (leases, retries, keep-alive and dedupe
/// windows never overflow, whatever `d` is).
pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d)
}

/// `t - d`, saturating at the epoch.
pub fn earlier(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_sub(d)
}

/// Converts a timestamp to a `SystemTime` (for display).
pub fn system_time(t: Timestamp) -> SystemTime {
    t.to_system_time()
}
