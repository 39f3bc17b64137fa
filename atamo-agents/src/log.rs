use atamo_core::agent::{Agent, AgentFuture, CallContext, Reply};
use atamo_core::Action;

/// An agent that writes each action to the `tracing` log at INFO and succeeds. Useful as a
/// first agent and to watch what rules produce.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogAgent;

impl Agent for LogAgent {
    fn call(&self, action: Action, ctx: CallContext) -> AgentFuture {
        tracing::info!(
            agent = %ctx.agent_id(),
            action_id = %action.id(),
            action_type = %action.action_type(),
            user = %action.principal().user,
            payload = %action.payload(),
            "action"
        );
        Box::pin(async { Ok(Reply::done()) })
    }
}
