use atamo_core::agent::{Agent, AgentError, CallContext, Reply};
use atamo_core::{async_trait, Action};
use tokio::sync::{mpsc, oneshot};

/// An action handed to application code, with the means to finish it.
///
/// Call [`Delivery::complete`] (or [`Delivery::fail`]) when done; dropping it unanswered fails
/// the action as retryable, so nothing finishes silently.
#[derive(Debug)]
pub struct Delivery {
    /// The action to perform.
    pub action: Action,
    reply: oneshot::Sender<Result<Reply, AgentError>>,
}

impl Delivery {
    /// Reports success.
    pub fn complete(self, reply: Reply) {
        // The hub may have stopped waiting (shutdown); nothing is left to tell.
        let _ = self.reply.send(Ok(reply));
    }

    /// Reports failure.
    pub fn fail(self, error: AgentError) {
        let _ = self.reply.send(Err(error));
    }
}

/// An agent that forwards actions to a receiver your code owns. The channel is bounded: when
/// your code falls behind, calls wait, and the hub's backpressure takes over.
#[derive(Clone, Debug)]
pub struct ChannelAgent {
    tx: mpsc::Sender<Delivery>,
}

impl ChannelAgent {
    /// An agent and the receiver of its deliveries, holding at most `capacity` unread ones.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }
}

#[async_trait]
impl Agent for ChannelAgent {
    async fn call(&self, action: Action, ctx: CallContext) -> Result<Reply, AgentError> {
        let (reply, answer) = oneshot::channel();
        let delivery = Delivery { action, reply };
        tokio::select! {
            sent = self.tx.send(delivery) => {
                sent.map_err(|_| AgentError::retry("the receiving application has gone away"))?;
            }
            _ = ctx.cancelled() => return Err(AgentError::Cancelled),
        }
        tokio::select! {
            r = answer => r.unwrap_or_else(|_| Err(AgentError::retry("the delivery was dropped unanswered"))),
            _ = ctx.cancelled() => Err(AgentError::Cancelled),
        }
    }
}
