//! How a store is opened.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::store::{Clock, SystemClock};

/// How hard SQLite works to make a commit survive a crash (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit is on disk before it is answered: it survives a power loss.
    #[default]
    Full,
    /// Commits survive the process crashing but the last ones may be lost on power loss
    /// (the WAL is synced at checkpoints only). Much faster on slow disks.
    Normal,
    /// No syncs at all: a power loss may corrupt the database. For tests and throwaway data.
    Off,
}

impl Synchronous {
    /// The value of `PRAGMA synchronous`.
    pub fn as_sql(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }

    /// The level from what `PRAGMA synchronous` reads back (0, 1 or 2).
    pub fn from_level(level: i64) -> Option<Self> {
        match level {
            0 => Some(Self::Off),
            1 => Some(Self::Normal),
            2 => Some(Self::Full),
            _ => None,
        }
    }
}

/// Options of [`SqliteStore::open`](crate::SqliteStore::open). Start from `default()` and
/// change what you need with the setters (or the fields).
#[derive(Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Where leases, retries, windows and retention read the time. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// `PRAGMA synchronous` of the write connection. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// At most this many commands waiting for the writer are merged into one transaction
    /// (group commit); it is also the length of the writer's queue. Default: 1024.
    pub max_batch_items: usize,
    /// How often a checkpointer thread copies the WAL back into the database file (a PASSIVE
    /// checkpoint, beside the writer, never blocking it). Default: 250 ms. The writer also
    /// checkpoints after a second without commands, and truncates the WAL when it closes.
    pub checkpoint_interval: Duration,
    /// How long a connection waits for a lock held by another process before it gives up.
    /// Default: 5 s.
    pub busy_timeout: Duration,
    /// Read connections used at once (each read runs on a blocking thread). Default: 4.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            synchronous: Synchronous::Full,
            max_batch_items: 1024,
            checkpoint_interval: Duration::from_millis(250),
            busy_timeout: Duration::from_secs(5),
            readers: 4,
        }
    }
}

impl SqliteOptions {
    /// Sets [`clock`](Self::clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`synchronous`](Self::synchronous).
    #[must_use]
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets [`max_batch_items`](Self::max_batch_items) (at least 1).
    #[must_use]
    pub fn max_batch_items(mut self, n: usize) -> Self {
        self.max_batch_items = n.max(1);
        self
    }

    /// Sets [`checkpoint_interval`](Self::checkpoint_interval).
    #[must_use]
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        self.checkpoint_interval = every.max(Duration::from_millis(1));
        self
    }

    /// Sets [`busy_timeout`](Self::busy_timeout).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets [`readers`](Self::readers) (at least 1).
    #[must_use]
    pub fn readers(mut self, n: usize) -> Self {
        self.readers = n.max(1);
        self
    }
}

impl fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("synchronous", &self.synchronous)
            .field("max_batch_items", &self.max_batch_items)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("busy_timeout", &self.busy_timeout)
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}
