//! The writer thread: the one connection that writes.
//!
//! Callers send commands over a bounded channel and wait on a oneshot for the answer. The
//! writer takes every command waiting (up to `max_batch_items`) and runs them in one
//! transaction (group commit): each command in its own savepoint, so a command that fails is
//! undone alone and answered with its error, while the others commit. Answers go out once the
//! commit is durable; if the transaction itself fails (BEGIN or COMMIT), every caller in it gets
//! that error.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{Clock, StoreError};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::codec::SqlResult;
use crate::options::SqliteOptions;
use crate::schema;

/// How long the writer waits without commands before it checkpoints the WAL.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

/// The savepoint each command of a group runs in.
const SAVEPOINT: &str = "SAVEPOINT atamo_command";
const RELEASE: &str = "RELEASE atamo_command";
const ROLLBACK_TO: &str = "ROLLBACK TO atamo_command";

/// Answers a command's caller once the fate of its transaction is known.
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A command that shares the group's transaction.
pub(crate) trait Task: Send {
    /// Runs the command's statements; `false` when it failed (its savepoint is rolled back).
    fn run(self: Box<Self>, conn: &Connection, now: Timestamp) -> (bool, Finish);
    /// Answers the caller with `error` without running.
    fn fail(self: Box<Self>, error: StoreError);
}

struct Job<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Task for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, Timestamp) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection, now: Timestamp) -> (bool, Finish) {
        let Job { work, reply } = *self;
        let result = work(conn, now);
        let ok = result.is_ok();
        let finish: Finish = Box::new(move |committed| {
            // A caller that stopped waiting is no longer interested in the answer.
            let _ = reply.send(result.and_then(|v| committed.map(|()| v)));
        });
        (ok, finish)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Answers a command that did not run once its transaction failed.
fn not_run(task: Box<dyn Task>) -> Finish {
    Box::new(move |outcome| {
        if let Err(e) = outcome {
            task.fail(e);
        }
    })
}

/// What the writer thread is asked to do.
pub(crate) enum Command {
    /// Runs within the group's transaction.
    Grouped(Box<dyn Task>),
    /// Runs on its own, after the group before it committed (it manages its transactions).
    Alone(Box<dyn FnOnce(&mut Writer) + Send>),
}

/// A grouped command running `work` (given the write connection and the clock's time), and
/// the receiver of its answer.
pub(crate) fn grouped<T, F>(work: F) -> (Command, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection, Timestamp) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (Command::Grouped(Box::new(Job { work, reply })), rx)
}

/// The write connection and what the writer thread needs.
pub(crate) struct Writer {
    conn: Connection,
    clock: Arc<dyn Clock>,
    commits: Arc<AtomicU64>,
    max_batch: usize,
}

impl Writer {
    /// Opens (creating if missing) and migrates the database, and recovers expired leases.
    pub(crate) fn open(
        path: &Path,
        options: &SqliteOptions,
        commits: Arc<AtomicU64>,
    ) -> Result<Self, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .db()?;
        conn.busy_timeout(options.busy_timeout).db()?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::unavailable(format!(
                "{} cannot use write-ahead logging (journal mode is {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", options.synchronous.as_sql())
            .db()?;
        // No automatic checkpoint inside commits: the checkpointer thread copies the WAL back
        // into the file beside the writer (see `checkpointer`), so commits never wait for it.
        conn.pragma_update(None, "wal_autocheckpoint", 0).db()?;
        // 64 MiB of page cache: index pages stay in memory instead of being read again.
        conn.pragma_update(None, "cache_size", -65_536).db()?;
        // The savepoints of group commit journal the pages they change; in memory, not in a
        // temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY").db()?;
        conn.set_prepared_statement_cache_capacity(256);
        schema::migrate(&conn)?;
        let mut writer = Self {
            conn,
            clock: options.clock.clone(),
            commits,
            max_batch: options.max_batch_items.max(1),
        };
        let recovered = writer.transaction(crate::ops::recover_expired)?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                path = %path.display(),
                "store opened: leases that expired while it was closed are ready again"
            );
        } else {
            tracing::debug!(path = %path.display(), "store opened");
        }
        Ok(writer)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction of its own.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection, Timestamp) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.exec("BEGIN IMMEDIATE")?;
        let out = f(&self.conn, self.clock.now()).and_then(|v| {
            self.exec("COMMIT")?;
            self.commits.fetch_add(1, Ordering::Relaxed);
            Ok(v)
        });
        self.end_transaction();
        out
    }

    /// Receives and runs commands until every sender is gone, then checkpoints and closes.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        // A small runtime of this thread's own, only to wait for a command with a timeout
        // (the idle checkpoint); the database work runs outside it.
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build();
        if let Err(e) = &timer {
            tracing::warn!(error = %e, "store writer runs without idle checkpoints");
        }
        let mut written = false;
        loop {
            let first = match &timer {
                Ok(rt) if written => {
                    // The timer is made inside `block_on`, where the runtime's clock is.
                    match rt
                        .block_on(async { tokio::time::timeout(IDLE_CHECKPOINT, rx.recv()).await })
                    {
                        Ok(command) => command,
                        Err(_) => {
                            self.checkpoint("PASSIVE");
                            written = false;
                            continue;
                        }
                    }
                }
                _ => rx.blocking_recv(),
            };
            let Some(first) = first else { break };
            let mut commands = Vec::with_capacity(16);
            commands.push(first);
            while commands.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) => break,
                }
            }
            self.run_drain(commands);
            written = true;
        }
        self.close();
    }

    /// Runs one drain: grouped commands in one transaction, each `Alone` one by itself, in
    /// order.
    fn run_drain(&mut self, commands: Vec<Command>) {
        let mut group: Vec<Box<dyn Task>> = Vec::new();
        for command in commands {
            match command {
                Command::Grouped(task) => group.push(task),
                Command::Alone(f) => {
                    self.run_group(std::mem::take(&mut group));
                    f(self);
                }
            }
        }
        self.run_group(group);
    }

    fn run_group(&mut self, tasks: Vec<Box<dyn Task>>) {
        if tasks.is_empty() {
            return;
        }
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "store transaction could not begin");
            self.end_transaction();
            for task in tasks {
                task.fail(e.clone());
            }
            return;
        }
        // One command needs no savepoint: if it fails, the whole transaction is rolled back.
        let savepoints = tasks.len() > 1;
        let mut finishes = Vec::with_capacity(tasks.len());
        let mut broken: Option<StoreError> = None;
        let mut rollback = false;
        let now = self.clock.now();
        for task in tasks {
            if broken.is_some() {
                finishes.push(not_run(task));
                continue;
            }
            if savepoints {
                if let Err(e) = self.exec(SAVEPOINT) {
                    broken = Some(e);
                    finishes.push(not_run(task));
                    continue;
                }
            }
            let (ok, finish) = task.run(&self.conn, now);
            finishes.push(finish);
            if savepoints {
                let end = if ok {
                    self.exec(RELEASE)
                } else {
                    self.exec(ROLLBACK_TO).and_then(|()| self.exec(RELEASE))
                };
                if let Err(e) = end {
                    broken = Some(e);
                }
            } else if !ok {
                rollback = true;
            }
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None if rollback => self.exec("ROLLBACK"),
            None => self.exec("COMMIT").map(|()| {
                self.commits.fetch_add(1, Ordering::Relaxed);
            }),
        };
        if let Err(e) = &outcome {
            tracing::warn!(error = %e, "store transaction failed");
        }
        self.end_transaction();
        for finish in finishes {
            finish(outcome.clone());
        }
    }

    /// Rolls back whatever a failure left open.
    fn end_transaction(&self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "store transaction could not be rolled back");
            }
        }
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .db()?
            .execute([])
            .db()
            .map(drop)
    }

    fn checkpoint(&self, mode: &str) {
        let sql = format!("PRAGMA wal_checkpoint({mode})");
        match self
            .conn
            .query_row(&sql, [], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        {
            Ok((busy, pages)) => {
                tracing::trace!(mode, busy, pages, "store checkpoint");
            }
            Err(e) => tracing::warn!(mode, error = %e, "store checkpoint failed"),
        }
    }

    fn close(self) {
        // Lets SQLite refresh the statistics its planner uses, if they are stale.
        if let Err(e) = self.conn.execute_batch("PRAGMA optimize") {
            tracing::debug!(error = %e, "store optimize failed");
        }
        self.checkpoint("TRUNCATE");
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(error = %e, "store connection did not close cleanly");
        }
        tracing::debug!("store writer stopped");
    }
}

/// Runs a PASSIVE checkpoint on a connection of its own every `every`, until `stop`. A
/// PASSIVE checkpoint never blocks the writer, so the copying of the WAL back into the file
/// runs beside the commits instead of inside one of them (SQLite's automatic checkpoint runs in
/// the commit that crosses its threshold, on the writer's thread). With nothing new in the WAL
/// a checkpoint costs a look at the WAL index.
pub(crate) fn checkpointer(
    path: std::path::PathBuf,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let conn = match Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "store checkpointer not started; the writer checkpoints when idle");
            return;
        }
    };
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(every);
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((log, done)) => tracing::trace!(log, done, "store checkpoint"),
            Err(e) => tracing::debug!(error = %e, "store checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    }

    fn insert(conn: &Connection) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO audit (at, step, detail) VALUES (1, 'test', 'null')",
            [],
        )
        .db()
        .map(drop)
    }

    #[test]
    fn a_failing_command_is_undone_alone_and_the_group_commits_once() {
        let dir = tempfile::tempdir().unwrap();
        let commits = Arc::new(AtomicU64::new(0));
        let mut writer = Writer::open(
            &dir.path().join("store.db"),
            &SqliteOptions::default(),
            commits.clone(),
        )
        .unwrap();
        let before = commits.load(Ordering::Relaxed);
        let (first, mut first_rx) = grouped(|conn, _| insert(conn));
        let (failing, mut failing_rx) = grouped(|conn, _| {
            insert(conn)?;
            Err::<(), _>(StoreError::invalid("refused"))
        });
        let (last, mut last_rx) = grouped(|conn, _| insert(conn).map(|()| count(conn)));
        writer.run_drain(vec![first, failing, last]);

        assert!(first_rx.try_recv().unwrap().is_ok());
        assert!(matches!(
            failing_rx.try_recv().unwrap(),
            Err(StoreError::Invalid { .. })
        ));
        // The last command saw the first one's row, not the failed one's.
        assert_eq!(last_rx.try_recv().unwrap().unwrap(), 2);
        assert_eq!(count(&writer.conn), 2);
        assert_eq!(commits.load(Ordering::Relaxed) - before, 1);

        // Alone, a failing command rolls its transaction back and commits nothing.
        let (failing, mut failing_rx) = grouped(|conn, _| {
            insert(conn)?;
            Err::<(), _>(StoreError::invalid("refused"))
        });
        writer.run_drain(vec![failing]);
        assert!(failing_rx.try_recv().unwrap().is_err());
        assert_eq!(count(&writer.conn), 2);
        assert_eq!(commits.load(Ordering::Relaxed) - before, 1);
        assert!(writer.conn.is_autocommit());
    }
}
