//! Reading a built-in agent's configuration, naming every problem.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Everything wrong with an agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent `{agent}` ({kind}): bad configuration: {}", .problems.join("; "))]
pub struct ConfigProblems {
    /// The agent's id.
    pub agent: String,
    /// Its kind (`http`, `sql`, `email`, `command`).
    pub kind: &'static str,
    /// Each problem, naming its field.
    pub problems: Vec<String>,
}

/// Checks `config` against `schema` (every problem, each naming its field; see
/// [`crate::schema`]), then deserializes it. A problem the schema does not catch is reported by
/// serde, naming the field too.
pub fn parse_config<T: DeserializeOwned>(
    agent: &str,
    kind: &'static str,
    schema: &Value,
    config: &Value,
) -> Result<T, ConfigProblems> {
    let problems = crate::schema::check(config, schema);
    if !problems.is_empty() {
        return Err(ConfigProblems {
            agent: agent.to_owned(),
            kind,
            problems,
        });
    }
    serde_json::from_value(config.clone()).map_err(|e| ConfigProblems {
        agent: agent.to_owned(),
        kind,
        problems: vec![e.to_string()],
    })
}
