//! One action's payload: the arguments, standard input and environment it adds.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::env_problems;

/// The JSON schema of an action's payload ([`CommandAction`]).
pub const ACTION_SCHEMA: &str = r#"{
  "type": ["object", "null"],
  "properties": {
    "args": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
    "stdin": {"type": "string"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}}
  },
  "additionalProperties": false
}"#;

/// One action's payload: what this call adds to the agent's fixed configuration.
///
/// ```json
/// {
///   "args": ["--order", "{{payload.order.id}}", "{{payload.customer.name}}"],
///   "stdin": "{{payload.note}}",
///   "env": {"ORDER_ID": "{{payload.order.id}}"}
/// }
/// ```
///
/// Every field is optional (`{}` or `null` runs the program with its configured arguments
/// only). An argument may be a string, a number or a boolean (a template like
/// `"{{payload.order.id}}"` keeps the field's JSON type); it is passed as its text. A
/// payload of any other shape fails the call permanently, naming each field at fault.
///
/// The program also receives, whatever `clear_env` says, `ATAMO_USER` (the user the event
/// came from, on whose behalf the agent acts), `ATAMO_ACTION_ID` (the same for every attempt of
/// one action: use it as an idempotency key) and `ATAMO_ATTEMPT` (1 for the first try).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandAction {
    /// Arguments after the configured ones.
    pub args: Vec<String>,
    /// Text written to the program's standard input, which is then closed (when absent,
    /// standard input is empty).
    pub stdin: Option<String>,
    /// Environment variables set after the configured ones (overriding them).
    pub env: BTreeMap<String, String>,
}

impl CommandAction {
    /// Reads an action's payload, naming every field at fault.
    pub fn from_payload(payload: &Value) -> Result<Self, Vec<String>> {
        let schema: Value = serde_json::from_str(ACTION_SCHEMA).map_err(|e| vec![e.to_string()])?;
        let mut problems = crate::schema::check(payload, &schema);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut action = CommandAction::default();
        if let Some(args) = payload.get("args").and_then(Value::as_array) {
            for arg in args {
                action.args.push(match arg {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
        action.stdin = payload
            .get("stdin")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(env) = payload.get("env").and_then(Value::as_object) {
            for (k, v) in env {
                action
                    .env
                    .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
        }
        for (i, arg) in action.args.iter().enumerate() {
            if arg.contains('\0') {
                problems.push(format!("field `args[{i}]`: contains a NUL character"));
            }
        }
        env_problems(&action.env, "env", &mut problems);
        if problems.is_empty() {
            Ok(action)
        } else {
            Err(problems)
        }
    }
}
