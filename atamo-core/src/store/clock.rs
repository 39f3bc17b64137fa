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

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.micros
            .fetch_add(by.as_micros() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// `t + d`, saturating.
pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(t.unix_micros().saturating_add(d.as_micros() as u64))
}

/// `t - d`, saturating at the epoch.
pub fn earlier(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_unix_micros(t.unix_micros().saturating_sub(d.as_micros() as u64))
}

/// Converts a timestamp to a `SystemTime` (for display).
pub fn system_time(t: Timestamp) -> SystemTime {
    t.to_system_time()
}
