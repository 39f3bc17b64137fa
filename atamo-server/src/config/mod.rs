//! `atamo.toml`: the service's configuration file, with `ATAMO_*` environment overrides.
//!
//! [`load`] reads the file (when there is one), applies the environment and the command-line
//! flags, fills in the defaults and returns a [`ServeConfig`], or every problem found as
//! [`ConfigErrors`]. Precedence: command-line flag > environment > file > default.
//!
//! The file is parsed once into a spanned document; then each top-level key, each key of each
//! section and each `[[array]]` entry is checked on its own, so one run reports every error,
//! each with the line and column where the offending value (or unknown key) starts. Agents and
//! types are checked with the validators of [`crate::model`], rules with
//! [`atamo_config::RuleSet::new`]. Nothing is built or opened: no network, no file but the
//! configuration file itself. The reference of every key is `docs/config.md`.

pub mod check;
mod env;
mod file;
mod units;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use atamo_core::alerts::AlertConfig;
use atamo_core::failure::RetryPolicy;
use atamo_core::hub::StoreSettings;
use atamo_core::store::{NodeId, Retention};
use atamo_core::TenantId;
use serde::Deserialize;

use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};

pub use check::check_command;

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
    pub keep_alive: Duration,
    /// How long in-flight work may take to finish after SIGTERM or SIGINT (default 10 s).
    pub shutdown_grace: Duration,
    /// How long a dedupe key blocks a second event with the same key (default 24 hours).
    pub dedupe_window: Duration,
    /// How long a node holds an action before another may take it over (default 30 s, at
    /// least 100 ms).
    pub lease: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            dedupe_window: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
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
    pub request_wait_max: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            rate_limit: DEFAULT_RATE_LIMIT,
            rate_burst: DEFAULT_RATE_LIMIT * 2,
            request_wait_max: Duration::from_secs(30),
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

impl Default for ServeConfig {
    fn default() -> Self {
        Layer::default().resolve(&mut Vec::new())
    }
}

impl ServeConfig {
    /// The settings of a stateful hub's store: node name, lease, dedupe window, retention.
    pub fn store_settings(&self) -> StoreSettings {
        let mut settings = StoreSettings::default()
            .lease(self.hub.lease)
            .dedupe_window(self.hub.dedupe_window)
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

/// One problem (or warning) in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file it is in; `None` for the environment.
    pub file: Option<PathBuf>,
    /// The line (from 1) where the offending value or key starts.
    pub line: Option<usize>,
    /// The column (from 1, in characters) where it starts.
    pub column: Option<usize>,
    /// Which setting: `hub.lease`, `agents[1].kind` (entries count from 0), or the environment
    /// variable's name.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A warning: something that works but is probably not what was meant.
pub type Warning = ConfigIssue;

impl ConfigIssue {
    /// An issue with an environment variable.
    fn env(var: &str, message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            column: None,
            path: var.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    /// `atamo.toml:12:5: agents[1].kind: unknown variant ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(file) = &self.file {
            place.push(file.display().to_string());
        }
        place.extend(self.line.map(|l| l.to_string()));
        place.extend(self.column.map(|c| c.to_string()));
        if !place.is_empty() {
            write!(f, "{}: ", place.join(":"))?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in the configuration, in file order, then the environment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    /// One issue a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The service's configuration: the defaults, overridden by `file` (when given; a file that
/// cannot be read is an error), then by the environment as `env` reads it (`std::env::var`
/// in the service, a map in tests), then by `flags`.
///
/// Returns the configuration with its warnings, or every error found.
pub fn load(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Result<(ServeConfig, Vec<Warning>), ConfigErrors> {
    let gathered = gather(file, env, flags);
    if gathered.errors.is_empty() {
        Ok((gathered.config, gathered.warnings))
    } else {
        Err(ConfigErrors(gathered.errors))
    }
}

/// What [`load`] found: the configuration as far as it could be read, the errors and the
/// warnings.
struct Gathered {
    config: ServeConfig,
    errors: Vec<ConfigIssue>,
    warnings: Vec<Warning>,
}

fn gather(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Gathered {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut layer = Layer::default();
    if let Some(path) = file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let checked = file::check(&text, Some(path));
                errors.extend(checked.errors);
                warnings.extend(checked.warnings);
                layer = checked.layer;
            }
            Err(e) => errors.push(ConfigIssue {
                file: Some(path.to_owned()),
                line: None,
                column: None,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    env::apply(&mut layer, env, &mut errors);
    flags.apply(&mut layer);
    let mut config = layer.resolve(&mut warnings);
    config.source = file.map(Path::to_owned);
    Gathered {
        config,
        errors,
        warnings,
    }
}

impl Overrides {
    fn apply(&self, layer: &mut Layer) {
        if let Some(listen) = self.listen {
            layer.listen = Some(listen);
        }
        if let Some(dir) = &self.data_dir {
            layer.data_dir = Some(dir.clone());
        }
        if let Some(format) = self.log_format {
            layer.log_format = Some(format);
        }
    }
}

/// Which store the file or the environment chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoreKind {
    Sqlite,
    Postgres,
    Memory,
}

/// The settings given so far, each `None` until something sets it; [`Layer::resolve`] fills
/// in the defaults.
#[derive(Debug, Default)]
struct Layer {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    plugins_dir: Option<PathBuf>,
    store_kind: Option<StoreKind>,
    store_path: Option<PathBuf>,
    store_url: Option<String>,
    store_schema: Option<String>,
    /// Set by `ATAMO_STORE_SCHEMA`, to warn when the store is not PostgreSQL.
    schema_from_env: bool,
    node: Option<String>,
    keep_alive: Option<Duration>,
    shutdown_grace: Option<Duration>,
    dedupe_window: Option<Duration>,
    lease: Option<Duration>,
    retry: Option<RetryPolicy>,
    alerts: Option<AlertConfig>,
    retention: RetentionConfig,
    body_limit: Option<usize>,
    rate_limit: Option<u32>,
    rate_burst: Option<u32>,
    request_wait_max: Option<Duration>,
    event_types: Vec<EventTypeBody>,
    action_types: Vec<ActionTypeBody>,
    agents: Vec<AgentDef>,
    rules: Vec<atamo_config::Rule>,
}

impl Layer {
    /// The configuration, with defaults for what is unset and paths derived from the final
    /// data directory.
    fn resolve(self, warnings: &mut Vec<Warning>) -> ServeConfig {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let store = match self.store_kind.unwrap_or(StoreKind::Sqlite) {
            StoreKind::Sqlite => StoreConfig::Sqlite {
                path: self
                    .store_path
                    .unwrap_or_else(|| data_dir.join(SQLITE_FILE)),
            },
            StoreKind::Postgres => StoreConfig::Postgres {
                // The file check and the environment both require a URL for PostgreSQL.
                url: self.store_url.unwrap_or_default(),
                schema: self
                    .store_schema
                    .unwrap_or_else(|| DEFAULT_SCHEMA.to_owned()),
            },
            StoreKind::Memory => StoreConfig::Memory,
        };
        if self.schema_from_env && !matches!(store, StoreConfig::Postgres { .. }) {
            warnings.push(ConfigIssue::env(
                env::STORE_SCHEMA,
                format!("ignored: the store is {}, not postgres", store.kind()),
            ));
        }
        let defaults = HubConfig::default();
        let rate_limit = self.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
        ServeConfig {
            listen: self.listen.unwrap_or(DEFAULT_LISTEN),
            log_format: self.log_format.unwrap_or_default(),
            plugins_dir: self
                .plugins_dir
                .unwrap_or_else(|| data_dir.join(PLUGINS_DIR)),
            data_dir,
            store,
            node: self.node,
            hub: HubConfig {
                keep_alive: self.keep_alive.unwrap_or(defaults.keep_alive),
                shutdown_grace: self.shutdown_grace.unwrap_or(defaults.shutdown_grace),
                dedupe_window: self.dedupe_window.unwrap_or(defaults.dedupe_window),
                lease: self.lease.unwrap_or(defaults.lease),
            },
            retry: self.retry,
            alerts: self.alerts.unwrap_or_default(),
            retention: self.retention,
            http: HttpConfig {
                body_limit: self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
                rate_limit,
                rate_burst: self
                    .rate_burst
                    .unwrap_or_else(|| rate_limit.saturating_mul(2)),
                request_wait_max: self
                    .request_wait_max
                    .unwrap_or(HttpConfig::default().request_wait_max),
            },
            event_types: self.event_types,
            action_types: self.action_types,
            agents: self.agents,
            rules: self.rules,
            source: None,
        }
    }
}
