//! How a [`PostgresStore`](crate::PostgresStore) connects and works.

use std::fmt;
use std::sync::Arc;

use atamo_core::store::{Clock, SystemClock};

/// The schema used when [`PgOptions::schema`] is `None`.
pub const DEFAULT_SCHEMA: &str = "atamo";

/// How a [`PostgresStore`](crate::PostgresStore) connects and works.
#[derive(Clone)]
pub struct PgOptions {
    /// Where the store reads the time (default [`SystemClock`]).
    pub clock: Arc<dyn Clock>,
    /// The schema holding the tables (default [`DEFAULT_SCHEMA`]), created if missing: 1 to 63
    /// lower-case ASCII letters, digits and `_`, not starting with a digit or `pg_`.
    pub schema: Option<String>,
    /// Pooled connections (default 8, at least 1).
    pub pool_size: usize,
    /// The most items group commit merges into one transaction (default 1024). A larger
    /// batch is still written, alone.
    pub max_batch_items: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            schema: None,
            pool_size: 8,
            max_batch_items: 1024,
        }
    }
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("max_batch_items", &self.max_batch_items)
            .finish_non_exhaustive()
    }
}
