//! PostgreSQL: a function or procedure call, its parameters bound as text, its rows streamed.
//!
//! The SQL text is built from the configured routine name (checked to be `[schema.]name`) and
//! `$n` parameter markers only. Every parameter is sent in text format with an unspecified type, so
//! the server infers each one's type from the routine's signature and parses the text with
//! that type's input function: a JSON number fits `integer`, `numeric` or `text`, a string
//! fits `date` or `uuid`, an object fits `jsonb`. Nothing the action gives reaches the SQL text.
//!
//! A function's rows are read as `to_json(row)::text`, so every column type (numeric, dates,
//! arrays, json, composite) arrives as the JSON PostgreSQL itself writes. A procedure's
//! `OUT`/`INOUT` values (the one row `CALL` returns, if any) are read directly: booleans,
//! integers, floats, text types and json/jsonb.

use std::error::Error as StdError;
use std::time::Duration;

use atamo_core::agent::AgentError;
use bytes::BytesMut;
use futures_util::{pin_mut, TryStreamExt};
use serde_json::{Map, Value};
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Config, NoTls, Row};

use super::action::{Params, SqlAction};
use super::config::{is_identifier, is_routine_name, ms, parse_url, PostgresConfig, RoutineKind};
use super::sink::RowSink;
use crate::builtin::credentials::Secret;

/// The alias of the function's row in the generated SQL (`to_json(atamo_row.*)`).
const ROW_ALIAS: &str = "atamo_row";

pub(super) struct Postgres {
    config: Config,
    kind: RoutineKind,
    routine: String,
    connect_timeout: Duration,
}

impl Postgres {
    pub(super) fn new(c: PostgresConfig) -> Result<Self, String> {
        let config = parse_url(c.url.expose()).map_err(|p| format!("field `postgres.url`: {p}"))?;
        if !is_routine_name(&c.routine) {
            return Err(format!(
                "field `postgres.routine`: `{}` is not a routine name",
                c.routine
            ));
        }
        Ok(Self {
            config,
            kind: c.call,
            routine: c.routine,
            connect_timeout: ms(c.connect_timeout_ms),
        })
    }

    /// The SQL for the call, with `n` parameter markers (`names` for named notation).
    fn sql(&self, params: &Params) -> Result<(String, Vec<TextParam>), AgentError> {
        let (args, values): (Vec<String>, Vec<TextParam>) = match params {
            Params::Positional(values) => values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("${}", i + 1), TextParam::from_json(v)))
                .unzip(),
            Params::Named(values) => {
                let mut args = Vec::with_capacity(values.len());
                let mut binds = Vec::with_capacity(values.len());
                for (i, (name, v)) in values.iter().enumerate() {
                    if !is_identifier(name) {
                        return Err(AgentError::permanent(format!(
                            "sql action: field `params`: `{name}` is not a parameter name \
                             (a letter or `_`, then letters, digits or `_`)"
                        )));
                    }
                    args.push(format!("{name} => ${}", i + 1));
                    binds.push(TextParam::from_json(v));
                }
                (args, binds)
            }
        };
        let call = format!("{}({})", self.routine, args.join(", "));
        let sql = match self.kind {
            RoutineKind::Function => format!(
                "SELECT to_json({ROW_ALIAS}.*)::text FROM (SELECT * FROM {call}) AS {ROW_ALIAS}"
            ),
            RoutineKind::Procedure => format!("CALL {call}"),
        };
        Ok((sql, values))
    }

    pub(super) async fn run(
        &self,
        request: SqlAction,
        login: Option<(String, Secret)>,
        sink: &mut RowSink<'_>,
    ) -> Result<(), AgentError> {
        if request.statement.is_some() {
            return Err(AgentError::permanent(
                "sql action: field `statement`: a PostgreSQL sql agent calls its configured \
                 routine and takes no statement",
            ));
        }
        let (sql, params) = self.sql(&request.params)?;
        let mut config = self.config.clone();
        config.connect_timeout(self.connect_timeout);
        if let Some((user, password)) = login {
            config.user(user);
            config.password(password.expose());
        }
        let (client, connection) =
            match tokio::time::timeout(self.connect_timeout, config.connect(NoTls)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(pg_error("connecting", &e)),
                Err(_) => {
                    return Err(AgentError::retry(format!(
                        "postgres: connecting timed out after {}ms",
                        self.connect_timeout.as_millis()
                    )))
                }
            };
        // The connection ends when `client` is dropped, at the end of this call.
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let result = self.stream(&client, &sql, &params, sink).await;
        drop(client);
        connection.abort();
        result
    }

    async fn stream(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
        params: &[TextParam],
        sink: &mut RowSink<'_>,
    ) -> Result<(), AgentError> {
        let what = match self.kind {
            RoutineKind::Function => "function",
            RoutineKind::Procedure => "procedure",
        };
        let context = format!("{what} `{}`", self.routine);
        let rows = client
            .query_raw(sql, params.iter())
            .await
            .map_err(|e| pg_error(&context, &e))?;
        pin_mut!(rows);
        while let Some(row) = rows.try_next().await.map_err(|e| pg_error(&context, &e))? {
            let value = match self.kind {
                RoutineKind::Function => function_row(&row)?,
                RoutineKind::Procedure => procedure_row(&row)?,
            };
            sink.row(value).await?;
        }
        Ok(())
    }
}

/// A function's row: the JSON text of `to_json(row)`.
fn function_row(row: &Row) -> Result<Value, AgentError> {
    let text: Option<String> = row
        .try_get(0)
        .map_err(|e| AgentError::permanent(format!("postgres: reading a row: {e}")))?;
    match text {
        None => Ok(Value::Null),
        Some(t) => serde_json::from_str(&t)
            .map_err(|e| AgentError::permanent(format!("postgres: reading a row: {e}"))),
    }
}

/// A procedure's `OUT` values, read by type.
fn procedure_row(row: &Row) -> Result<Value, AgentError> {
    let mut obj = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw: Option<RawValue<'_>> = row
            .try_get(i)
            .map_err(|e| AgentError::permanent(format!("postgres: reading a row: {e}")))?;
        let value = match raw {
            None => Value::Null,
            Some(raw) => decode(column.type_(), raw.0).map_err(|e| {
                AgentError::permanent(format!(
                    "postgres: procedure output `{}` ({}): {e}",
                    column.name(),
                    column.type_()
                ))
            })?,
        };
        obj.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(obj))
}

type DecodeError = Box<dyn StdError + Sync + Send>;

fn decode(ty: &Type, raw: &[u8]) -> Result<Value, DecodeError> {
    Ok(match *ty {
        Type::BOOL => Value::from(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
        Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
        Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
        Type::OID => Value::from(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => Value::from(f64::from(f32::from_sql(ty, raw)?)),
        Type::FLOAT8 => Value::from(f64::from_sql(ty, raw)?),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::from(<&str>::from_sql(ty, raw)?)
        }
        Type::JSON => serde_json::from_slice(raw)?,
        // jsonb's binary form: a version byte (1), then the JSON text.
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => serde_json::from_slice(text)?,
            _ => return Err("unknown jsonb format".into()),
        },
        _ => {
            return Err(
                "this type cannot be read from a procedure; declare the OUT parameter as \
                 text, an integer, a float, boolean or json(b), or cast it"
                    .into(),
            )
        }
    })
}

/// A column's bytes, whatever its type.
struct RawValue<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, DecodeError> {
        Ok(Self(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A parameter sent as text, for the server to parse as the type it infers.
#[derive(Debug)]
struct TextParam(Option<String>);

impl TextParam {
    fn from_json(v: &Value) -> Self {
        Self(match v {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Array(_) | Value::Object(_) => Some(v.to_string()),
        })
    }
}

impl ToSql for TextParam {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, DecodeError> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Connection failures, and PostgreSQL's transient errors, are retryable; SQL errors are
/// permanent, with the server's message.
fn pg_error(context: &str, e: &tokio_postgres::Error) -> AgentError {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: refused, reset, closed, timed out.
        return AgentError::retry(format!("postgres: {context}: {e}"));
    };
    let code = db.code().code();
    let mut message = format!("postgres: {context}: {} ({code})", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        message.push_str(&format!("; hint: {hint}"));
    }
    let transient = code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources (too many connections, ...)
        || code.starts_with("57P") // shutting down, cannot connect now
        || code == "40001" // serialization failure
        || code == "40P01" // deadlock detected
        || code == "55P03"; // lock not available
    if transient {
        AgentError::retry(message)
    } else {
        AgentError::permanent(message)
    }
}
