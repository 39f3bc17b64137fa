//! The built-in `http` agent: calls a REST endpoint on behalf of the event's user.
//!
//! Its registration ([`HttpConfig`]) gives the destination: the base URL, the default method,
//! fixed headers, a timeout and TLS settings (rustls). Each action ([`HttpAction`]) gives the
//! details: method, path, query, JSON body and extra headers, usually filled by a rule's template
//! from the event. The credential of (agent, event user) from the [`CredentialProvider`] is sent
//! with the request: a token as `Authorization: Bearer`, a password as basic auth, an API key in
//! its header. Every request carries `Idempotency-Key: <action id>`, the same for every attempt
//! of an action (and after a restart of a stateful hub), so the endpoint can ignore repeats.
//!
//! The response becomes the call's answer (see [`HttpAgent`]). `429` and `5xx` are retryable
//! (with the server's `Retry-After`), other `4xx` are permanent, connection errors are retryable
//! and the request timeout is [`AgentError::Timeout`].
//!
//! ```
//! use std::sync::Arc;
//! use atamo_agents::builtin::{http::HttpAgent, ConfigCredentials, Credential, Secret};
//! use atamo_core::AgentSpec;
//! use serde_json::json;
//!
//! let credentials = ConfigCredentials::new()
//!     .with("shop-api", "alice", Credential::Token(Secret::new("alice-token")));
//! let agent = HttpAgent::from_config(
//!     "shop-api",
//!     &json!({"base_url": "http://127.0.0.1:8080/api", "timeout_ms": 5000}),
//!     Arc::new(credentials),
//! )?;
//! let spec = AgentSpec::new("shop-api", agent).handles(["http.request"]);
//! # let _ = spec;
//! # Ok::<(), atamo_agents::builtin::ConfigProblems>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::message::Action;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::{parse_config, ConfigProblems};
use super::credentials::{Credential, CredentialProvider};

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

/// The default method, when neither the configuration nor the action names one.
pub const DEFAULT_METHOD: &str = "POST";
/// The default request timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// How much of an error response's body an error message quotes, in characters.
const EXCERPT_CHARS: usize = 200;

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
/// [`CredentialProvider`]. `base_url` must be `http` or `https` and may not carry a user name,
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

/// The `http` agent.
///
/// Each call makes one request and answers once (its [`Reply`] payload):
///
/// ```json
/// {"status": 201, "headers": {"content-type": "application/json", "location": "/orders/7"},
///  "body": {"id": 7}}
/// ```
///
/// `headers` holds those that matter to a caller when present: `content-type`, `location`,
/// `etag`, `retry-after`. `body` is the parsed JSON when the response says it is JSON, its text
/// otherwise, and `null` when empty. Gzip responses are decoded. Redirects are not followed (a
/// `3xx` is a successful answer with its `location`), so credentials never travel to another
/// host.
///
/// Failures: `429` and `5xx` are [`AgentError::Retry`] with the server's `Retry-After`
/// (seconds or an HTTP date); any other `4xx` is [`AgentError::Permanent`], quoting the status
/// and the start of the body; connection errors are retryable, and the request timeout is
/// [`AgentError::Timeout`]. A bad action payload is permanent and names its field.
///
/// The credential is looked up for (the agent id given to [`HttpAgent::from_config`], the event's
/// user) on every call. It never appears in errors, answers or logs: any occurrence of it in a
/// response (an echoing server) is replaced by `***`.
#[derive(Clone)]
pub struct HttpAgent {
    inner: Arc<Inner>,
}

struct Inner {
    agent_id: String,
    config: HttpConfig,
    base: Url,
    method: Method,
    headers: HeaderMap,
    timeout: Duration,
    client: reqwest::Client,
    credentials: Arc<dyn CredentialProvider>,
}

impl fmt::Debug for HttpAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAgent")
            .field("agent_id", &self.inner.agent_id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What can be checked beyond the schema, read from the raw configuration so that these
/// problems are named together with the schema's.
struct Checked {
    problems: Vec<String>,
    base: Option<Url>,
    method: Option<Method>,
    headers: HeaderMap,
    roots: Vec<reqwest::Certificate>,
}

fn check_config(config: &Value) -> Checked {
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

fn add_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), String> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    let value = HeaderValue::from_str(value).map_err(|_| "not a valid header value".to_owned())?;
    headers.insert(name, value);
    Ok(())
}

fn parse_schema(text: &str) -> Value {
    // Both schemas are constants checked by a unit test; `Null` would check nothing.
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl HttpAgent {
    /// Builds the agent registered as `agent_id` from its configuration ([`HttpConfig`]),
    /// naming every problem when the configuration is bad. `credentials` gives the credential
    /// of each user the agent acts for.
    pub fn from_config(
        agent_id: &str,
        config: &Value,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, ConfigProblems> {
        let checked = check_config(config);
        let parsed: Result<HttpConfig, ConfigProblems> =
            parse_config(agent_id, KIND, &parse_schema(CONFIG_SCHEMA), config);
        let problems = |mut problems: Vec<String>| ConfigProblems {
            agent: agent_id.to_owned(),
            kind: KIND,
            problems: {
                problems.extend(checked.problems.iter().cloned());
                problems
            },
        };
        let config = match parsed {
            Err(e) => return Err(problems(e.problems)),
            Ok(_) if !checked.problems.is_empty() => return Err(problems(Vec::new())),
            Ok(config) => config,
        };
        let (Some(base), Some(method)) = (checked.base.clone(), checked.method.clone()) else {
            return Err(problems(vec!["field `base_url`: missing".to_owned()]));
        };
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true)
            .danger_accept_invalid_certs(config.tls.accept_invalid_certs);
        for root in checked.roots.iter().cloned() {
            builder = builder.add_root_certificate(root);
        }
        let client = builder
            .build()
            .map_err(|e| problems(vec![format!("the HTTP client cannot be built: {e}")]))?;
        Ok(Self {
            inner: Arc::new(Inner {
                agent_id: agent_id.to_owned(),
                base,
                method,
                headers: checked.headers.clone(),
                timeout,
                client,
                credentials,
                config,
            }),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }
}

#[async_trait]
impl Agent for HttpAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = Arc::clone(&self.inner);
        tokio::select! {
            result = inner.perform(&action) => result,
            _ = ctx.cancelled() => Err(AgentError::Cancelled),
        }
    }
}

/// Replaces every secret the call uses with `***` in text headed for errors, answers or logs.
struct Scrubber(Vec<String>);

impl Scrubber {
    fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    fn value(&self, value: Value) -> Value {
        if self.0.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.value(v)))
                    .collect(),
            ),
            other => other,
        }
    }
}

impl Inner {
    async fn perform(&self, action: &Action) -> Result<Reply, AgentError> {
        let user = action.meta().event.principal.user.as_str();
        let request = parse_action(action.payload())?;
        let method = match &request.method {
            None => self.method.clone(),
            Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| {
                AgentError::permanent(format!(
                    "bad action payload: field `method`: {m:?} is not an HTTP method"
                ))
            })?,
        };
        let url = self.url_for(&request)?;
        let mut headers = self.headers.clone();
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
        let scrub = match self.credentials.credential(&self.agent_id, user) {
            Some(credential) => apply_credential(&mut headers, &credential).map_err(|problem| {
                AgentError::permanent(format!(
                    "the credential of agent `{}` for user `{user}` {problem}",
                    self.agent_id
                ))
            })?,
            None => Scrubber(Vec::new()),
        };
        let target = format!("{method} {}", url.path());
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some(body) = request.body.as_ref().filter(|b| !b.is_null()) {
            builder = builder.json(body);
        }
        tracing::debug!(agent = %self.agent_id, %user, request = %target, "http request");
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(&target, &e, &scrub))?;
        let status = response.status();
        let kept = kept_headers(response.headers());
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_type);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&target, &e, &scrub))?;
        tracing::debug!(agent = %self.agent_id, %user, request = %target, status = status.as_u16(), "http response");
        if status.is_success() || status.is_redirection() {
            let body = scrub.value(body_value(&bytes, is_json));
            return Ok(Reply::with(serde_json::json!({
                "status": status.as_u16(),
                "headers": kept,
                "body": body,
            })));
        }
        let excerpt = scrub.text(&excerpt(&bytes));
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

    fn url_for(&self, request: &HttpAction) -> Result<Url, AgentError> {
        let bad = |field: &str, problem: String| {
            AgentError::permanent(format!("bad action payload: field `{field}`: {problem}"))
        };
        if request.path.is_empty() && request.query.is_empty() {
            return Ok(self.base.clone());
        }
        let base = self.base.as_str().trim_end_matches('/');
        let joined = format!("{base}/{}", request.path.trim_start_matches('/'));
        let mut url = Url::parse(&joined).map_err(|e| {
            bad(
                "path",
                format!("{:?} does not make a URL: {e}", request.path),
            )
        })?;
        let base_path = self.base.path().trim_end_matches('/');
        let inside = url.origin() == self.base.origin()
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

    fn transport_error(
        &self,
        target: &str,
        error: &reqwest::Error,
        scrub: &Scrubber,
    ) -> AgentError {
        if error.is_timeout() {
            tracing::debug!(agent = %self.agent_id, request = %target, "http request timed out");
            return AgentError::Timeout {
                after: self.timeout,
            };
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
        tracing::debug!(agent = %self.agent_id, error = %reason, "http request failed");
        if error.is_builder() || error.is_redirect() {
            AgentError::permanent(reason)
        } else {
            AgentError::retry(reason)
        }
    }
}

fn parse_action(payload: &Value) -> Result<HttpAction, AgentError> {
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

/// Sets the credential's header; returns what must never be shown.
fn apply_credential(headers: &mut HeaderMap, credential: &Credential) -> Result<Scrubber, String> {
    let sensitive = |text: &str| {
        HeaderValue::from_str(text)
            .map(|mut v| {
                v.set_sensitive(true);
                v
            })
            .map_err(|_| "does not make a valid header value".to_owned())
    };
    let mut secrets = Vec::new();
    match credential {
        Credential::Token(token) => {
            secrets.push(token.expose().to_owned());
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose()))?,
            );
        }
        Credential::Password { user, password } => {
            let encoded = base64(format!("{user}:{}", password.expose()).as_bytes());
            secrets.push(password.expose().to_owned());
            secrets.push(encoded.clone());
            headers.insert(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Basic {encoded}"))?,
            );
        }
        Credential::ApiKey { header, key } => {
            let name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("names an invalid header {header:?}"))?;
            secrets.push(key.expose().to_owned());
            headers.insert(name, sensitive(key.expose())?);
        }
    }
    secrets.retain(|s| !s.is_empty());
    Ok(Scrubber(secrets))
}

/// Standard base64 with padding (basic auth).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn query_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The response headers that matter to a caller.
fn kept_headers(headers: &HeaderMap) -> Map<String, Value> {
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

fn is_json_type(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || mime.ends_with("+json")
}

fn body_value(bytes: &[u8], is_json: bool) -> Value {
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

fn excerpt(bytes: &[u8]) -> String {
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

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// How long a `Retry-After` header value asks to wait, measured from `now`: a number of seconds,
/// or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`; a date already past gives zero). `None`
/// when the value is neither.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use atamo_agents::builtin::http::retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37 GMT
/// assert_eq!(retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(60)));
/// assert_eq!(retry_after("soon", now), None);
/// ```
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the Unix epoch of an IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    if !weekday.ends_with(',') {
        return None;
    }
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm), for years from 1970.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_schemas_are_json() {
        assert!(serde_json::from_str::<Value>(CONFIG_SCHEMA)
            .unwrap()
            .is_object());
        assert!(serde_json::from_str::<Value>(ACTION_SCHEMA)
            .unwrap()
            .is_object());
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn http_dates_are_read() {
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            http_date("Fri, 01 Jan 2100 00:00:00 GMT"),
            Some(4_102_444_800)
        );
        assert_eq!(
            http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
        let now = UNIX_EPOCH + Duration::from_secs(784_111_800);
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_type("application/json"));
        assert!(is_json_type("Application/JSON; charset=utf-8"));
        assert!(is_json_type("application/problem+json"));
        assert!(!is_json_type("text/plain"));
    }
}
