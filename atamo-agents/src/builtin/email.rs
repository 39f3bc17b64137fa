//! The built-in `email` agent: sends mail over SMTP with [`lettre`].
//!
//! The registration says where the mail goes out ([`EmailConfig`]: server, port, TLS mode,
//! sender); the action says what is sent ([`EmailAgent`] documents the payload). A rule's
//! template fills the action from the event:
//!
//! ```
//! use std::sync::Arc;
//! use atamo_agents::builtin::{email::EmailAgent, NoCredentials};
//! use atamo_config::Rule;
//! use atamo_core::AgentSpec;
//! use serde_json::json;
//!
//! let config = json!({"host": "smtp.example.com", "sender": "Atamo <hub@example.com>"});
//! let mailer = EmailAgent::from_config("mailer", &config, Arc::new(NoCredentials))?;
//! let spec = AgentSpec::new("mailer", mailer).handles(["email.send"]).metadata(config);
//! let rule = Rule::new("confirm", "order.created", "mailer", "email.send", json!({
//!     "to": "{{payload.customer.email}}",
//!     "subject": "Order {{payload.order.id}} confirmed",
//!     "body": "Hello {{payload.customer.name}}, your order is on its way."
//! }));
//! # let _ = (spec, rule);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Failures: an invalid address or a missing field is permanent (the error names the field); a
//! connection that fails or times out, and an SMTP `4xx` reply, are retryable; an SMTP `5xx`
//! reply is permanent. The SMTP password never appears in logs, errors or answers.

use std::sync::Arc;
use std::time::Duration;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::Action;
use lettre::message::{header::ContentType, Mailbox, Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{parse_config, ConfigProblems, Credential, CredentialProvider};

/// The JSON schema of [`EmailConfig`], checked at registration.
pub const CONFIG_SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "tls": {"type": "string", "enum": ["none", "starttls", "tls"]},
    "sender": {"type": "string", "minLength": 3},
    "timeout_ms": {"type": "integer", "minimum": 1},
    "login": {"type": "boolean"}
  },
  "required": ["host", "sender"],
  "additionalProperties": false
}"#;

/// How long an SMTP exchange may take when the configuration does not say.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// The registration of an `email` agent: where mail goes out, and as whom.
///
/// ```json
/// {"host": "smtp.example.com", "port": 587, "tls": "starttls",
///  "sender": "Atamo <hub@example.com>", "timeout_ms": 10000, "login": true}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name (also the name its TLS certificate is checked against).
    pub host: String,
    /// Its port; by default 25 with `tls: "none"`, 587 with `"starttls"`, 465 with `"tls"`.
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is secured (default `starttls`).
    #[serde(default)]
    pub tls: TlsMode,
    /// Who the mail is from, as a mailbox: `"Atamo <hub@example.com>"` or `"hub@example.com"`.
    /// The `From` header and the envelope sender; an action cannot change it.
    pub sender: String,
    /// The longest one send may take, connection included (default 30 000 ms); then the call
    /// fails as a (retryable) timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Whether to log in (SMTP AUTH) with the credential the credential provider gives for
    /// (this agent, the event's user), or else for (this agent, `"*"`); it must be a
    /// [`Credential::Password`]. Default `false`.
    #[serde(default)]
    pub login: bool,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (a relay on the same machine, or a test server).
    None,
    /// Plain text upgraded with `STARTTLS`, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl TlsMode {
    fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// An agent that sends one mail per action, over SMTP, as the configured sender.
///
/// The action payload (every field but `to`, `subject` and `body` optional; unknown fields are
/// refused, so an action cannot set the sender):
///
/// ```json
/// {
///   "to": "carol@example.com",
///   "cc": ["Dave <dave@example.com>", "erin@example.com"],
///   "bcc": "audit@example.com",
///   "subject": "Order 42 confirmed",
///   "body": "Hello Carol,\nyour order is on its way.",
///   "html": "<p>Hello Carol,<br>your order is on its way.</p>"
/// }
/// ```
///
/// `to`, `cc` and `bcc` each take one address, a comma-separated list, or an array of
/// addresses (`"Name <a@b.c>"` or `"a@b.c"`). `body` is the plain-text part; with `html` the
/// mail is `multipart/alternative`. The `Message-ID` is made from the action id, so a retried
/// action sends the same one.
///
/// The reply (and the answer, for a request):
///
/// ```json
/// {"accepted": ["carol@example.com", "dave@example.com", "erin@example.com", "audit@example.com"],
///  "message_id": "<01J...@example.com>"}
/// ```
#[derive(Clone)]
pub struct EmailAgent {
    inner: Arc<Inner>,
}

struct Inner {
    agent_id: String,
    config: EmailConfig,
    sender: Mailbox,
    port: u16,
    tls: Tls,
    credentials: Arc<dyn CredentialProvider>,
}

impl std::fmt::Debug for EmailAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailAgent")
            .field("agent_id", &self.inner.agent_id)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl EmailAgent {
    /// Builds the agent registered as `agent_id` from its configuration ([`EmailConfig`]),
    /// naming every problem with it. `credentials` gives the SMTP login when `login` is on.
    pub fn from_config(
        agent_id: &str,
        config: &Value,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, ConfigProblems> {
        let problems = |problems: Vec<String>| ConfigProblems {
            agent: agent_id.to_owned(),
            kind: "email",
            problems,
        };
        let schema: Value = serde_json::from_str(CONFIG_SCHEMA)
            .map_err(|e| problems(vec![format!("internal: bad schema: {e}")]))?;
        // The schema and the sender's syntax, together, so that every problem is named at once.
        let mut found = crate::schema::check(config, &schema);
        if let Some(sender) = config.get("sender").and_then(Value::as_str) {
            if let Err(e) = sender.parse::<Mailbox>() {
                found.push(format!(
                    "field `sender`: `{sender}` is not a mailbox ({e}); write `Name <user@domain>` or `user@domain`"
                ));
            }
        }
        if !found.is_empty() {
            return Err(problems(found));
        }
        let config: EmailConfig = parse_config(agent_id, "email", &schema, config)?;
        let sender: Mailbox = config
            .sender
            .parse()
            .map_err(|e| problems(vec![format!("field `sender`: {e}")]))?;
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls | TlsMode::Tls => {
                let params = TlsParameters::new(config.host.clone())
                    .map_err(|e| problems(vec![format!("field `tls`: {e}")]))?;
                if config.tls == TlsMode::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                agent_id: agent_id.to_owned(),
                port: config.port.unwrap_or(config.tls.default_port()),
                sender,
                tls,
                config,
                credentials,
            }),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &EmailConfig {
        &self.inner.config
    }
}

#[async_trait]
impl Agent for EmailAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        let limit = Duration::from_millis(inner.config.timeout_ms);
        tokio::select! {
            sent = tokio::time::timeout(limit, inner.send(&action)) => match sent {
                Ok(result) => result,
                Err(_) => Err(AgentError::Timeout { after: limit }),
            },
            _ = ctx.cancelled() => Err(AgentError::Cancelled),
        }
    }
}

/// A parsed action.
struct Mail {
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    subject: String,
    body: String,
    html: Option<String>,
}

impl Inner {
    async fn send(&self, action: &Action) -> Result<Reply, AgentError> {
        let mail = parse_action(action.payload()).map_err(|problems| {
            AgentError::permanent(format!("bad email action: {}", problems.join("; ")))
        })?;
        let message_id = format!("<{}@{}>", action.id(), self.sender.email.domain());
        let message = self.message(mail, &message_id)?;
        let accepted: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();

        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.config.host.as_str())
                .port(self.port)
                .tls(self.tls.clone())
                .timeout(Some(Duration::from_millis(self.config.timeout_ms)));
        let mut password = None;
        if self.config.login {
            let user = action.principal().user.as_str();
            let (login, secret) = self.login_for(user)?;
            password = Some(secret.clone());
            builder = builder.credentials(Credentials::new(login, secret));
        }
        let transport = builder.build();
        match transport.send(message).await {
            Ok(_) => {
                tracing::debug!(
                    agent = %self.agent_id,
                    action_id = %action.id(),
                    recipients = accepted.len(),
                    "mail sent"
                );
                Ok(Reply::with(
                    json!({"accepted": accepted, "message_id": message_id}),
                ))
            }
            Err(e) => Err(classify(&e, password.as_deref())),
        }
    }

    /// The SMTP login for `user`: the credential for (agent, user), else for (agent, "*").
    fn login_for(&self, user: &str) -> Result<(String, String), AgentError> {
        let credential = self
            .credentials
            .credential(&self.agent_id, user)
            .or_else(|| self.credentials.credential(&self.agent_id, "*"));
        match credential {
            Some(Credential::Password { user, password }) => {
                Ok((user, password.expose().to_owned()))
            }
            Some(_) => Err(AgentError::permanent(format!(
                "agent `{}` logs in to its SMTP server, but its credential for user `{user}` is not a password",
                self.agent_id
            ))),
            None => Err(AgentError::permanent(format!(
                "agent `{}` logs in to its SMTP server, but has no credential for user `{user}` (nor for `*`)",
                self.agent_id
            ))),
        }
    }

    fn message(&self, mail: Mail, message_id: &str) -> Result<Message, AgentError> {
        let mut builder = Message::builder()
            .from(self.sender.clone())
            .message_id(Some(message_id.to_owned()))
            .subject(mail.subject);
        for m in mail.to {
            builder = builder.to(m);
        }
        for m in mail.cc {
            builder = builder.cc(m);
        }
        for m in mail.bcc {
            builder = builder.bcc(m);
        }
        let built = match mail.html {
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body),
            ),
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.body, html)),
        };
        built.map_err(|e| AgentError::permanent(format!("cannot build the mail: {e}")))
    }
}

/// Reads the action payload, naming every problem by its field.
fn parse_action(payload: &Value) -> Result<Mail, Vec<String>> {
    let Some(fields) = payload.as_object() else {
        return Err(vec![format!(
            "the payload must be an object with `to`, `subject` and `body`, got {payload}"
        )]);
    };
    let mut problems = Vec::new();
    for key in fields.keys() {
        if !matches!(
            key.as_str(),
            "to" | "cc" | "bcc" | "subject" | "body" | "html"
        ) {
            problems.push(format!(
                "field `{key}`: unknown (expected to, cc, bcc, subject, body, html; the sender is the agent's)"
            ));
        }
    }
    let to = addresses(fields, "to", true, &mut problems);
    let cc = addresses(fields, "cc", false, &mut problems);
    let bcc = addresses(fields, "bcc", false, &mut problems);
    let subject = text(fields, "subject", true, &mut problems);
    let body = text(fields, "body", true, &mut problems);
    let html = text(fields, "html", false, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Mail {
        to,
        cc,
        bcc,
        subject: subject.unwrap_or_default(),
        body: body.unwrap_or_default(),
        html,
    })
}

fn text(
    fields: &Map<String, Value>,
    name: &str,
    required: bool,
    problems: &mut Vec<String>,
) -> Option<String> {
    match fields.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) if !required => None,
        None => {
            problems.push(format!("field `{name}`: missing"));
            None
        }
        Some(other) => {
            problems.push(format!("field `{name}`: expected a string, got {other}"));
            None
        }
    }
}

fn addresses(
    fields: &Map<String, Value>,
    name: &str,
    required: bool,
    problems: &mut Vec<String>,
) -> Vec<Mailbox> {
    let mut out = Vec::new();
    let mut one =
        |field: String, s: &str, problems: &mut Vec<String>| match s.trim().parse::<Mailboxes>() {
            Ok(list) if list.iter().next().is_some() => out.extend(list),
            _ => problems.push(format!("field `{field}`: `{s}` is not an email address")),
        };
    match fields.get(name) {
        None | Some(Value::Null) => {
            if required {
                problems.push(format!("field `{name}`: missing"));
            }
        }
        Some(Value::String(s)) => one(name.to_owned(), s, problems),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => one(format!("{name}[{i}]"), s, problems),
                    other => problems.push(format!(
                        "field `{name}[{i}]`: expected an address, got {other}"
                    )),
                }
            }
            if required && items.is_empty() {
                problems.push(format!("field `{name}`: no address"));
            }
        }
        Some(other) => problems.push(format!(
            "field `{name}`: expected an address or a list of addresses, got {other}"
        )),
    }
    out
}

/// Decides whether a failed send may succeed later: SMTP `4xx`, connection, TLS and network
/// failures may; SMTP `5xx` and problems on our side may not. The password, if it shows up in
/// the server's words, is masked.
fn classify(e: &lettre::transport::smtp::Error, password: Option<&str>) -> AgentError {
    let mut text = e.to_string();
    if let Some(p) = password.filter(|p| !p.is_empty()) {
        text = text.replace(p, "***");
    }
    if e.is_permanent() {
        AgentError::permanent(format!("SMTP server refused: {text}"))
    } else if e.is_transient() {
        AgentError::retry(format!("SMTP server deferred: {text}"))
    } else if e.is_client() {
        AgentError::permanent(format!("cannot send this mail: {text}"))
    } else {
        AgentError::retry(format!("SMTP connection failed: {text}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::builtin::NoCredentials;

    #[test]
    fn tls_modes_build_and_pick_their_port() {
        for (mode, port) in [("none", 25), ("starttls", 587), ("tls", 465)] {
            let agent = EmailAgent::from_config(
                "mailer",
                &json!({"host": "smtp.example.com", "tls": mode, "sender": "hub@example.com"}),
                Arc::new(NoCredentials),
            )
            .unwrap();
            assert_eq!(agent.inner.port, port, "{mode}");
        }
    }

    #[test]
    fn an_action_names_every_bad_field() {
        let e = parse_action(
            &json!({"to": ["ok@example.com", "nope", 3], "cc": "also bad",
            "body": 1, "from": "x@y.z"}),
        )
        .err()
        .unwrap()
        .join("\n");
        for needle in [
            "`to[1]`",
            "`to[2]`",
            "`cc`",
            "`subject`: missing",
            "`body`",
            "`from`",
        ] {
            assert!(e.contains(needle), "{needle} not in {e}");
        }
    }
}
