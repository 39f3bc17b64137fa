//! One action's payload: the statement to run and its parameters.

use atamo_core::agent::AgentError;
use serde_json::{Map, Value};

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
