//! The `sql` agent itself: its backend, chosen by the registration, and each call.

use std::sync::Arc;

use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::async_trait;
use atamo_core::message::Action;
use serde_json::{json, Value};

use super::action::SqlAction;
use super::config::{schema, semantic_problems, SqlConfig, KIND};
use super::sink::RowSink;
use super::{postgres, sqlite};
use crate::builtin::config::{parse_config, ConfigProblems};
use crate::builtin::credentials::{Credential, CredentialProvider};

/// The `sql` agent. Build it with [`SqlAgent::from_config`] and register it like any agent.
///
/// Each call opens its own connection (a SQLite file handle on a blocking thread, or a
/// PostgreSQL connection), so a slow reader of one feed never holds up another call.
#[derive(Clone)]
pub struct SqlAgent {
    inner: Arc<Inner>,
}

struct Inner {
    agent_id: String,
    backend: Backend,
    credentials: Arc<dyn CredentialProvider>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(Box<postgres::Postgres>),
}

impl std::fmt::Debug for SqlAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        };
        f.debug_struct("SqlAgent")
            .field("agent_id", &self.inner.agent_id)
            .field("backend", &kind)
            .finish_non_exhaustive()
    }
}

impl SqlAgent {
    /// Builds the agent registered as `agent_id` from its configuration (see [`SqlConfig`]).
    /// Every problem is named: fields of the wrong type or unknown, neither or both of
    /// `sqlite` and `postgres`, a routine name that is not `[schema.]name`, a connection
    /// string that does not parse, no statements.
    pub fn from_config(
        agent_id: &str,
        config: &Value,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, ConfigProblems> {
        let extra = semantic_problems(config);
        if !extra.is_empty() {
            let mut problems = crate::schema::check(config, schema());
            problems.extend(extra);
            return Err(ConfigProblems {
                agent: agent_id.to_owned(),
                kind: KIND,
                problems,
            });
        }
        let parsed: SqlConfig = parse_config(agent_id, KIND, schema(), config)?;
        Self::new(agent_id, parsed, credentials).map_err(|problem| ConfigProblems {
            agent: agent_id.to_owned(),
            kind: KIND,
            problems: vec![problem],
        })
    }

    /// Builds the agent from an already parsed configuration.
    pub fn new(
        agent_id: &str,
        config: SqlConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self, String> {
        let backend = match config {
            SqlConfig::Sqlite(c) => Backend::Sqlite(sqlite::Sqlite::new(c)),
            SqlConfig::Postgres(c) => Backend::Postgres(Box::new(postgres::Postgres::new(c)?)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                agent_id: agent_id.to_owned(),
                backend,
                credentials,
            }),
        })
    }
}

#[async_trait]
impl Agent for SqlAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let inner = self.inner.clone();
        let request = SqlAction::from_payload(action.payload())?;
        let mut sink = RowSink::new(&ctx);
        let work = async {
            match &inner.backend {
                Backend::Sqlite(db) => db.run(request, &mut sink).await,
                Backend::Postgres(db) => {
                    let user = action.meta().event.principal.user.as_str();
                    let login = match inner.credentials.credential(&inner.agent_id, user) {
                        None => None,
                        Some(Credential::Password { user, password }) => Some((user, password)),
                        Some(_) => {
                            return Err(AgentError::permanent(format!(
                                "sql agent `{}`: the credential for user `{user}` is not a \
                                 password (a database login needs a user and password)",
                                inner.agent_id
                            )))
                        }
                    };
                    db.run(request, login, &mut sink).await
                }
            }
        };
        tokio::select! {
            r = work => r?,
            _ = ctx.cancelled() => return Err(AgentError::Cancelled),
        }
        Ok(Reply::with(json!({"rows": sink.rows})))
    }
}
