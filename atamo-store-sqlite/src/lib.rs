//! Atamo's embedded durable store: the [`Store`] of a stateful hub in one SQLite file, with a
//! write-ahead log and group commit, and the service's [`DefinitionRegistry`] in the same file.
//!
//! ```
//! use std::time::Duration;
//!
//! use atamo_core::store::{
//!     AcceptEvent, ActionQueue, ActionRecord, BatchWriter, EventHeader, EventRecord, Maintenance,
//!     NewAction, NodeId, WriteBatch,
//! };
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
//! - **Errors** keep SQLite's, the system's or the thread's error as their source.
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
//! index `events_tenant` (events without a tenant are not in it). Filters on type and user are//!
//! # Modules
//! `store` ([`SqliteStore`]: opening, closing, the writer and readers), `capabilities` (its
//! store capabilities), `registry` (its definitions registry), `writer` (the writer thread
//! and group commit), `ops` (the statements of writes), `reads` (the read connections and
//! queries), `codec` (values and errors), `schema` (versions and migrations).
//!
//! [`Store`]: atamo_core::store::Store
//! [`DefinitionRegistry`]: atamo_core::store::DefinitionRegistry
//! [`StoreError::Corrupt`]: atamo_core::store::StoreError::Corrupt

mod capabilities;
mod codec;
mod ops;
mod options;
mod reads;
mod registry;
mod schema;
mod store;
mod writer;

pub use options::{SqliteOptions, Synchronous};
pub use schema::SCHEMA_VERSION;
pub use store::SqliteStore;
