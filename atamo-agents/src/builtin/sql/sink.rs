//! Rows sent as answers, as they are read.

use atamo_core::agent::{AgentError, CallContext};
use atamo_core::request::AnswerError;
use serde_json::Value;

/// Sends rows as answers and counts them.
pub(super) struct RowSink<'a> {
    ctx: &'a CallContext,
    answering: bool,
    pub(super) rows: u64,
}

impl<'a> RowSink<'a> {
    pub(super) fn new(ctx: &'a CallContext) -> Self {
        Self {
            ctx,
            answering: true,
            rows: 0,
        }
    }

    /// Sends one row; fails with `Cancelled` once the request has ended.
    pub(super) async fn row(&mut self, row: Value) -> Result<(), AgentError> {
        self.rows += 1;
        if !self.answering {
            return Ok(());
        }
        match self.ctx.answer(row).await {
            Ok(()) => Ok(()),
            Err(AnswerError::NotARequest) => {
                self.answering = false;
                Ok(())
            }
            Err(_) => Err(AgentError::Cancelled),
        }
    }
}
