//! Turning a response into the call's answer or failure.

use std::time::{Duration, SystemTime};

use atamo_core::agent::{AgentError, Reply};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use super::retry_after::retry_after;
use super::secrets::Scrubber;

/// How much of an error response's body an error message quotes, in characters.
const EXCERPT_CHARS: usize = 200;

/// The call's outcome for a response with `status`: an answer with the status, the kept
/// headers and the body for `2xx` and `3xx`; a retryable failure (with the server's
/// `Retry-After`) for `429` and `5xx`; a permanent one quoting the body's start otherwise.
pub(super) fn outcome(
    target: &str,
    status: StatusCode,
    kept: Map<String, Value>,
    bytes: &[u8],
    is_json: bool,
    scrub: &Scrubber,
) -> Result<Reply, AgentError> {
    if status.is_success() || status.is_redirection() {
        let body = scrub.value(body_value(bytes, is_json));
        return Ok(Reply::with(serde_json::json!({
            "status": status.as_u16(),
            "headers": kept,
            "body": body,
        })));
    }
    let excerpt = scrub.text(&excerpt(bytes));
    let reason = if excerpt.is_empty() {
        format!("{target} answered {}", status_text(status))
    } else {
        format!("{target} answered {}: {excerpt}", status_text(status))
    };
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let after = kept
            .get("retry-after")
            .and_then(Value::as_str)
            .and_then(|v| retry_after(v, SystemTime::now()));
        Err(AgentError::Retry { reason, after })
    } else {
        Err(AgentError::permanent(reason))
    }
}

/// The failure of a request that got no complete response: a timeout, or what the transport
/// says (retryable unless the request could not be built).
pub(super) fn transport_error(
    agent_id: &str,
    timeout: Duration,
    target: &str,
    error: &reqwest::Error,
    scrub: &Scrubber,
) -> AgentError {
    if error.is_timeout() {
        tracing::debug!(agent = %agent_id, request = %target, "http request timed out");
        return AgentError::Timeout { after: timeout };
    }
    // The URL is left out (the target names the path); the causes say what happened.
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        let part = if text.is_empty() {
            // `reqwest::Error`'s own text without its URL.
            let own = e.to_string();
            own.split(" for url (")
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            e.to_string()
        };
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        source = e.source();
    }
    let reason = scrub.text(&format!("{target}: {text}"));
    tracing::debug!(agent = %agent_id, error = %reason, "http request failed");
    if error.is_builder() || error.is_redirect() {
        AgentError::permanent(reason)
    } else {
        AgentError::retry(reason)
    }
}

/// The response headers that matter to a caller.
pub(super) fn kept_headers(headers: &HeaderMap) -> Map<String, Value> {
    const KEPT: [&str; 4] = ["content-type", "location", "etag", "retry-after"];
    KEPT.iter()
        .filter_map(|name| {
            let value = headers.get(*name)?;
            Some((
                (*name).to_owned(),
                Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            ))
        })
        .collect()
}

pub(super) fn is_json_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || mime.ends_with("+json")
}

pub(super) fn body_value(bytes: &[u8], is_json: bool) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if is_json {
        if let Ok(value) = serde_json::from_slice(bytes) {
            return value;
        }
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

pub(super) fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > EXCERPT_CHARS {
        let mut short: String = text.chars().take(EXCERPT_CHARS).collect();
        short.push('…');
        short
    } else {
        text
    }
}

pub(super) fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json_type("application/json"));
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(!is_json_type("text/plain"));
    }
}
