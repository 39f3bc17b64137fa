//! What the service runs with: [`ServeConfig`] and its sections, the defaults, and the
//! command-line [`Overrides`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use atamo_core::alerts::AlertConfig;
use atamo_core::bounded::{DedupeWindow, Grace, KeepAlive, Lease, Wait};
use atamo_core::failure::RetryPolicy;
use atamo_core::hub::StoreSettings;
use atamo_core::store::{NodeId, Retention};
use atamo_core::TenantId;
use serde::Deserialize;

use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};

/// The address the service listens on by default.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 7700));
/// The data directory by default, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "atamo-data";
/// The SQLite file's name in the data directory.
pub const SQLITE_FILE: &str = "atamo.db";
/// The plugins directory's name in the data directory.
pub const PLUGINS_DIR: &str = "plugins";
/// The PostgreSQL schema by default.
pub const DEFAULT_SCHEMA: &str = atamo_store_postgres::DEFAULT_SCHEMA;
/// How many requests per second and per API key are accepted by default.
pub const DEFAULT_RATE_LIMIT: u32 = 100;
/// The largest request body accepted by default, in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How the service writes its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The format's name in the file and in `ATAMO_LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }
}

/// Where the hub keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A SQLite file (the default: `<data_dir>/atamo.db`).
    Sqlite {
        /// The file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The connection string (`postgres://user:password@host/db`).
        url: String,
        /// The schema holding the tables (default `atamo`).
        schema: String,
    },
    /// No store: a stateless hub, nothing kept across restarts.
    Memory,
}

impl StoreConfig {
    /// `sqlite`, `postgres` or `memory`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
            Self::Memory => "memory",
        }
    }
}

// By hand, so that a password in the connection string never reaches a log.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Self::Postgres { url, schema } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("schema", schema)
                .finish(),
            Self::Memory => f.write_str("Memory"),
        }
    }
}

/// `url` with the user information before `@` hidden.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ if url.contains("password") => "***".to_owned(),
        _ => url.to_owned(),
    }
}

/// The hub's timings (`[hub]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// How long a finished request's answers are kept for clients that went away (default
    /// 5 minutes, the hub's own default).
    pub keep_alive: KeepAlive,
    /// How long in-flight work may take to finish after SIGTERM or SIGINT (default 10 s).
    pub shutdown_grace: Grace,
    /// How long a dedupe key blocks a second event with the same key (default 24 hours).
    pub dedupe_window: DedupeWindow,
    /// How long a node holds an action before another may take it over (default 30 s, at
    /// least 100 ms).
    pub lease: Lease,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            keep_alive: KeepAlive::saturating(Duration::from_secs(300)),
            shutdown_grace: Grace::saturating(Duration::from_secs(10)),
            dedupe_window: DedupeWindow::saturating(Duration::from_secs(24 * 3600)),
            lease: Lease::saturating(Duration::from_secs(30)),
        }
    }
}

/// How long stored things are kept (`[retention]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Audit entries, events and finished actions older than this are deleted (default:
    /// kept for ever).
    pub audit: Option<Duration>,
    /// Tenants with their own audit age, replacing `audit` for them.
    pub tenants: BTreeMap<TenantId, Duration>,
}

impl RetentionConfig {
    /// The store's retention: `audit` for everyone, the tenants' own ages for them.
    pub fn store_retention(&self) -> Retention {
        Retention {
            max_age: self.audit,
            tenants: self.tenants.clone(),
        }
    }
}

/// The REST API's limits (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The largest request body, in bytes (default 1 MiB).
    pub body_limit: usize,
    /// Requests per second per API key (default 100); 0 turns the limit off.
    pub rate_limit: u32,
    /// How many requests an API key may send at once above the rate (default twice
    /// `rate_limit`).
    pub rate_burst: u32,
    /// The longest `wait_ms` a client may ask for (default 30 s).
    pub request_wait_max: Wait,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_burst: DEFAULT_RATE_LIMIT * 2,
            request_wait_max: Wait::saturating(Duration::from_secs(30)),
        }
    }
}

/// Everything `atamo serve` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The address to listen on (default `127.0.0.1:7700`).
    pub listen: SocketAddr,
    /// The data directory (default `atamo-data`, relative to the working directory).
    pub data_dir: PathBuf,
    /// How the log is written (default human-readable lines).
    pub log_format: LogFormat,
    /// Where native agent libraries are looked up (default `<data_dir>/plugins`).
    pub plugins_dir: PathBuf,
    /// The store (default SQLite in `<data_dir>/atamo.db`).
    pub store: StoreConfig,
    /// This node's name in the store (default: generated from host name and process id).
    pub node: Option<String>,
    /// The hub's timings.
    pub hub: HubConfig,
    /// The retry policy of actions whose rule, type and agent have none of their own
    /// (default: the hub's).
    pub retry: Option<RetryPolicy>,
    /// The alert thresholds (default: the hub's error-rate alert only).
    pub alerts: AlertConfig,
    /// How long stored things are kept.
    pub retention: RetentionConfig,
    /// The REST API's limits.
    pub http: HttpConfig,
    /// Event types registered at start.
    pub event_types: Vec<EventTypeBody>,
    /// Action types registered at start.
    pub action_types: Vec<ActionTypeBody>,
    /// Agents registered at start.
    pub agents: Vec<AgentDef>,
    /// Rules loaded at start.
    pub rules: Vec<atamo_config::Rule>,
    /// The file read, if any.
    pub source: Option<PathBuf>,
}

impl ServeConfig {
    /// The settings of a stateful hub's store: node name, lease, dedupe window, retention.
    pub fn store_settings(&self) -> StoreSettings {
        let mut settings = StoreSettings::default()
            .lease(self.hub.lease.get())
            .dedupe_window(self.hub.dedupe_window.get())
            .retention(self.retention.store_retention());
        if let Some(node) = &self.node {
            settings = settings.node(NodeId::new(node));
        }
        settings
    }
}

/// Command-line flags, which win over the environment and the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}
