use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::{async_trait, Action};

/// An agent that writes each action to the `tracing` log at INFO and succeeds. Useful as a
/// first agent and to watch what rules produce.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogAgent;

#[async_trait]
impl Agent for LogAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        tracing::info!(
            agent = %ctx.agent_id(),
            action_id = %action.id(),
            action_type = %action.action_type(),
            user = %action.principal().user,
            payload = %action.payload(),
            "action"
        );
        Ok(Reply::done())
    }
}
