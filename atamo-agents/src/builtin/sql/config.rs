//! The `sql` agent's registration: its shape, its schema, and the checks beyond the schema.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::Config;

use crate::builtin::credentials::Secret;

/// The kind name used in configuration errors.
pub const KIND: &str = "sql";

/// The JSON schema of [`SqlConfig`], checked at registration so that every problem is named.
pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "sqlite": {
      "type": "object",
      "additionalProperties": false,
      "required": ["path", "statements"],
      "properties": {
        "path": {"type": "string", "minLength": 1},
        "statements": {
          "type": "object",
          "additionalProperties": {"type": "string", "minLength": 1}
        },
        "busy_timeout_ms": {"type": "integer", "minimum": 0}
      }
    },
    "postgres": {
      "type": "object",
      "additionalProperties": false,
      "required": ["url", "call", "routine"],
      "properties": {
        "url": {"type": "string", "minLength": 1},
        "call": {"type": "string", "enum": ["function", "procedure"]},
        "routine": {"type": "string", "minLength": 1},
        "connect_timeout_ms": {"type": "integer", "minimum": 1}
      }
    }
  }
}"#;

/// The default of [`SqliteConfig::busy_timeout_ms`].
pub const DEFAULT_BUSY_TIMEOUT_MS: u64 = 5_000;
/// The default of [`PostgresConfig::connect_timeout_ms`].
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The `sql` agent's configuration: exactly one of `sqlite` or `postgres`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SqlConfig {
    /// A SQLite database file and its named statements.
    Sqlite(SqliteConfig),
    /// A PostgreSQL server and the routine to call.
    Postgres(PostgresConfig),
}

/// A SQLite database and the statements the agent may run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// The statements, by name: one SQL statement each, with `?1`, `?NNN`, `:name`, `@name` or
    /// `$name` parameters.
    pub statements: BTreeMap<String, String>,
    /// How long a statement waits for a lock held by another connection before failing
    /// (retryable); default [`DEFAULT_BUSY_TIMEOUT_MS`].
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
}

fn default_busy_timeout_ms() -> u64 {
    DEFAULT_BUSY_TIMEOUT_MS
}

/// A PostgreSQL server and the routine the agent calls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// The connection string: `host=... port=... user=... dbname=...` or a `postgresql://`
    /// URL. It may hold a password, so it is a [`Secret`] (printed as `***`). The connection
    /// is plain TCP (no TLS): point it at a server on the same host or a trusted network.
    pub url: Secret,
    /// Whether the routine is a function or a procedure.
    pub call: RoutineKind,
    /// The routine: `name` or `schema.name`, letters, digits and `_`.
    pub routine: String,
    /// How long connecting may take before the call fails (retryable); default
    /// [`DEFAULT_CONNECT_TIMEOUT_MS`].
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// How a PostgreSQL routine is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutineKind {
    /// `SELECT * FROM routine(...)`: each row the function returns is an answer.
    Function,
    /// `CALL routine(...)`: its `OUT`/`INOUT` parameters, if any, are the one answer.
    Procedure,
}

/// The parsed [`CONFIG_SCHEMA`].
pub(super) fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(CONFIG_SCHEMA).unwrap_or(Value::Null))
}

/// The problems the schema cannot see.
pub(super) fn semantic_problems(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(obj) = config.as_object() else {
        return problems;
    };
    let has_sqlite = obj.contains_key("sqlite");
    let has_postgres = obj.contains_key("postgres");
    if has_sqlite == has_postgres {
        problems.push(format!(
            "(root): exactly one of `sqlite` or `postgres` is required, got {}",
            if has_sqlite { "both" } else { "neither" }
        ));
    }
    if let Some(statements) = obj
        .get("sqlite")
        .and_then(|s| s.get("statements"))
        .and_then(Value::as_object)
    {
        if statements.is_empty() {
            problems.push("field `sqlite.statements`: names no statement".to_owned());
        }
        for name in statements.keys() {
            if name.trim().is_empty() {
                problems.push("field `sqlite.statements`: a statement has an empty name".into());
            }
        }
    }
    if let Some(pg) = obj.get("postgres").and_then(Value::as_object) {
        if let Some(routine) = pg.get("routine").and_then(Value::as_str) {
            if !is_routine_name(routine) {
                problems.push(format!(
                    "field `postgres.routine`: `{routine}` is not a routine name \
                     (`name` or `schema.name`: a letter or `_`, then letters, digits or `_`)"
                ));
            }
        }
        if let Some(url) = pg.get("url").and_then(Value::as_str) {
            if let Err(problem) = parse_url(url) {
                problems.push(format!("field `postgres.url`: {problem}"));
            }
        }
    }
    problems
}

/// Parses a connection string; the error never repeats the string (it may hold a password).
pub(super) fn parse_url(url: &str) -> Result<Config, String> {
    let config =
        Config::from_str(url).map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err("names no host (`host=...` or `postgresql://host/...`)".to_owned());
    }
    Ok(config)
}

/// Whether `s` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` is `name` or `schema.name`.
pub(super) fn is_routine_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((schema, name)) => is_identifier(schema) && is_identifier(name),
        None => is_identifier(s),
    }
}

/// `n` milliseconds.
pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
