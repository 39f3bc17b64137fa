//! The read connections: opened on demand, kept for reuse, used on blocking threads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atamo_core::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::codec::SqlResult;

/// Read connections, opened on demand and kept for reuse, at most `permits` in use at once.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

fn lock(idle: &Mutex<Vec<Connection>>) -> MutexGuard<'_, Vec<Connection>> {
    match idle.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Readers {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, max: usize) -> Self {
        Self {
            path,
            busy_timeout,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Runs `f` on a read connection, on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.idle.clone();
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match lock(&idle).pop() {
                Some(conn) => conn,
                None => open_reader(&path, busy_timeout)?,
            };
            let out = f(&conn);
            // A connection left inside a transaction (after a failed read) is not reused.
            if conn.is_autocommit() {
                lock(&idle).push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::unavailable("read task failed").with_source(e))?
    }
}

fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(busy_timeout).db()?;
    conn.pragma_update(None, "query_only", true).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs `f` in one read transaction, so that its queries see one snapshot.
pub(super) fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    // Nothing was written: ending with a rollback (when `tx` drops) is the same as a commit,
    // and does not fail after a query met a damaged page.
    f(&tx)
}
