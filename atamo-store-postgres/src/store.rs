//! [`PostgresStore`]: connecting, and starting the writer task and the listener.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::store::{StoreError, WriteBatch, WriteOutcome};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_postgres::{Config, NoTls};

use crate::options::{PgOptions, DEFAULT_SCHEMA};
use crate::shared::Inner;
use crate::{error, listen, schema, write};

/// The [`Store`](atamo_core::store::Store) and the
/// [`DefinitionRegistry`](atamo_core::store::DefinitionRegistry) on PostgreSQL: several hub
/// nodes share one queue by connecting to the same schema. See the
/// [crate documentation](crate).
///
/// Dropping it stops its writer (after the writes already queued) and its listener.
pub struct PostgresStore {
    pub(crate) inner: Arc<Inner>,
    writes: mpsc::Sender<write::Job>,
    pub(crate) wake: Arc<Notify>,
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
            return Err(StoreError::invalid("pool_size must be at least 1"));
        }
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::invalid("connection string").with_source(e))?;
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
            .map_err(|e| StoreError::invalid("connection pool").with_source(e))?;
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

    pub(crate) async fn write_batch(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
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
