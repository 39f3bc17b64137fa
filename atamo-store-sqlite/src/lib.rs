//! Atamo's embedded durable store: the [`Store`] of a stateful hub in one SQLite file, with a
//! write-ahead log and group commit.
//!
//! ```
//! use std::time::Duration;
//!
//! use atamo_core::store::{AcceptEvent, ActionRecord, EventHeader, EventRecord, NewAction, NodeId, Store, WriteBatch};
//! use atamo_core::{ActionId, CorrelationId, EventId, Principal};
//! use atamo_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};
//! use serde_json::json;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(
//!     dir.path().join("hub/state.db"),
//!     SqliteOptions::default().synchronous(Synchronous::Normal),
//! )
//! .await?;
//!
//! // Accept an event with one action waiting for any node.
//! let event = EventRecord {
//!     id: EventId::generate(),
//!     event_type: "order.created".into(),
//!     principal: Principal::user("alice"),
//!     correlation_id: CorrelationId::generate(),
//!     dedupe_key: None,
//!     origin: None,
//!     request: None,
//!     payload: json!({"order": {"id": 7}}),
//!     accepted_at: atamo_core::message::Timestamp::now(),
//! };
//! let action = ActionRecord {
//!     id: ActionId::generate(),
//!     agent: "mailer".into(),
//!     action_type: "email.send".into(),
//!     rule: None,
//!     provider: None,
//!     event: EventHeader {
//!         id: event.id,
//!         event_type: event.event_type.clone(),
//!         principal: event.principal.clone(),
//!         correlation_id: event.correlation_id,
//!         dedupe_key: None,
//!         origin: None,
//!     },
//!     request: None,
//!     payload: json!({"to": "alice"}),
//!     retry: None,
//!     fallback: None,
//! };
//! let batch = WriteBatch {
//!     accepts: vec![AcceptEvent {
//!         event,
//!         dedupe_window: Duration::ZERO,
//!         actions: vec![NewAction { record: action.clone(), lease: None }],
//!     }],
//!     ..WriteBatch::default()
//! };
//! store.write(batch).await?;
//!
//! // A node claims it.
//! let claimed = store.claim(&NodeId::new("node-1"), 10, Duration::from_secs(30)).await?;
//! assert_eq!(claimed[0].record.id, action.id);
//! assert!(store.check().await?.ok());
//! store.close().await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//! - **One writer.** A dedicated thread owns the only write connection. Writes, claims,
//!   heartbeats, lease recovery, redrives and prunes are commands sent to it over a bounded
//!   queue. It takes every command waiting (up to [`SqliteOptions::max_batch_items`]) and runs
//!   them in one `BEGIN IMMEDIATE` transaction, each in its own savepoint, then answers each
//!   caller once the commit is durable (**group commit**: under load, one sync serves many
//!   callers). A command that fails is undone alone; a transaction that fails fails all of its
//!   callers.
//! - **Readers.** Reads (actions, dead letters, results, events, the audit log, the registry,
//!   stats, the check) use separate read connections on blocking threads; in WAL mode they never
//!   wait for the writer. Registry writes are commands of the writer like any other write.
//! - **Opening** creates the file and its parent folders if missing, migrates the schema
//!   (versioned by `PRAGMA user_version`; a newer version is refused with
//!   [`StoreError::Corrupt`]) and makes leases that
//!   expired while the store was closed ready again.
//! - **Closing** ([`SqliteStore::close`], or dropping the store) lets the writer finish the
//!   queued commands, then truncates the WAL.
//! - **Time** comes from [`SqliteOptions::clock`]; SQL never reads the time itself.
//!
//! # Options ([`SqliteOptions`])
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `clock` | [`SystemClock`](atamo_core::store::SystemClock) | where the time comes from |
//! | `synchronous` | [`Synchronous::Full`] | `PRAGMA synchronous` of the writer |
//! | `max_batch_items` | 1024 | commands merged into one transaction at most |
//! | `checkpoint_interval` | 250 ms | how often a checkpointer thread copies the WAL into the file (PASSIVE, beside the writer) |
//! | `busy_timeout` | 5 s | wait for a lock held by another process |
//! | `readers` | 4 | read connections in use at once |
//!
//! # Schema (version 2)
//! `events`, `dedupe`, `actions`, `results`, `audit` and `registry` tables: the record as JSON
//! in `body` next to the columns queries filter on. Dead-letter cursors are `actions.seq`, audit
//! cursors `audit.seq`, event cursors `events.seq` (an `INTEGER PRIMARY KEY AUTOINCREMENT`, so
//! `VACUUM` keeps it and a number is never given twice). Opening a version-1 file rebuilds its
//! `events` table with that column, keeping every row and its order.
//!
//! Event listings read `events` newest first by `seq`; a tenant's events through the partial
//! index `events_tenant` (events without a tenant are not in it). Filters on type and user are
//! checked on each row while scanning newest first until the page is full (an index would cost
//! every accepted event one more insert), and payload filters read the body with SQLite's JSON
//! functions, the field's path bound as a parameter with every name quoted.

mod codec;
mod ops;
mod options;
mod reads;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{
    check_registry_key, check_registry_kind, ActionRow, AuditQuery, AuditRecord, CheckReport,
    Claimed, Clock, Cursor, EventQuery, EventRecord, NodeId, Page, PruneReport, RegistryEntry,
    RegistryOutcome, RegistryWrite, ResultRecord, Retention, Store, StoreError, StoreFuture,
    StoreStats, WriteBatch, WriteOutcome,
};
use atamo_core::{ActionId, EventId, RequestId};
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

pub use options::{SqliteOptions, Synchronous};
pub use schema::SCHEMA_VERSION;

use reads::Readers;
use writer::{Command, Writer};

/// The [`Store`] on one SQLite file. See the [crate documentation](crate).
///
/// Open it with [`SqliteStore::open`]; close it with [`SqliteStore::close`] (or drop it, which
/// waits for the writer thread to finish the queued commands).
pub struct SqliteStore {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
    readers: Readers,
    /// Stops the checkpointer thread.
    checkpoints: Arc<std::sync::atomic::AtomicBool>,
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
            .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))?
    }

    fn open_blocking(path: PathBuf, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer::open(&path, &options, commits.clone())?;
        let (commands, rx) = mpsc::channel(options.max_batch_items.max(1));
        let handle = std::thread::Builder::new()
            .name("atamo-sqlite-writer".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        let checkpoints = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = checkpoints.clone();
        let file = path.clone();
        let every = options.checkpoint_interval;
        let checkpointer = std::thread::Builder::new()
            .name("atamo-sqlite-checkpoint".to_owned())
            .spawn(move || writer::checkpointer(file, every, stop))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the checkpointer: {e}")))?;
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
            .ok_or_else(|| StoreError::Unavailable(format!("unexpected synchronous level {level}")))
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
                .map_err(|e| StoreError::Unavailable(format!("closing the store failed: {e}")))?
                .map_err(|_| StoreError::Unavailable("the store writer panicked".to_owned()))?;
        }
        Ok(())
    }

    async fn send(&self, command: Command) -> Result<(), StoreError> {
        let commands = self.commands.as_ref().ok_or(StoreError::Closed)?;
        commands.send(command).await.map_err(|_| StoreError::Closed)
    }

    /// Runs `work` on the writer thread, in the transaction of its group.
    async fn call<T, F>(&self, work: F) -> Result<T, StoreError>
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
    StoreError::Unavailable("the store writer stopped".to_owned())
}

impl SqliteStore {
    /// Stops the checkpointer (the writer checkpoints last, as it closes).
    fn stop_checkpoints(&mut self) {
        self.checkpoints
            .store(true, std::sync::atomic::Ordering::Relaxed);
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

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn write(&self, batch: WriteBatch) -> StoreFuture<'_, WriteOutcome> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(WriteOutcome::default());
            }
            let mut batch = batch;
            let audit = ops::encode_audit(std::mem::take(&mut batch.audit))?;
            let bodies = ops::encode_bodies(&batch.accepts)?;
            self.call(move |conn, now| ops::write(conn, batch, &bodies, &audit, now))
                .await
        })
    }

    fn claim(&self, node: &NodeId, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<Claimed>> {
        let node = node.clone();
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            self.call(move |conn, now| ops::claim(conn, &node, limit, lease, now))
                .await
        })
    }

    fn heartbeat(&self, node: &NodeId, lease: Duration) -> StoreFuture<'_, u64> {
        let node = node.clone();
        Box::pin(self.call(move |conn, now| ops::heartbeat(conn, &node, lease, now)))
    }

    fn recover_expired(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.call(ops::recover_expired))
    }

    fn action(&self, id: ActionId) -> StoreFuture<'_, Option<ActionRow>> {
        Box::pin(self.readers.run(move |conn| reads::action(conn, id)))
    }

    fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StoreFuture<'_, Page<ActionRow>> {
        Box::pin(
            self.readers
                .run(move |conn| reads::dead_letters(conn, cursor, limit)),
        )
    }

    fn redrive(&self, id: ActionId) -> StoreFuture<'_, bool> {
        Box::pin(self.call(move |conn, now| ops::redrive(conn, id, now)))
    }

    fn results(&self, request: RequestId) -> StoreFuture<'_, Vec<ResultRecord>> {
        let now = self.clock.now();
        Box::pin(
            self.readers
                .run(move |conn| reads::results(conn, request, now)),
        )
    }

    fn event(&self, id: EventId) -> StoreFuture<'_, Option<EventRecord>> {
        Box::pin(self.readers.run(move |conn| reads::event(conn, id)))
    }

    fn audit(&self, query: AuditQuery) -> StoreFuture<'_, Page<AuditRecord>> {
        Box::pin(self.readers.run(move |conn| reads::audit(conn, &query)))
    }

    fn events(&self, query: EventQuery) -> StoreFuture<'_, Page<EventRecord>> {
        Box::pin(self.readers.run(move |conn| reads::events(conn, &query)))
    }

    fn registry_get(&self, kind: &str, id: &str) -> StoreFuture<'_, Option<RegistryEntry>> {
        let checked = check_registry_key(kind, id);
        let (kind, id) = (kind.to_owned(), id.to_owned());
        Box::pin(async move {
            checked?;
            self.readers
                .run(move |conn| reads::registry_get(conn, &kind, &id))
                .await
        })
    }

    fn registry_list(&self, kind: &str) -> StoreFuture<'_, Vec<RegistryEntry>> {
        let checked = check_registry_kind(kind);
        let kind = kind.to_owned();
        Box::pin(async move {
            checked?;
            self.readers
                .run(move |conn| reads::registry_list(conn, &kind))
                .await
        })
    }

    fn registry_put(
        &self,
        kind: &str,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, RegistryOutcome> {
        let checked = check_registry_key(kind, id);
        let (kind, id) = (kind.to_owned(), id.to_owned());
        Box::pin(async move {
            checked?;
            // Encoded here, so that the writer thread only binds.
            let body = codec::to_json(&body)?;
            let audit = ops::encode_audit(audit)?;
            self.call(move |conn, now| {
                ops::registry_put(conn, &kind, &id, &body, mode, &audit, now)
            })
            .await
        })
    }

    fn registry_delete(
        &self,
        kind: &str,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, bool> {
        let checked = check_registry_key(kind, id);
        let (kind, id) = (kind.to_owned(), id.to_owned());
        Box::pin(async move {
            checked?;
            let audit = ops::encode_audit(audit)?;
            self.call(move |conn, _| ops::registry_delete(conn, &kind, &id, &audit))
                .await
        })
    }

    fn prune(&self, retention: &Retention) -> StoreFuture<'_, PruneReport> {
        let retention = retention.clone();
        Box::pin(self.call(move |conn, now| ops::prune(conn, &retention, now)))
    }

    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        let now = self.clock.now();
        let path = self.path.clone();
        Box::pin(self.readers.run(move |conn| {
            let mut stats = reads::stats(conn, now)?;
            stats.size_bytes = Some(reads::size_on_disk(&path));
            Ok(stats)
        }))
    }

    fn check(&self) -> StoreFuture<'_, CheckReport> {
        Box::pin(self.readers.run(reads::check))
    }
}
