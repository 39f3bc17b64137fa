//! The settings as the file, the environment and the flags give them, one layer over the
//! other, and their resolution into a [`ServeConfig`] with the defaults filled in.

use std::net::SocketAddr;
use std::path::PathBuf;

use atamo_core::alerts::AlertConfig;
use atamo_core::bounded::{DedupeWindow, Grace, KeepAlive, Lease, Wait};
use atamo_core::failure::RetryPolicy;
use serde::Deserialize;

use super::settings::{
    HttpConfig, HubConfig, LogFormat, Overrides, RetentionConfig, ServeConfig, StoreConfig,
    DEFAULT_BODY_LIMIT, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_RATE_LIMIT, DEFAULT_SCHEMA,
    PLUGINS_DIR, SQLITE_FILE,
};
use crate::model::{ActionTypeBody, AgentDef, EventTypeBody};

impl Default for ServeConfig {
    fn default() -> Self {
        Layer::default().resolve()
    }
}

impl Overrides {
    /// Sets what the flags give onto `layer`.
    pub(super) fn apply(&self, layer: &mut Layer) {
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
pub(super) enum StoreKind {
    Sqlite,
    Postgres,
    Memory,
}

/// The settings given so far, each `None` until something sets it; [`Layer::resolve`] fills
/// in the defaults.
#[derive(Debug, Default)]
pub(super) struct Layer {
    pub(super) listen: Option<SocketAddr>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) plugins_dir: Option<PathBuf>,
    pub(super) store_kind: Option<StoreKind>,
    pub(super) store_path: Option<PathBuf>,
    pub(super) store_url: Option<String>,
    pub(super) store_schema: Option<String>,
    /// Set by `ATAMO_STORE_SCHEMA`, to warn when the store is not PostgreSQL.
    pub(super) schema_from_env: bool,
    pub(super) node: Option<String>,
    pub(super) keep_alive: Option<KeepAlive>,
    pub(super) shutdown_grace: Option<Grace>,
    pub(super) dedupe_window: Option<DedupeWindow>,
    pub(super) lease: Option<Lease>,
    pub(super) retry: Option<RetryPolicy>,
    pub(super) alerts: Option<AlertConfig>,
    pub(super) retention: RetentionConfig,
    pub(super) body_limit: Option<usize>,
    pub(super) rate_limit: Option<u32>,
    pub(super) rate_burst: Option<u32>,
    pub(super) request_wait_max: Option<Wait>,
    pub(super) event_types: Vec<EventTypeBody>,
    pub(super) action_types: Vec<ActionTypeBody>,
    pub(super) agents: Vec<AgentDef>,
    pub(super) rules: Vec<atamo_config::Rule>,
}

impl Layer {
    /// The configuration, with defaults for what is unset and paths derived from the final
    /// data directory.
    pub(super) fn resolve(self) -> ServeConfig {
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
