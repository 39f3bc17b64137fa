//! What a store can do, as small traits a backend implements one by one, and [`Store`]: all of
//! them, which is what a stateful hub needs.
//!
//! | capability | methods |
//! | --- | --- |
//! | [`BatchWriter`] | `write`: events, settles, results and audit in one transaction |
//! | [`ActionQueue`] | `claim`, `heartbeat`, `recover_expired`, `action`, `dead_letters`, `redrive`, `wake_hint` |
//! | [`RequestResults`] | `results` |
//! | [`AuditLog`] | `audit` |
//! | [`EventLog`] | `event`, `events` |
//! | [`Maintenance`] | `backend`, `prune`, `stats`, `check` |
//!
//! Each async method returns one boxed future (`async-trait`), so the traits stay usable as
//! `dyn` objects: the hub holds an `Arc<dyn Store>` and calls the capabilities' methods on it.
//! Every method reads the time from the backend's [`Clock`](super::Clock).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::batch::{WriteBatch, WriteOutcome};
use super::error::StoreError;
use super::maintenance::{CheckReport, PruneReport, Retention, StoreStats};
use super::query::{AuditQuery, Cursor, EventQuery, Page};
use super::records::{ActionRow, AuditRecord, Claimed, EventRecord, NodeId, ResultRecord};
use crate::ids::{ActionId, EventId, RequestId};

/// Commits write batches, each in one transaction.
#[async_trait]
pub trait BatchWriter: Send + Sync {
    /// Commits a batch in one transaction: events (with dedupe) and their actions, settles
    /// (fenced by attempt), results and audit records. Backends may merge concurrent batches
    /// into one transaction (group commit); each caller still learns its own outcome.
    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError>;
}

/// The action queue: claims under leases fenced by attempt, lease upkeep, lookups and dead
/// letters.
#[async_trait]
pub trait ActionQueue: Send + Sync {
    /// Claims up to `limit` ready actions whose `run_at` has come, oldest first, for `node`
    /// until `now + lease`. Each claim raises the action's attempt by one.
    async fn claim(
        &self,
        node: &NodeId,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Extends every lease `node` holds to at least `now + lease`; returns how many it holds.
    async fn heartbeat(&self, node: &NodeId, lease: Duration) -> Result<u64, StoreError>;

    /// Makes leased actions whose lease has ended ready again; returns how many.
    async fn recover_expired(&self) -> Result<u64, StoreError>;

    /// One action, whatever its state.
    async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError>;

    /// Dead actions, newest first.
    async fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ActionRow>, StoreError>;

    /// Makes a dead action ready again (same id, same attempt count); `false` if it is not dead.
    async fn redrive(&self, id: ActionId) -> Result<bool, StoreError>;

    /// A hint that ready actions may be waiting, for example after another node released or
    /// redrove some (PostgreSQL's LISTEN/NOTIFY). Only a hint: the hub also claims on a timer,
    /// so a missed notification only delays work.
    fn wake_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// The answers of requests, kept until they expire.
#[async_trait]
pub trait RequestResults: Send + Sync {
    /// The unexpired results of a request, in the order they were written.
    async fn results(&self, request: RequestId) -> Result<Vec<ResultRecord>, StoreError>;
}

/// The audit log: every step of every stored message.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Audit entries matching `query`, newest first.
    async fn audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>, StoreError>;
}

/// The event log: stored events, by id or listed.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// A stored event.
    async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError>;

    /// Stored events matching `query`, newest first (by when they were written), a page at a
    /// time. [`StoreError::Invalid`] for a query [`EventQuery::validate`] refuses.
    async fn events(&self, query: EventQuery) -> Result<Page<EventRecord>, StoreError>;
}

/// What operators run: retention, statistics and integrity checks.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// `memory`, `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Deletes expired results and dedupe keys, and audit entries, events and finished
    /// actions older than the retention allows. The definitions registry is never pruned.
    async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError>;

    /// Queue depths and sizes.
    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Checks the store's integrity.
    async fn check(&self) -> Result<CheckReport, StoreError>;

    /// How the store is doing now, cheaply (no I/O): `Failed` when it cannot keep what it is
    /// given (its writer is down, the disk is full, damage was found), `Degraded` when it
    /// works with a problem. The hub's readiness reads it.
    fn condition(&self) -> crate::status::ComponentState {
        crate::status::ComponentState::Ready
    }
}

/// Durable state for a stateful hub: every capability above. See the
/// [module documentation](super) for the model.
///
/// Implemented for every type that has all the capabilities; a backend implements those.
pub trait Store:
    BatchWriter + ActionQueue + RequestResults + AuditLog + EventLog + Maintenance + 'static
{
}

impl<T> Store for T where
    T: BatchWriter + ActionQueue + RequestResults + AuditLog + EventLog + Maintenance + 'static
{
}
