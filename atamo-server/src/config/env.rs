//! The `ATAMO_*` environment variables, which win over the file.

use super::issue::{ConfigIssue, Warning};
use super::layer::{Layer, StoreKind};
use super::settings::{LogFormat, StoreConfig};
use std::time::Duration;

use atamo_core::bounded::{Grace, KeepAlive, OutOfRange};

use super::units::{check_body_limit, check_node, check_postgres_url, check_schema};
use super::units::{parse_addr, parse_bytes};
use super::units::{parse_duration, parse_path};

/// `host:port` to listen on.
pub const LISTEN: &str = "ATAMO_LISTEN";
/// The data directory.
pub const DATA_DIR: &str = "ATAMO_DATA_DIR";
/// `human` or `json`.
pub const LOG_FORMAT: &str = "ATAMO_LOG_FORMAT";
/// The plugins directory.
pub const PLUGINS_DIR: &str = "ATAMO_PLUGINS_DIR";
/// `sqlite:PATH`, `postgres://...`, `postgresql://...` or `memory`.
pub const STORE: &str = "ATAMO_STORE";
/// The PostgreSQL schema.
pub const STORE_SCHEMA: &str = "ATAMO_STORE_SCHEMA";
/// This node's name.
pub const NODE: &str = "ATAMO_NODE";
/// `[hub] keep_alive`.
pub const KEEP_ALIVE: &str = "ATAMO_KEEP_ALIVE";
/// `[hub] shutdown_grace`.
pub const SHUTDOWN_GRACE: &str = "ATAMO_SHUTDOWN_GRACE";
/// `[http] body_limit`.
pub const BODY_LIMIT: &str = "ATAMO_BODY_LIMIT";
/// `[http] rate_limit`.
pub const RATE_LIMIT: &str = "ATAMO_RATE_LIMIT";

/// Every variable read, in the order they are applied.
pub const ALL: [&str; 11] = [
    LISTEN,
    DATA_DIR,
    LOG_FORMAT,
    PLUGINS_DIR,
    STORE,
    STORE_SCHEMA,
    NODE,
    KEEP_ALIVE,
    SHUTDOWN_GRACE,
    BODY_LIMIT,
    RATE_LIMIT,
];

/// Applies the variables `env` returns onto `layer`. An unset or empty variable changes
/// nothing; a bad value is an error naming the variable.
pub(super) fn apply(
    layer: &mut Layer,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigIssue>,
) {
    for var in ALL {
        let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        if let Err(message) = set(layer, var, &value) {
            errors.push(ConfigIssue::env(var, message));
        }
    }
}

/// The warning when `ATAMO_STORE_SCHEMA` was set (`from_env`) and the store is not
/// PostgreSQL.
pub(super) fn schema_ignored(from_env: bool, store: &StoreConfig) -> Option<Warning> {
    (from_env && !matches!(store, StoreConfig::Postgres { .. })).then(|| {
        ConfigIssue::env(
            STORE_SCHEMA,
            format!("ignored: the store is {}, not postgres", store.kind()),
        )
    })
}

fn set(layer: &mut Layer, var: &str, value: &str) -> Result<(), String> {
    match var {
        LISTEN => layer.listen = Some(parse_addr(value)?),
        DATA_DIR => layer.data_dir = Some(parse_path(value)?),
        LOG_FORMAT => layer.log_format = Some(parse_log_format(value)?),
        PLUGINS_DIR => layer.plugins_dir = Some(parse_path(value)?),
        STORE => set_store(layer, value)?,
        STORE_SCHEMA => {
            check_schema(value)?;
            layer.store_schema = Some(value.to_owned());
            layer.schema_from_env = true;
        }
        NODE => {
            check_node(value)?;
            layer.node = Some(value.to_owned());
        }
        KEEP_ALIVE => layer.keep_alive = Some(bounded(value, KeepAlive::new)?),
        SHUTDOWN_GRACE => layer.shutdown_grace = Some(bounded(value, Grace::new)?),
        BODY_LIMIT => layer.body_limit = Some(parse_body_limit(value)?),
        RATE_LIMIT => {
            layer.rate_limit = Some(value.trim().parse().map_err(|_| {
                format!("`{value}` is not a number of requests per second (0 turns the limit off)")
            })?)
        }
        _ => {}
    }
    Ok(())
}

/// A duration (`"5m"`) read through the constructor of its bounded type: the message the file
/// and the API give for the same value.
fn bounded<T>(value: &str, new: fn(Duration) -> Result<T, OutOfRange>) -> Result<T, String> {
    new(parse_duration(value)?).map_err(|e| e.to_string())
}

pub(super) fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value.trim() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "`{value}` is not a log format; use `human` or `json`"
        )),
    }
}

pub(super) fn parse_body_limit(value: &str) -> Result<usize, String> {
    check_body_limit(parse_bytes(value)?)
}

/// `ATAMO_STORE` replaces the file's whole choice of store (its kind, path and URL).
fn set_store(layer: &mut Layer, value: &str) -> Result<(), String> {
    let value = value.trim();
    let (kind, path, url) = if value == "memory" {
        (StoreKind::Memory, None, None)
    } else if let Some(path) = value.strip_prefix("sqlite:") {
        (StoreKind::Sqlite, Some(parse_path(path)?), None)
    } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        check_postgres_url(value)?;
        (StoreKind::Postgres, None, Some(value.to_owned()))
    } else {
        // The value may be a connection string holding a password: it is not repeated.
        return Err(
            "not a store; use `sqlite:PATH`, `postgres://...`, `postgresql://...` or `memory`"
                .to_owned(),
        );
    };
    layer.store_kind = Some(kind);
    layer.store_path = path;
    layer.store_url = url;
    Ok(())
}
