//! The SQLite store passes the store conformance suite, each case on a file of its own.

#![allow(clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::store::conformance::Open;
use atamo_core::store::{
    ActionRow, AuditQuery, AuditRecord, CheckReport, Claimed, Clock, Cursor, EventQuery,
    EventRecord, NodeId, Page, PruneReport, RegistryEntry, RegistryOutcome, RegistryWrite,
    ResultRecord, Retention, Store, StoreFuture, StoreStats, WriteBatch, WriteOutcome,
};
use atamo_core::{ActionId, EventId, RequestId};
use atamo_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::Value;

/// A store on a file in a temporary folder, removed with the store.
struct OnDisk {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

struct Sqlite;

impl Open for Sqlite {
    fn open(
        &self,
        clock: Arc<dyn Clock>,
    ) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>> {
        Box::pin(async move {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SqliteStore::open(
                dir.path().join("store.db"),
                SqliteOptions::default().clock(clock),
            )
            .await
            .expect("open");
            Arc::new(OnDisk { store, _dir: dir }) as Arc<dyn Store>
        })
    }
}

atamo_core::store_conformance!(Sqlite);

impl Store for OnDisk {
    fn backend(&self) -> &'static str {
        self.store.backend()
    }
    fn write(&self, batch: WriteBatch) -> StoreFuture<'_, WriteOutcome> {
        self.store.write(batch)
    }
    fn claim(&self, node: &NodeId, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<Claimed>> {
        self.store.claim(node, limit, lease)
    }
    fn heartbeat(&self, node: &NodeId, lease: Duration) -> StoreFuture<'_, u64> {
        self.store.heartbeat(node, lease)
    }
    fn recover_expired(&self) -> StoreFuture<'_, u64> {
        self.store.recover_expired()
    }
    fn action(&self, id: ActionId) -> StoreFuture<'_, Option<ActionRow>> {
        self.store.action(id)
    }
    fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StoreFuture<'_, Page<ActionRow>> {
        self.store.dead_letters(cursor, limit)
    }
    fn redrive(&self, id: ActionId) -> StoreFuture<'_, bool> {
        self.store.redrive(id)
    }
    fn results(&self, request: RequestId) -> StoreFuture<'_, Vec<ResultRecord>> {
        self.store.results(request)
    }
    fn event(&self, id: EventId) -> StoreFuture<'_, Option<EventRecord>> {
        self.store.event(id)
    }
    fn audit(&self, query: AuditQuery) -> StoreFuture<'_, Page<AuditRecord>> {
        self.store.audit(query)
    }
    fn events(&self, query: EventQuery) -> StoreFuture<'_, Page<EventRecord>> {
        self.store.events(query)
    }
    fn registry_get(&self, kind: &str, id: &str) -> StoreFuture<'_, Option<RegistryEntry>> {
        self.store.registry_get(kind, id)
    }
    fn registry_list(&self, kind: &str) -> StoreFuture<'_, Vec<RegistryEntry>> {
        self.store.registry_list(kind)
    }
    fn registry_put(
        &self,
        kind: &str,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, RegistryOutcome> {
        self.store.registry_put(kind, id, body, mode, audit)
    }
    fn registry_delete(
        &self,
        kind: &str,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, bool> {
        self.store.registry_delete(kind, id, audit)
    }
    fn prune(&self, retention: &Retention) -> StoreFuture<'_, PruneReport> {
        self.store.prune(retention)
    }
    fn stats(&self) -> StoreFuture<'_, StoreStats> {
        self.store.stats()
    }
    fn check(&self) -> StoreFuture<'_, CheckReport> {
        self.store.check()
    }
}
