//! The handle a plugin agent's call receives: answers with credits, and cancellation.

use std::sync::Arc;

use atamo_plugin_protocol::CallError;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What a call sends back to the host.
#[derive(Debug)]
pub(crate) enum Emit {
    Data(Value),
    EndOk(Option<Value>),
    EndErr(CallError),
}

/// Where a call's emissions go: the host's `emit` callback, or a process agent's stdout.
pub(crate) type Sink = Arc<dyn Fn(u64, Emit) + Send + Sync>;

/// One running call: send answers with [`Call::emit`], watch for cancellation.
#[derive(Clone)]
pub struct Call {
    shared: Arc<Shared>,
}

struct Shared {
    key: u64,
    credits: Semaphore,
    cancel: CancellationToken,
    sink: Sink,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("key", &self.shared.key)
            .field("credits", &self.shared.credits.available_permits())
            .field("cancelled", &self.shared.cancel.is_cancelled())
            .finish()
    }
}

impl Call {
    pub(crate) fn new(key: u64, credits: u32, sink: Sink) -> Self {
        Self {
            shared: Arc::new(Shared {
                key,
                credits: Semaphore::new(credits as usize),
                cancel: CancellationToken::new(),
                sink,
            }),
        }
    }

    /// Sends one answer. Waits while the host has granted no credit (the client is slower than
    /// the agent); fails with [`CallError::Cancelled`] if the call is cancelled meanwhile.
    pub async fn emit(&self, answer: impl Serialize) -> Result<(), CallError> {
        let value = serde_json::to_value(answer)
            .map_err(|e| CallError::permanent(format!("answer is not JSON: {e}")))?;
        tokio::select! {
            biased;
            _ = self.shared.cancel.cancelled() => return Err(CallError::Cancelled),
            permit = self.shared.credits.acquire() => match permit {
                Ok(permit) => permit.forget(),
                Err(_) => return Err(CallError::Cancelled),
            },
        }
        (self.shared.sink)(self.shared.key, Emit::Data(value));
        Ok(())
    }

    /// Whether the host asked the call to stop.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    /// Completes when the host asks the call to stop.
    pub async fn cancelled(&self) {
        self.shared.cancel.cancelled().await;
    }

    /// The credits left: how many answers may be sent before waiting.
    pub fn credits(&self) -> usize {
        self.shared.credits.available_permits()
    }

    pub(crate) fn grant(&self, credits: u32) {
        self.shared.credits.add_permits(credits as usize);
    }

    pub(crate) fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    pub(crate) fn finish(&self, end: Emit) {
        (self.shared.sink)(self.shared.key, end);
    }
}
