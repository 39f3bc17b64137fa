//! Built-in generic agents: most users point one of these at what they already have instead of
//! writing an agent.
//!
//! - [`http`]: calls a REST endpoint.
//! - [`sql`]: runs a PostgreSQL function or procedure, or a named SQLite statement.
//! - [`email`]: sends mail over SMTP.
//! - [`command`]: runs a program (no shell).
//!
//! Each agent's registration metadata is a serde struct with unknown fields refused; it is
//! checked when the agent is built, and every problem is named ([`ConfigProblems`]). The
//! action's payload gives the details (a rule's template fills them from the event). Agents act
//! on behalf of the event's user: [`credentials`] gives them that user's token or password.

pub mod command;
pub mod credentials;
pub mod email;
pub mod http;
pub mod sql;

mod config;

pub use config::{parse_config, ConfigProblems};
pub use credentials::{ConfigCredentials, Credential, CredentialProvider, NoCredentials, Secret};

/// The kinds of built-in agent.
pub const KINDS: &[&str] = &["http", "sql", "email", "command"];

/// Builds built-in agent `kind` (`http`, `sql`, `email` or `command`) registered as
/// `agent_id` from its configuration, naming every problem with it.
pub fn build(
    kind: &str,
    agent_id: &str,
    config: &serde_json::Value,
    credentials: std::sync::Arc<dyn CredentialProvider>,
) -> Result<std::sync::Arc<dyn atamo_core::Agent>, ConfigProblems> {
    use std::sync::Arc;
    Ok(match kind {
        "http" => Arc::new(http::HttpAgent::from_config(agent_id, config, credentials)?),
        "sql" => Arc::new(sql::SqlAgent::from_config(agent_id, config, credentials)?),
        "email" => Arc::new(email::EmailAgent::from_config(
            agent_id,
            config,
            credentials,
        )?),
        "command" => Arc::new(command::CommandAgent::from_config(agent_id, config)?),
        other => {
            return Err(ConfigProblems {
                agent: agent_id.to_owned(),
                kind: "builtin",
                problems: vec![format!(
                    "no built-in agent kind `{other}`; the kinds are {}",
                    KINDS.join(", ")
                )],
            })
        }
    })
}
