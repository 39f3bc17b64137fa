//! The built-in `sql` agent: runs a named SQLite statement, or calls a PostgreSQL function or
//! procedure, with the action's parameters.
//!
//! The SQL text comes from the agent's configuration only; the action gives parameters, which
//! are always **bound**, never spliced into SQL text, so a value such as
//! `x'); DROP TABLE notes; --` is stored as the text it is.
//!
//! # Configuration ([`SqlConfig`])
//!
//! SQLite, which has no procedures: the statements the agent may run, by name.
//!
//! ```json
//! {"sqlite": {
//!     "path": "/var/lib/app/notes.db",
//!     "statements": {
//!         "add_note": "INSERT INTO notes(author, body) VALUES (?1, ?2)",
//!         "notes_by": "SELECT id, body FROM notes WHERE author = :author ORDER BY id"
//!     },
//!     "busy_timeout_ms": 5000
//! }}
//! ```
//!
//! PostgreSQL: a connection string (`key=value` pairs or a `postgresql://` URL) and the routine
//! to call, a function (`SELECT * FROM routine($1, ...)`) or a procedure (`CALL routine($1,
//! ...)`). The routine name is `name` or `schema.name` (letters, digits and `_`).
//!
//! ```json
//! {"postgres": {
//!     "url": "host=127.0.0.1 port=5432 user=app dbname=app",
//!     "call": "function",
//!     "routine": "crm.find_customers",
//!     "connect_timeout_ms": 5000
//! }}
//! ```
//!
//! When the [`CredentialProvider`] has a [`Credential::Password`] for (agent, the event's user),
//! the PostgreSQL agent logs in with it instead of the user and password of `url`: it acts on
//! behalf of the event's user.
//!
//! # Action payload ([`SqlAction`])
//!
//! ```json
//! {"statement": "add_note", "params": ["alice", "hello"]}
//! ```
//!
//! `statement` names one of the configured SQLite statements (PostgreSQL agents take none).
//! `params` is an array (positional: `?1`, `?2` in SQLite; `$1`, `$2` in PostgreSQL) or an
//! object (named: `:author`, `@author` or `$author` in SQLite, given as `{"author": ...}`;
//! `routine(author => $1)` notation in PostgreSQL). See [`SqlAction`] for how values map to
//! SQL types.
//!
//! # Answers
//!
//! Each row is one answer, a JSON object (column name → value), sent as a feed as the rows are
//! read (a long result is never held in memory whole); the final reply is `{"rows": n}`. For an
//! event (no request) the rows are read and counted only.
//!
//! # Failures
//!
//! A connection that cannot be made or breaks, a timeout, a busy or locked database, and
//! PostgreSQL's transient errors (serialization failure, deadlock, too many connections, server
//! shutting down) are retryable; SQL errors (syntax, constraint, bad input for a type, unknown
//! routine) are permanent, with the database's message. A bad action payload is permanent and
//! names the field.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::message::Action;
use atamo_core::request::AnswerError;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::config::{parse_config, ConfigProblems};
use super::credentials::{Credential, CredentialProvider, Secret};

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

/// An action for the `sql` agent, read from the action's payload.
///
/// ```json
/// {"statement": "add_note", "params": ["alice", "x'); DROP TABLE notes; --"]}
/// ```
///
/// - `statement`: the name of a configured SQLite statement; required for SQLite, refused for
///   PostgreSQL (which calls its configured routine).
/// - `params`: an array (positional) or an object (named); absent means none.
///
/// Values: in SQLite, `null` is NULL, a boolean is the integer 0 or 1, an integer is an
/// INTEGER, another number a REAL, a string TEXT, and an array or object its JSON text. In
/// PostgreSQL every value is sent as text (`null` as NULL, arrays and objects as JSON text)
/// and the server reads it as the type the routine's signature gives the parameter, so
/// `"42"` and `42` both fit an `integer`, a JSON object fits `jsonb`, and `"2024-05-01"` a
/// `date`; a value that does not fit is a permanent error from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlAction {
    /// The SQLite statement to run.
    pub statement: Option<String>,
    /// The parameters.
    pub params: Params,
}

/// The parameters of an [`SqlAction`].
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// By position: the first binds `?1` / `$1`.
    Positional(Vec<Value>),
    /// By name.
    Named(Map<String, Value>),
}

impl SqlAction {
    /// Reads an action payload, naming the field at fault.
    pub fn from_payload(payload: &Value) -> Result<Self, AgentError> {
        let Some(obj) = payload.as_object() else {
            return Err(AgentError::permanent(format!(
                "sql action: the payload must be an object with `statement` and `params`, got {}",
                type_name(payload)
            )));
        };
        let mut problems = Vec::new();
        for key in obj.keys() {
            if key != "statement" && key != "params" {
                problems.push(format!(
                    "field `{key}`: unknown (expected `statement`, `params`)"
                ));
            }
        }
        let statement = match obj.get("statement") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                problems.push(format!(
                    "field `statement`: expected a string, got {}",
                    type_name(other)
                ));
                None
            }
        };
        let params = match obj.get("params") {
            None | Some(Value::Null) => Params::Positional(Vec::new()),
            Some(Value::Array(a)) => Params::Positional(a.clone()),
            Some(Value::Object(o)) => Params::Named(o.clone()),
            Some(other) => {
                problems.push(format!(
                    "field `params`: expected an array or an object, got {}",
                    type_name(other)
                ));
                Params::Positional(Vec::new())
            }
        };
        if problems.is_empty() {
            Ok(Self { statement, params })
        } else {
            Err(AgentError::permanent(format!(
                "sql action: {}",
                problems.join("; ")
            )))
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The `sql` agent. Build it with [`SqlAgent::from_config`] and register it like any agent.
///
/// Each call opens its own connection (a SQLite file handle on a blocking thread, or a
/// PostgreSQL connection), so a slow reader of one feed never holds up another call.
#[derive(Clone)]
pub struct SqlAgent {
    inner: Arc<Inner>,
}

struct Inner {
    agent_id: String,
    backend: Backend,
    credentials: Arc<dyn CredentialProvider>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

impl std::fmt::Debug for SqlAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("SqlAgent")
            .field("agent_id", &self.inner.agent_id)
            .field("backend", &kind)
            .finish_non_exhaustive()
    }
}

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(CONFIG_SCHEMA).unwrap_or(Value::Null))
}

impl SqlAgent {
    /// Builds the agent registered as `agent_id` from its configuration (see [`SqlConfig`]).
    /// Every problem is named: fields of the wrong type or unknown, neither or both of
    /// `sqlite` and `postgres`, a routine name that is not `[schema.]name`, a connection
    /// string that does not parse, no statements.
    pub fn from_config(
        agent_id: &str,
        config: &Value,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, ConfigProblems> {
        let extra = semantic_problems(config);
        if !extra.is_empty() {
            let mut problems = crate::schema::check(config, schema());
            problems.extend(extra);
            return Err(ConfigProblems {
                agent: agent_id.to_owned(),
                kind: KIND,
                problems,
            });
        }
        let parsed: SqlConfig = parse_config(agent_id, KIND, schema(), config)?;
        Self::new(agent_id, parsed, credentials).map_err(|problem| ConfigProblems {
            agent: agent_id.to_owned(),
            kind: KIND,
            problems: vec![problem],
        })
    }

    /// Builds the agent from an already parsed configuration.
    pub fn new(
        agent_id: &str,
        config: SqlConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, String> {
        let backend = match config {
            SqlConfig::Sqlite(c) => Backend::Sqlite(sqlite::Sqlite::new(c)),
            SqlConfig::Postgres(c) => Backend::Postgres(Box::new(postgres::Postgres::new(c)?)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                agent_id: agent_id.to_owned(),
                backend,
                credentials,
            }),
        })
    }
}

/// The problems the schema cannot see.
fn semantic_problems(config: &Value) -> Vec<String> {
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
            if let Err(problem) = postgres::parse_url(url) {
                problems.push(format!("field `postgres.url`: {problem}"));
            }
        }
    }
    problems
}

/// Whether `s` is a plain identifier: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` is `name` or `schema.name`.
pub(crate) fn is_routine_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((schema, name)) => is_identifier(schema) && is_identifier(name),
        None => is_identifier(s),
    }
}

/// Sends rows as answers and counts them.
struct RowSink<'a> {
    ctx: &'a CallContext,
    answering: bool,
    rows: u64,
}

impl<'a> RowSink<'a> {
    fn new(ctx: &'a CallContext) -> Self {
        Self {
            ctx,
            answering: true,
            rows: 0,
        }
    }

    /// Sends one row; fails with `Cancelled` once the request has ended.
    async fn row(&mut self, row: Value) -> Result<(), AgentError> {
        self.rows += 1;
        if !self.answering {
            return Ok(());
        }
        match self.ctx.answer(row).await {
            Ok(()) => Ok(()),
            Err(AnswerError::NotARequest) => {
                self.answering = false;
                Ok(())
            }
            Err(_) => Err(AgentError::Cancelled),
        }
    }
}

#[async_trait]
impl Agent for SqlAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        let request = SqlAction::from_payload(action.payload())?;
        let mut sink = RowSink::new(&ctx);
        let work = async {
            match &inner.backend {
                Backend::Sqlite(db) => db.run(request, &mut sink).await,
                Backend::Postgres(db) => {
                    let user = action.meta().event.principal.user.as_str();
                    let login = match inner.credentials.credential(&inner.agent_id, user) {
                        None => None,
                        Some(Credential::Password { user, password }) => Some((user, password)),
                        Some(_) => {
                            return Err(AgentError::permanent(format!(
                                "sql agent `{}`: the credential for user `{user}` is not a \
                                 password (a database login needs a user and password)",
                                inner.agent_id
                            )))
                        }
                    };
                    db.run(request, login, &mut sink).await
                }
            }
        };
        tokio::select! {
            r = work => r?,
            _ = ctx.cancelled() => return Err(AgentError::Cancelled),
        }
        Ok(Reply::with(json!({"rows": sink.rows})))
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
