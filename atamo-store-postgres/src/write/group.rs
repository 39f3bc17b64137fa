//! The writer task: merges queued batches into groups and commits each, answering every
//! caller with its own outcome.

use std::sync::Arc;

use atamo_core::store::{StoreError, WriteBatch, WriteOutcome};
use tokio::sync::{mpsc, oneshot};

use super::commit::commit;
use crate::error::retrying;
use crate::shared::Inner;

/// A `write` call waiting for the writer.
pub(crate) struct Job {
    pub(crate) batch: WriteBatch,
    pub(crate) reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// How many items a batch counts for the merge limit.
fn items(b: &WriteBatch) -> usize {
    let actions: usize = b.accepts.iter().map(|a| a.actions.len()).sum();
    (b.accepts.len() + actions + b.settles.len() + b.results.len() + b.audit.len()).max(1)
}

/// The writer task: merges queued batches and commits them, until the store is dropped.
pub(crate) async fn writer(inner: Arc<Inner>, mut rx: mpsc::Receiver<Job>) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut size = items(&first.batch);
        let mut group = vec![first];
        while size < inner.max_batch_items {
            match rx.try_recv() {
                Ok(job) => {
                    let n = items(&job.batch);
                    if size + n > inner.max_batch_items {
                        held = Some(job);
                        break;
                    }
                    size += n;
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        commit_group(&inner, group).await;
    }
}

/// Commits a group and answers its callers. When a merged group fails for a reason other than
/// the database being unavailable, each batch is tried alone, so one bad batch fails only its
/// own caller.
async fn commit_group(inner: &Inner, group: Vec<Job>) {
    let batches: Vec<&WriteBatch> = group.iter().map(|j| &j.batch).collect();
    let result = retrying("write", || commit(inner, &batches)).await;
    drop(batches);
    match result {
        Ok(outcomes) => {
            for (job, outcome) in group.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        Err(e) if group.len() > 1 && !matches!(e, StoreError::Unavailable { .. }) => {
            tracing::debug!(error = %e, batches = group.len(), "merged write failed; writing its batches one by one");
            for job in group {
                let one = [&job.batch];
                let result = retrying("write", || commit(inner, &one))
                    .await
                    .map(|mut v| v.pop().unwrap_or_default());
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            for job in group {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}
