//! Building one request from an action: its payload's shape and schema, the method, the URL
//! below the base, and the headers.

use std::collections::BTreeMap;

use atamo_core::agent::AgentError;
use atamo_core::message::Action;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::{add_header, parse_schema};

/// The JSON schema of an action's payload ([`HttpAction`]), checked on every call so that a bad
/// payload fails permanently naming its field.
pub const ACTION_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "method": {"type": "string", "minLength": 1},
    "path": {"type": "string"},
    "query": {
      "type": "object",
      "additionalProperties": {
        "type": ["string", "number", "boolean", "null", "array"],
        "items": {"type": ["string", "number", "boolean"]}
      }
    },
    "body": {},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}}
  },
  "required": [],
  "additionalProperties": false
}"#;

/// An action's payload: what one request does.
///
/// ```json
/// {
///   "method": "GET",
///   "path": "/customers/42",
///   "query": {"include": "orders", "limit": 10, "tag": ["a", "b"]},
///   "body": {"any": "JSON"},
///   "headers": {"X-Request-Source": "atamo"}
/// }
/// ```
///
/// Every field is optional. `path` is appended to the configuration's `base_url` as given
/// (already rendered by the rule's template) and may not lead outside it; without it the request
/// goes to `base_url` itself. `method` defaults to the
/// configuration's. `query` values are strings, numbers or booleans (an array repeats the key,
/// `null` leaves it out). `body`, when present and not `null`, is sent as JSON. `headers` are
/// added to the configuration's; the user's credential is applied last.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// The method, when not the configuration's.
    #[serde(default)]
    pub method: Option<String>,
    /// The path below `base_url` (none: `base_url` itself).
    #[serde(default)]
    pub path: String,
    /// Query parameters.
    #[serde(default)]
    pub query: Map<String, Value>,
    /// The JSON body.
    #[serde(default)]
    pub body: Option<Value>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Reads an action's payload, naming the field at fault.
pub(super) fn parse_action(payload: &Value) -> Result<HttpAction, AgentError> {
    let problems = crate::schema::check(payload, &parse_schema(ACTION_SCHEMA));
    if !problems.is_empty() {
        return Err(AgentError::permanent(format!(
            "bad action payload: {}",
            problems.join("; ")
        )));
    }
    serde_json::from_value(payload.clone())
        .map_err(|e| AgentError::permanent(format!("bad action payload: {e}")))
}

/// The method of `request`: its own, or the configuration's `default`.
pub(super) fn method(request: &HttpAction, default: &Method) -> Result<Method, AgentError> {
    match &request.method {
        None => Ok(default.clone()),
        Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| {
            AgentError::permanent(format!(
                "bad action payload: field `method`: {m:?} is not an HTTP method"
            ))
        }),
    }
}

/// The URL of `request`: its path below `base`, with its query.
pub(super) fn url_for(base: &Url, request: &HttpAction) -> Result<Url, AgentError> {
    let bad = |field: &str, problem: String| {
        AgentError::permanent(format!("bad action payload: field `{field}`: {problem}"))
    };
    if request.path.is_empty() && request.query.is_empty() {
        return Ok(base.clone());
    }
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        request.path.trim_start_matches('/')
    );
    let mut url = Url::parse(&joined).map_err(|e| {
        bad(
            "path",
            format!("{:?} does not make a URL: {e}", request.path),
        )
    })?;
    let base_path = base.path().trim_end_matches('/');
    let inside = url.origin() == base.origin()
        && (url.path() == base_path
            || url
                .path()
                .strip_prefix(base_path)
                .is_some_and(|rest| rest.starts_with('/')));
    if !inside {
        return Err(bad(
            "path",
            format!("{:?} leads outside the base URL", request.path),
        ));
    }
    if !request.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &request.query {
            match value {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        pairs.append_pair(key, &query_text(item));
                    }
                }
                other => {
                    pairs.append_pair(key, &query_text(other));
                }
            }
        }
    }
    Ok(url)
}

/// The request's headers: the configuration's, the action's idempotency key, then the
/// action's own (the credential is applied after these).
pub(super) fn headers(
    configured: &HeaderMap,
    action: &Action,
    request: &HttpAction,
) -> Result<HeaderMap, AgentError> {
    let mut headers = configured.clone();
    if let Ok(key) = HeaderValue::from_str(&action.idempotency_key().to_string()) {
        headers.insert(HeaderName::from_static("idempotency-key"), key);
    }
    for (name, value) in &request.headers {
        add_header(&mut headers, name, value).map_err(|problem| {
            AgentError::permanent(format!(
                "bad action payload: field `headers.{name}`: {problem}"
            ))
        })?;
    }
    Ok(headers)
}

fn query_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_action_schema_is_json() {
        assert!(serde_json::from_str::<Value>(ACTION_SCHEMA)
            .unwrap()
            .is_object());
    }
}
