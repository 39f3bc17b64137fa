//! Every built-in agent kind, and building one by name from its configuration.

use std::sync::Arc;

use super::config::ConfigProblems;
use super::credentials::CredentialProvider;
use super::{command, email, http, sql};

/// The kinds of built-in agent.
pub const KINDS: &[&str] = &["http", "sql", "email", "command"];

/// Builds built-in agent `kind` (`http`, `sql`, `email` or `command`) registered as
/// `agent_id` from its configuration, naming every problem with it.
pub fn build(
    kind: &str,
    agent_id: &str,
    config: &serde_json::Value,
    credentials: Arc<dyn CredentialProvider>,
) -> Result<Arc<dyn atamo_core::Agent>, ConfigProblems> {
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
