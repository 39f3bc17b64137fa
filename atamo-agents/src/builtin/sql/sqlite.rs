//! SQLite: a named statement run on a blocking thread, its rows streamed back through a
//! bounded channel.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use atamo_core::agent::AgentError;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::action::{Params, SqlAction};
use super::config::{ms, SqliteConfig};
use super::sink::RowSink;

/// Rows read ahead of the answers sent.
const READ_AHEAD: usize = 64;

pub(super) struct Sqlite {
    path: PathBuf,
    statements: BTreeMap<String, String>,
    busy_timeout: Duration,
}

impl Sqlite {
    pub(super) fn new(config: SqliteConfig) -> Self {
        Self {
            path: config.path,
            statements: config.statements,
            busy_timeout: ms(config.busy_timeout_ms),
        }
    }

    pub(super) async fn run(
        &self,
        request: SqlAction,
        sink: &mut RowSink<'_>,
    ) -> Result<(), AgentError> {
        let Some(name) = request.statement else {
            return Err(AgentError::permanent(
                "sql action: field `statement`: required (the name of a configured statement)",
            ));
        };
        let Some(sql) = self.statements.get(&name).cloned() else {
            let known: Vec<&str> = self.statements.keys().map(String::as_str).collect();
            return Err(AgentError::permanent(format!(
                "sql action: field `statement`: no statement named `{name}` (configured: {})",
                known.join(", ")
            )));
        };
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        let path = self.path.clone();
        let busy = self.busy_timeout;
        let params = request.params;
        let worker = tokio::task::spawn_blocking(move || {
            run_blocking(&path, busy, &name, &sql, &params, &tx)
        });
        while let Some(row) = rx.recv().await {
            // On an ended request, dropping `rx` stops the worker at its next row.
            sink.row(row).await?;
        }
        match worker.await {
            Ok(result) => result,
            Err(e) => Err(AgentError::Crashed {
                reason: format!("sqlite worker: {e}"),
            }),
        }
    }
}

fn run_blocking(
    path: &std::path::Path,
    busy: Duration,
    name: &str,
    sql: &str,
    params: &Params,
    tx: &mpsc::Sender<Value>,
) -> Result<(), AgentError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        AgentError::retry(format!(
            "sqlite: cannot open `{}`: {e}",
            path.to_string_lossy()
        ))
    })?;
    conn.busy_timeout(busy).map_err(|e| error(name, e))?;
    let mut stmt = conn.prepare(sql).map_err(|e| error(name, e))?;
    bind(&mut stmt, name, params)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(|e| error(name, e))? {
        let mut obj = Map::with_capacity(columns.len());
        for (i, column) in columns.iter().enumerate() {
            let value = row.get_ref(i).map_err(|e| error(name, e))?;
            obj.insert(column.clone(), to_json(value));
        }
        if tx.blocking_send(Value::Object(obj)).is_err() {
            // Nobody reads any more: the call has ended.
            return Ok(());
        }
    }
    Ok(())
}

fn bind(stmt: &mut rusqlite::Statement<'_>, name: &str, params: &Params) -> Result<(), AgentError> {
    let count = stmt.parameter_count();
    match params {
        Params::Positional(values) => {
            if values.len() != count {
                return Err(AgentError::permanent(format!(
                    "sql action: field `params`: statement `{name}` takes {count} parameter(s), got {}",
                    values.len()
                )));
            }
            for (i, v) in values.iter().enumerate() {
                let value = to_sql(v, &format!("params[{i}]"))?;
                stmt.raw_bind_parameter(i + 1, value)
                    .map_err(|e| error(name, e))?;
            }
        }
        Params::Named(values) => {
            let mut used = 0;
            for i in 1..=count {
                let Some(param) = stmt.parameter_name(i).map(str::to_owned) else {
                    return Err(AgentError::permanent(format!(
                        "sql action: field `params`: statement `{name}` takes positional \
                         parameters; give `params` as an array"
                    )));
                };
                // `:author`, `@author`, `$author` are all given as `author`.
                let key = param.get(1..).unwrap_or_default();
                let Some(v) = values.get(key) else {
                    return Err(AgentError::permanent(format!(
                        "sql action: field `params.{key}`: missing (statement `{name}` uses `{param}`)"
                    )));
                };
                used += 1;
                let value = to_sql(v, &format!("params.{key}"))?;
                stmt.raw_bind_parameter(i, value)
                    .map_err(|e| error(name, e))?;
            }
            if used != values.len() {
                let unknown: Vec<String> = values
                    .keys()
                    .filter(|k| {
                        !(1..=count).any(|i| {
                            stmt.parameter_name(i).and_then(|p| p.get(1..)) == Some(k.as_str())
                        })
                    })
                    .map(|k| format!("`{k}`"))
                    .collect();
                return Err(AgentError::permanent(format!(
                    "sql action: field `params`: statement `{name}` has no parameter(s) {}",
                    unknown.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn to_sql(v: &Value, field: &str) -> Result<SqlValue, AgentError> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                SqlValue::Integer(i)
            } else if n.is_u64() {
                return Err(AgentError::permanent(format!(
                    "sql action: field `{field}`: {n} does not fit SQLite's 64-bit integers"
                )));
            } else {
                SqlValue::Real(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => SqlValue::Text(v.to_string()),
    })
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        // A blob is its bytes in lowercase hex.
        ValueRef::Blob(b) => {
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                let _ = write!(hex, "{byte:02x}");
            }
            Value::String(hex)
        }
    }
}

/// Busy and locked databases and I/O failures may pass; anything else (syntax, constraint,
/// type mismatch) is permanent.
fn error(name: &str, e: rusqlite::Error) -> AgentError {
    let message = format!("sqlite: statement `{name}`: {e}");
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::DiskFull,
        ) => AgentError::retry(message),
        _ => AgentError::permanent(message),
    }
}
