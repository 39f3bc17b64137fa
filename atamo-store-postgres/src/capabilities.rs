//! The store capabilities of [`PostgresStore`]: writes go to the writer task (group commit);
//! everything else runs on a pooled connection.

use std::sync::Arc;
use std::time::Duration;

use atamo_core::async_trait;
use atamo_core::ids::{ActionId, EventId, RequestId};
use atamo_core::store::{
    ActionQueue, ActionRow, AuditLog, AuditQuery, AuditRecord, BatchWriter, CheckReport, Claimed,
    Cursor, EventLog, EventQuery, EventRecord, Maintenance, NodeId, Page, PruneReport,
    RequestResults, ResultRecord, Retention, StoreError, StoreStats, WriteBatch, WriteOutcome,
};
use tokio::sync::Notify;

use crate::ops;
use crate::store::PostgresStore;

#[async_trait]
impl BatchWriter for PostgresStore {
    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        self.write_batch(batch).await
    }
}

#[async_trait]
impl ActionQueue for PostgresStore {
    async fn claim(
        &self,
        node: &NodeId,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        ops::claim(&self.inner, node, limit, lease).await
    }

    async fn heartbeat(&self, node: &NodeId, lease: Duration) -> Result<u64, StoreError> {
        ops::heartbeat(&self.inner, node, lease).await
    }

    async fn recover_expired(&self) -> Result<u64, StoreError> {
        ops::recover_expired(&self.inner).await
    }

    async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
        ops::action(&self.inner, id).await
    }

    async fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ActionRow>, StoreError> {
        ops::dead_letters(&self.inner, cursor, limit).await
    }

    async fn redrive(&self, id: ActionId) -> Result<bool, StoreError> {
        ops::redrive(&self.inner, id).await
    }

    fn wake_hint(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }
}

#[async_trait]
impl RequestResults for PostgresStore {
    async fn results(&self, request: RequestId) -> Result<Vec<ResultRecord>, StoreError> {
        ops::results(&self.inner, request).await
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
        ops::audit(&self.inner, &query).await
    }
}

#[async_trait]
impl EventLog for PostgresStore {
    async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError> {
        ops::event(&self.inner, id).await
    }

    async fn events(&self, query: EventQuery) -> Result<Page<EventRecord>, StoreError> {
        ops::events(&self.inner, &query).await
    }
}

#[async_trait]
impl Maintenance for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        ops::prune(&self.inner, retention).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        ops::stats(&self.inner).await
    }

    async fn check(&self) -> Result<CheckReport, StoreError> {
        ops::check(&self.inner).await
    }
}
