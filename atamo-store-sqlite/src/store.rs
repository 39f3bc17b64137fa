//! [`SqliteStore`]: opening, the writer thread and the read connections, closing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use atamo_core::message::Timestamp;
use atamo_core::store::{Clock, StoreError, WriteBatch};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::ops;
use crate::options::{SqliteOptions, Synchronous};
use crate::reads::Readers;
use crate::writer::{self, Command, Writer};

/// The [`Store`](atamo_core::store::Store) and the
/// [`DefinitionRegistry`](atamo_core::store::DefinitionRegistry) on one SQLite file. See the
/// [crate documentation](crate).
///
/// Open it with [`SqliteStore::open`]; close it with [`SqliteStore::close`] (or drop it, which
/// waits for the writer thread to finish the queued commands).
pub struct SqliteStore {
    pub(crate) path: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    pub(crate) readers: Readers,
    /// Stops the checkpointer thread.
    checkpoints: Arc<AtomicBool>,
    checkpointer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its parent folders if missing.
    ///
    /// Async because opening migrates the schema and recovers expired leases (blocking work,
    /// done on a blocking thread); it needs a Tokio runtime, as every other method does.
    ///
    /// Fails with [`StoreError::Corrupt`] for a file that is not a database or has a newer
    /// schema version, and with [`StoreError::Unavailable`] when the file cannot be opened.
    pub async fn open(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || Self::open_blocking(path, options))
            .await
            .map_err(|e| StoreError::unavailable("opening the store failed").with_source(e))?
    }

    fn open_blocking(path: PathBuf, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::unavailable(format!("cannot create {}", parent.display()))
                    .with_source(e)
            })?;
        }
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer::open(&path, &options, commits.clone())?;
        let (commands, rx) = mpsc::channel(options.max_batch_items.max(1));
        let handle = std::thread::Builder::new()
            .name("atamo-sqlite-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::unavailable("cannot start the writer").with_source(e))?;
        let checkpoints = Arc::new(AtomicBool::new(false));
        let stop = checkpoints.clone();
        let file = path.clone();
        let every = options.checkpoint_interval;
        let checkpointer = std::thread::Builder::new()
            .name("atamo-sqlite-checkpoint".to_owned())
            .spawn(move || writer::checkpointer(file, every, stop))
            .map_err(|e| StoreError::unavailable("cannot start the checkpointer").with_source(e))?;
        Ok(SqliteStore {
            checkpoints,
            checkpointer: Some(checkpointer),
            readers: Readers::new(path.clone(), options.busy_timeout, options.readers),
            path,
            clock: options.clock,
            commands: Some(commands),
            writer: Some(handle),
            commits,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Transactions the writer committed since the store was opened (including the one that
    /// recovered leases at open). Concurrent writes share transactions, so under load this
    /// grows much more slowly than the number of writes.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// `PRAGMA synchronous` as the write connection reads it back.
    pub async fn synchronous(&self) -> Result<Synchronous, StoreError> {
        let level = self.call(|conn, _| ops::synchronous(conn)).await?;
        Synchronous::from_level(level)
            .ok_or_else(|| StoreError::unavailable(format!("unexpected synchronous level {level}")))
    }

    /// A baseline for benchmarks: inserts the event and action rows of `batches` into the same
    /// tables with plain `INSERT`s (no dedupe lookups, no settles, results or audit), one
    /// transaction per batch, through the same writer thread with the same `synchronous`
    /// setting. Returns the number of rows inserted.
    pub async fn baseline_insert(&self, batches: Vec<WriteBatch>) -> Result<u64, StoreError> {
        // Encoded here, as `write` does, so both sides spend the writer thread alike.
        let encoded = batches
            .iter()
            .map(|b| ops::encode_bodies(&b.accepts))
            .collect::<Result<Vec<_>, _>>()?;
        let (reply, rx) = oneshot::channel();
        let command = Command::Alone(Box::new(move |writer: &mut Writer| {
            let mut rows = 0;
            let mut outcome = Ok(());
            for (batch, bodies) in batches.iter().zip(&encoded) {
                match writer.transaction(|conn, now| ops::baseline_batch(conn, batch, bodies, now))
                {
                    Ok(n) => rows += n,
                    Err(e) => {
                        outcome = Err(e);
                        break;
                    }
                }
            }
            let _ = reply.send(outcome.map(|()| rows));
        }));
        self.send(command).await?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// Stops the writer once it has finished the queued commands, truncates the WAL and closes
    /// the database, without blocking the runtime.
    pub async fn close(mut self) -> Result<(), StoreError> {
        self.stop_checkpoints();
        drop(self.commands.take());
        if let Some(handle) = self.writer.take() {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| StoreError::unavailable("closing the store failed").with_source(e))?
                .map_err(|_| StoreError::unavailable("the store writer panicked"))?;
        }
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), StoreError> {
        let commands = self.commands.as_ref().ok_or(StoreError::Closed)?;
        commands.send(command).await.map_err(|_| StoreError::Closed)
    }

    /// Runs `work` on the writer thread, in the transaction of its group.
    pub(crate) async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, Timestamp) -> Result<T, StoreError> + Send + 'static,
    {
        let (command, rx) = writer::grouped(work);
        self.send(command).await?;
        rx.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::unavailable("the store writer stopped")
}

impl SqliteStore {
    /// Stops the checkpointer (the writer checkpoints last, as it closes).
    fn stop_checkpoints(&mut self) {
        self.checkpoints.store(true, Ordering::Relaxed);
        if let Some(handle) = self.checkpointer.take() {
            if handle.join().is_err() {
                tracing::warn!("the store checkpointer panicked");
            }
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpoints();
        drop(self.commands.take());
        if let Some(handle) = self.writer.take() {
            // The writer finishes the queued commands and checkpoints; that is quick, and
            // waiting for it means the file is closed once the store is gone.
            if handle.join().is_err() {
                tracing::warn!("the store writer panicked");
            }
        }
    }
}
