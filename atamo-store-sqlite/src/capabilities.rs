//! The store capabilities of [`SqliteStore`]: writes, claims, leases, recoveries, redrives and
//! prunes are commands of the writer thread; reads run on the read connections.

use std::time::Duration;

use atamo_core::async_trait;
use atamo_core::store::{
    ActionQueue, ActionRow, AuditLog, AuditQuery, AuditRecord, BatchWriter, CheckReport, Claimed,
    Cursor, EventLog, EventQuery, EventRecord, Maintenance, NodeId, Page, PruneReport,
    RequestResults, ResultRecord, Retention, StoreError, StoreStats, WriteBatch, WriteOutcome,
};
use atamo_core::{ActionId, EventId, RequestId};

use crate::store::SqliteStore;
use crate::{ops, reads};

#[async_trait]
impl BatchWriter for SqliteStore {
    async fn write(&self, mut batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        // Encoded here, so that the writer thread only binds.
        let audit = ops::encode_audit(std::mem::take(&mut batch.audit))?;
        let bodies = ops::encode_bodies(&batch.accepts)?;
        self.call(move |conn, now| ops::write(conn, batch, &bodies, &audit, now))
            .await
    }
}

#[async_trait]
impl ActionQueue for SqliteStore {
    async fn claim(
        &self,
        node: &NodeId,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let node = node.clone();
        self.call(move |conn, now| ops::claim(conn, &node, limit, lease, now))
            .await
    }

    async fn heartbeat(&self, node: &NodeId, lease: Duration) -> Result<u64, StoreError> {
        let node = node.clone();
        self.call(move |conn, now| ops::heartbeat(conn, &node, lease, now))
            .await
    }

    async fn recover_expired(&self) -> Result<u64, StoreError> {
        self.call(ops::recover_expired).await
    }

    async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
        self.readers.run(move |conn| reads::action(conn, id)).await
    }

    async fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ActionRow>, StoreError> {
        self.readers
            .run(move |conn| reads::dead_letters(conn, cursor, limit))
            .await
    }

    async fn redrive(&self, id: ActionId) -> Result<bool, StoreError> {
        self.call(move |conn, now| ops::redrive(conn, id, now))
            .await
    }
}

#[async_trait]
impl RequestResults for SqliteStore {
    async fn results(&self, request: RequestId) -> Result<Vec<ResultRecord>, StoreError> {
        let now = self.clock.now();
        self.readers
            .run(move |conn| reads::results(conn, request, now))
            .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
        self.readers
            .run(move |conn| reads::audit(conn, &query))
            .await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError> {
        self.readers.run(move |conn| reads::event(conn, id)).await
    }

    async fn events(&self, query: EventQuery) -> Result<Page<EventRecord>, StoreError> {
        self.readers
            .run(move |conn| reads::events(conn, &query))
            .await
    }
}

#[async_trait]
impl Maintenance for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let retention = retention.clone();
        self.call(move |conn, now| ops::prune(conn, &retention, now))
            .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let now = self.clock.now();
        let path = self.path.clone();
        self.readers
            .run(move |conn| {
                let mut stats = reads::stats(conn, now)?;
                stats.size_bytes = Some(reads::size_on_disk(&path));
                Ok(stats)
            })
            .await
    }

    async fn check(&self) -> Result<CheckReport, StoreError> {
        self.readers.run(reads::check).await
    }
}
