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
//!   [`Store::wake_hint`], so other nodes claim at once rather than on their next timer.
//! - **Cursors** of audit pages are audit sequence numbers; those of dead-letter pages are the
//!   actions' sequence numbers; those of event pages are the events' sequence numbers.
//! - **Event listings** read the events newest first by sequence number. Payload filters go
//!   through the schema's function `json_filter_text`, with the field's path as a `text[]`
//!   parameter: field names never become part of a statement.
//! - **The registry** is one table; each write is one statement (an insert, an update or an
//!   upsert raising the revision) in a transaction with its audit records, so nodes writing the
//!   same entry at once each get their own revision. Ids sort byte by byte (`COLLATE "C"`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::ids::{ActionId, EventId, RequestId};
use atamo_core::store::ActionRow;
use atamo_core::store::{
    check_registry_key, check_registry_kind, AuditQuery, AuditRecord, CheckReport, Claimed, Clock,
    Cursor, EventQuery, EventRecord, NodeId, Page, PruneReport, RegistryEntry, RegistryOutcome,
    RegistryWrite, ResultRecord, Retention, Store, StoreError, StoreFuture, StoreStats,
    SystemClock, WriteBatch, WriteOutcome,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{Config, NoTls};

mod error;
mod listen;
mod ops;
mod rows;
mod schema;
mod write;

pub use schema::validate_schema;

/// The schema used when [`PgOptions::schema`] is `None`.
pub const DEFAULT_SCHEMA: &str = "atamo";

/// How a [`PostgresStore`] connects and works.
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

/// What the store's handle, its writer task and its operations share.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) schema: String,
    /// The notification channel: the schema's name.
    pub(crate) channel: String,
    pub(crate) max_batch_items: usize,
}

/// The [`Store`] on PostgreSQL: several hub nodes share one queue by connecting to the same
/// schema. See the [crate documentation](crate).
///
/// Dropping it stops its writer (after the writes already queued) and its listener.
pub struct PostgresStore {
    inner: Arc<Inner>,
    writes: mpsc::Sender<write::Job>,
    wake: Arc<Notify>,
    /// Dropped with the store, which stops the listener.
    _stop_listener: oneshot::Sender<()>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.inner.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the server at `url`, creates or upgrades the schema, and starts the writer
    /// and the notification listener (on the current Tokio runtime).
    ///
    /// Fails with `Invalid` for a bad connection string or option, `Unavailable` when the
    /// server cannot be reached, and `Corrupt` when the schema holds a newer version.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PostgresStore, StoreError> {
        let schema = options
            .schema
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned());
        schema::validate_schema(&schema)?;
        if options.pool_size == 0 {
            return Err(StoreError::Invalid(
                "pool_size must be at least 1".to_owned(),
            ));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // Find dead peers within about a minute rather than the system's two hours.
        config
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
        let named = config.get_application_name().is_some();
        let mut listen_config = config.clone();
        if !named {
            config.application_name("atamo-store");
            listen_config.application_name("atamo-store-listen");
        }
        let given = config.get_options().unwrap_or("").trim().to_owned();
        let search_path = format!("-c search_path={schema}");
        config.options(if given.is_empty() {
            search_path
        } else {
            format!("{given} {search_path}")
        });

        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(30)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Invalid(format!("connection pool: {e}")))?;
        {
            let mut conn = pool.get().await.map_err(error::pool_error)?;
            schema::migrate(&mut conn, &schema).await?;
        }

        let inner = Arc::new(Inner {
            pool,
            clock: options.clock,
            channel: schema.clone(),
            schema,
            max_batch_items: options.max_batch_items.max(1),
        });
        let (writes, jobs) = mpsc::channel(inner.max_batch_items.clamp(1024, 16 * 1024));
        tokio::spawn(write::writer(inner.clone(), jobs));
        let wake = Arc::new(Notify::new());
        let (stop_listener, stop) = oneshot::channel();
        tokio::spawn(listen::listener(
            listen_config,
            inner.channel.clone(),
            wake.clone(),
            stop,
        ));
        Ok(PostgresStore {
            inner,
            writes,
            wake,
            _stop_listener: stop_listener,
        })
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The schema version this build writes and understands.
    pub const SCHEMA_VERSION: i64 = schema::VERSION;

    /// For comparison in benchmarks: inserts each batch's events and actions (as `write` would
    /// store them, leased or ready) with plain multi-row inserts, one transaction per batch,
    /// without dedupe, settles, results, audit or group commit. Returns the rows inserted.
    pub async fn baseline_insert(&self, batches: Vec<WriteBatch>) -> Result<u64, StoreError> {
        write::baseline_insert(&self.inner, batches).await
    }

    async fn write_batch(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(write::Job { batch, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn write(&self, batch: WriteBatch) -> StoreFuture<'_, WriteOutcome> {
        Box::pin(self.write_batch(batch))
    }

    fn claim(&self, node: &NodeId, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<Claimed>> {
        let node = node.clone();
        Box::pin(async move { ops::claim(&self.inner, &node, limit, lease).await })
    }

    fn heartbeat(&self, node: &NodeId, lease: Duration) -> StoreFuture<'_, u64> {
        let node = node.clone();
        Box::pin(async move { ops::heartbeat(&self.inner, &node, lease).await })
    }

    fn recover_expired(&self) -> StoreFuture<'_, u64> {
        Box::pin(ops::recover_expired(&self.inner))
    }

    fn action(&self, id: ActionId) -> StoreFuture<'_, Option<ActionRow>> {
        Box::pin(ops::action(&self.inner, id))
    }

    fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StoreFuture<'_, Page<ActionRow>> {
        Box::pin(ops::dead_letters(&self.inner, cursor, limit))
    }

    fn redrive(&self, id: ActionId) -> StoreFuture<'_, bool> {
        Box::pin(ops::redrive(&self.inner, id))
    }

    fn results(&self, request: RequestId) -> StoreFuture<'_, Vec<ResultRecord>> {
        Box::pin(ops::results(&self.inner, request))
    }

    fn event(&self, id: EventId) -> StoreFuture<'_, Option<EventRecord>> {
        Box::pin(ops::event(&self.inner, id))
    }

    fn audit(&self, query: AuditQuery) -> StoreFuture<'_, Page<AuditRecord>> {
        Box::pin(async move { ops::audit(&self.inner, &query).await })
    }

    fn events(&self, query: EventQuery) -> StoreFuture<'_, Page<EventRecord>> {
        Box::pin(async move { ops::events(&self.inner, &query).await })
    }

    fn registry_get(&self, kind: &str, id: &str) -> StoreFuture<'_, Option<RegistryEntry>> {
        let checked = check_registry_key(kind, id);
        let (kind, id) = (kind.to_owned(), id.to_owned());
        Box::pin(async move {
            checked?;
            ops::registry_get(&self.inner, &kind, &id).await
        })
    }

    fn registry_list(&self, kind: &str) -> StoreFuture<'_, Vec<RegistryEntry>> {
        let checked = check_registry_kind(kind);
        let kind = kind.to_owned();
        Box::pin(async move {
            checked?;
            ops::registry_list(&self.inner, &kind).await
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
            ops::registry_put(&self.inner, &kind, &id, &body, mode, &audit).await
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
            ops::registry_delete(&self.inner, &kind, &id, &audit).await
        })
    }

    fn prune(&self, retention: &Retention) -> StoreFuture<'_, PruneReport> {
        let retention = retention.clone();
        Box::pin(async move { ops::prune(&self.inner, &retention).await })
    }

    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        Box::pin(ops::stats(&self.inner))
    }

    fn check(&self) -> StoreFuture<'_, CheckReport> {
        Box::pin(ops::check(&self.inner))
    }

    fn wake_hint(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }
}
