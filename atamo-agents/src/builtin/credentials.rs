//! Credentials an agent uses on behalf of the user it acts for.
//!
//! An agent asks a [`CredentialProvider`] for the credential of (agent, user) at call time:
//! the HTTP agent sends alice's token for alice's events and bob's for bob's; the email agent
//! logs in to its server with the password configured for it. [`ConfigCredentials`] is the
//! configuration-backed provider; applications with a vault implement the trait.
//!
//! Secrets are [`Secret`]s: their `Debug` and `Display` print `***`, so they cannot reach logs
//! or telemetry by accident.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string. Printing it, in `Debug` or `Display`, shows `***`; read it with
/// [`Secret::expose`] at the moment it is sent.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// One credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// A bearer token (HTTP `Authorization: Bearer ...`).
    Token(Secret),
    /// A user name and password (SMTP login, HTTP basic auth, a database).
    Password {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// An API key sent in a header.
    ApiKey {
        /// The header, such as `X-Api-Key`.
        header: String,
        /// The key.
        key: Secret,
    },
}

/// Gives agents the credentials of the users they act for.
pub trait CredentialProvider: Send + Sync + 'static {
    /// The credential agent `agent` uses for `user`, if there is one.
    fn credential(&self, agent: &str, user: &str) -> Option<Credential>;
}

/// No credentials at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCredentials;

impl CredentialProvider for NoCredentials {
    fn credential(&self, _agent: &str, _user: &str) -> Option<Credential> {
        None
    }
}

/// Credentials from configuration: per agent, per user, with `"*"` as the agent's credential
/// for any user not listed.
///
/// ```
/// use atamo_agents::builtin::{ConfigCredentials, Credential, CredentialProvider};
///
/// let creds: ConfigCredentials = serde_json::from_value(serde_json::json!({
///     "crm": {
///         "alice": {"token": "alice-token"},
///         "bob": {"token": "bob-token"}
///     },
///     "mailer": {"*": {"password": {"user": "hub", "password": "s3cret"}}}
/// }))?;
/// assert!(matches!(creds.credential("crm", "bob"), Some(Credential::Token(t)) if t.expose() == "bob-token"));
/// assert!(creds.credential("crm", "carol").is_none());
/// assert!(matches!(creds.credential("mailer", "carol"), Some(Credential::Password { .. })));
/// assert_eq!(format!("{:?}", creds.credential("crm", "alice")), "Some(Token(***))");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ConfigCredentials {
    by_agent: HashMap<String, HashMap<String, Credential>>,
}

impl ConfigCredentials {
    /// No credentials yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `agent`'s credential for `user` (`"*"` for any user).
    #[must_use]
    pub fn with(mut self, agent: &str, user: &str, credential: Credential) -> Self {
        self.by_agent
            .entry(agent.to_owned())
            .or_default()
            .insert(user.to_owned(), credential);
        self
    }
}

impl CredentialProvider for ConfigCredentials {
    fn credential(&self, agent: &str, user: &str) -> Option<Credential> {
        let users = self.by_agent.get(agent)?;
        users.get(user).or_else(|| users.get("*")).cloned()
    }
}
