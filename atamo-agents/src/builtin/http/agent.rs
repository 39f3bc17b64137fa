//! The `http` agent itself: builds its client from the registration, and performs each call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::message::Action;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

use super::config::{check_config, parse_schema, HttpConfig, CONFIG_SCHEMA, KIND};
use super::request::{self, parse_action};
use super::response::{self, is_json_type, kept_headers};
use super::secrets::{apply_credential, Scrubber};
use crate::builtin::config::{parse_config, ConfigProblems};
use crate::builtin::credentials::CredentialProvider;

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

impl Inner {
    async fn perform(&self, action: &Action) -> Result<Reply, AgentError> {
        let user = action.meta().event.principal.user.as_str();
        let request = parse_action(action.payload())?;
        let method = request::method(&request, &self.method)?;
        let url = request::url_for(&self.base, &request)?;
        let mut headers = request::headers(&self.headers, action, &request)?;
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
        response::outcome(&target, status, kept, &bytes, is_json, &scrub)
    }

    fn transport_error(
        &self,
        target: &str,
        error: &reqwest::Error,
        scrub: &Scrubber,
    ) -> AgentError {
        response::transport_error(&self.agent_id, self.timeout, target, error, scrub)
    }
}
