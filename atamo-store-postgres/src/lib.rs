//! Atamo's durable store on PostgreSQL, shared by several hub nodes: the action queue with
//! fenced leases, request results, dedupe keys and the audit log in one database schema.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use atamo_core::store::Store;
//! use atamo_store_postgres::{PgOptions, PostgresStore};
//!
//! # async fn demo() -> Result<(), atamo_core::store::StoreError> {
//! let store = PostgresStore::connect(
//!     "host=db.internal user=atamo dbname=atamo",
//!     PgOptions {
//!         schema: Some("orders_hub".to_owned()),
//!         ..PgOptions::default()
//!     },
//! )
//! .await?;
//! let store: Arc<dyn Store> = Arc::new(store);
//! println!("{:?}", store.stats().await?);
//! # Ok(())
//! # }
//! ```
//!
//! # Options ([`PgOptions`])
//! - `clock`: where the store reads the time ([`SystemClock`] by default). The time is never
//!   read inside SQL: every statement gets it as a parameter, so a `ManualClock` drives leases,
//!   retries, windows and retention in tests.
//! - `schema`: the PostgreSQL schema holding the tables (`atamo` by default), created if
//!   missing. Nodes sharing a queue use the same schema; separate hubs use separate schemas.
//!   Every pooled connection has it as its `search_path`.
//! - `pool_size`: connections in the pool (8 by default), plus one for notifications.
//! - `max_batch_items`: how many items (events, actions, settles, results, audit records)
//!   group commit merges into one transaction at most (1024 by default).
//!
//! The connection string is anything `tokio_postgres::Config` parses (`key=value` pairs or a
//! `postgres://` URL). Connections are not encrypted (no TLS). PostgreSQL 12 or newer.
//!
//! # Concepts
//! - **Schema and versions.** The tables are created, or checked and upgraded, under a
//!   transaction-scoped advisory lock, so nodes starting at once take turns. A table `meta`
//!   keeps the schema version; a version newer than this build is refused with
//!   [`StoreError::Corrupt`].
//! - **Claims** take ready actions whose `run_at` has come, oldest first, with
//!   `FOR UPDATE SKIP LOCKED`: nodes claiming at the same time never wait for each other nor
//!   get the same action. Retries wait through `run_at`.
//! - **Fenced settles** change an action only while it is leased to the settling node under the
//!   attempt named; a late settle after the lease expired and the action was claimed again is
//!   refused.
//! - **Group commit.** Concurrent `write` calls are merged by one writer task into one
//!   transaction; each caller gets its own outcome. Rows go in as arrays (`unnest`), so a batch
//!   of hundreds of events is a handful of statements, pipelined on one connection.
//! - **Wake-up hints.** Writes, redrives, releases and recoveries that make actions ready
//!   `NOTIFY` a channel named after the schema; each store LISTENs on it and signals
//!   [`ActionQueue::wake_hint`], so other nodes claim at once rather than on their next timer.
//! - **Cursors** of audit pages are audit sequence numbers; those of dead-letter pages are the
//!   actions' sequence numbers; those of event pages are the events' sequence numbers.
//! - **Event listings** read the events newest first by sequence number. Payload filters go
//!   through the schema's function `json_filter_text`, with the field's path as a `text[]`
//!   parameter: field names never become part of a statement.
//! - **The registry** ([`DefinitionRegistry`]) is one table; each write is one statement (an insert, an update or an
//!   upsert raising the revision) in a transaction with its audit records, so nodes writing the
//!   same entry at once each get their own revision. Ids sort byte by byte (`COLLATE "C"`).
//! - **Errors** keep the PostgreSQL, pool or system error as their source; the server's are
//!   named by their SQLSTATE code.
//!
//! # Modules
//! `options` ([`PgOptions`]), `store` ([`PostgresStore`]: connecting, the writer task and the
//! listener), `capabilities` (its store capabilities), `registry` (its definitions registry),
//! `write` (group commit), `ops` (claims, reads, maintenance), `schema` (versions and
//! upgrades), `listen` (the wake-up hint), `rows` (columns and records), `shared` (what the
//! handle, the writer and the operations share), `error`.
//!
//! [`ActionQueue::wake_hint`]: atamo_core::store::ActionQueue::wake_hint
//! [`StoreError::Corrupt`]: atamo_core::store::StoreError::Corrupt
//! [`SystemClock`]: atamo_core::store::SystemClock
//! [`DefinitionRegistry`]: atamo_core::store::DefinitionRegistry

mod capabilities;
mod error;
mod listen;
mod ops;
mod options;
mod registry;
mod rows;
mod schema;
mod shared;
mod store;
mod write;

pub use options::{PgOptions, DEFAULT_SCHEMA};
pub use schema::validate_schema;
pub use store::PostgresStore;
