//! The `http` agent's registration: its shape, its schema, and the checks beyond the schema.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

/// The kind name used in configuration errors.
pub const KIND: &str = "http";

/// The JSON schema of [`HttpConfig`], checked before it is read so that a bad registration names
/// every problem.
pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "base_url": {"type": "string", "minLength": 1},
    "method": {"type": "string", "minLength": 1},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "tls": {
      "type": "object",
      "properties": {
        "ca_file": {"type": "string", "minLength": 1},
        "accept_invalid_certs": {"type": "boolean"}
      },
      "additionalProperties": false
    }
  },
  "required": ["base_url"],
  "additionalProperties": false
}"#;

/// The default method, when neither the configuration nor the action names one.
pub const DEFAULT_METHOD: &str = "POST";
/// The default request timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// An HTTP agent's registration: where it sends requests.
///
/// ```json
/// {
///   "base_url": "https://crm.example.com/api",
///   "method": "POST",
///   "headers": {"Accept": "application/json"},
///   "timeout_ms": 10000,
///   "tls": {"ca_file": "/etc/atamo/crm-ca.pem", "accept_invalid_certs": false}
/// }
/// ```
///
/// Only `base_url` is required. Header values here are not secret: secrets come from the
/// [`CredentialProvider`](crate::builtin::CredentialProvider). `base_url` must be `http` or `https` and may not carry a user name,
/// password, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL every action's path is appended to.
    pub base_url: String,
    /// The method used when the action names none (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The longest a request may take, connecting and reading the whole response included
    /// (default 30000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// TLS settings of an [`HttpConfig`] (rustls, with the bundled web PKI roots).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of extra root certificates to trust (for example a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accepts any server certificate. For tests only: it turns off server authentication.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_method() -> String {
    DEFAULT_METHOD.to_owned()
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// What can be checked beyond the schema, read from the raw configuration so that these
/// problems are named together with the schema's.
pub(super) struct Checked {
    pub(super) problems: Vec<String>,
    pub(super) base: Option<Url>,
    pub(super) method: Option<Method>,
    pub(super) headers: HeaderMap,
    pub(super) roots: Vec<reqwest::Certificate>,
}

pub(super) fn check_config(config: &Value) -> Checked {
    let mut out = Checked {
        problems: Vec::new(),
        base: None,
        method: None,
        headers: HeaderMap::new(),
        roots: Vec::new(),
    };
    if let Some(base) = config.get("base_url").and_then(Value::as_str) {
        match check_base_url(base) {
            Ok(url) => out.base = Some(url),
            Err(problem) => out.problems.push(format!("field `base_url`: {problem}")),
        }
    }
    let method = config
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_METHOD);
    match Method::from_bytes(method.as_bytes()) {
        Ok(m) => out.method = Some(m),
        Err(_) => out
            .problems
            .push(format!("field `method`: {method:?} is not an HTTP method")),
    }
    if let Some(headers) = config.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            let Some(value) = value.as_str() else {
                continue; // the schema names it
            };
            if let Err(problem) = add_header(&mut out.headers, name, value) {
                out.problems
                    .push(format!("field `headers.{name}`: {problem}"));
            }
        }
    }
    if let Some(path) = config
        .get("tls")
        .and_then(|t| t.get("ca_file"))
        .and_then(Value::as_str)
    {
        match std::fs::read(path) {
            Err(e) => out
                .problems
                .push(format!("field `tls.ca_file`: cannot read {path:?}: {e}")),
            Ok(pem) => match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) if !certs.is_empty() => out.roots = certs,
                Ok(_) => out.problems.push(format!(
                    "field `tls.ca_file`: {path:?} holds no PEM certificate"
                )),
                Err(e) => out.problems.push(format!(
                    "field `tls.ca_file`: {path:?} is not a PEM certificate bundle: {e}"
                )),
            },
        }
    }
    out
}

fn check_base_url(base: &str) -> Result<Url, String> {
    let url = Url::parse(base).map_err(|e| format!("{base:?} is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{base:?}: the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err(format!("{base:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds a secret.
        return Err("must not carry a user name or password (use the credential provider)".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{base:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// Adds header `name: value`, or says why it is not a valid header.
pub(super) fn add_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    let value = HeaderValue::from_str(value).map_err(|_| "not a valid header value".to_owned())?;
    headers.insert(name, value);
    Ok(())
}

/// Reads one of the agent's JSON schemas.
pub(super) fn parse_schema(text: &str) -> Value {
    // Both schemas are constants checked by a unit test; `Null` would check nothing.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_config_schema_is_json() {
        assert!(serde_json::from_str::<Value>(CONFIG_SCHEMA)
            .unwrap()
            .is_object());
    }
}
