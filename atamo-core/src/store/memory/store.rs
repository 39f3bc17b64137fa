//! [`MemoryStore`] and its store capabilities.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::state::Inner;
use crate::ids::{ActionId, EventId, RequestId, TenantId};
use crate::message::Timestamp;
use crate::store::batch::{WriteBatch, WriteOutcome};
use crate::store::capabilities::{
    ActionQueue, AuditLog, BatchWriter, EventLog, Maintenance, RequestResults,
};
use crate::store::clock::{earlier, later, Clock, SystemClock};
use crate::store::error::StoreError;
use crate::store::maintenance::{CheckReport, PruneReport, Retention, StoreStats};
use crate::store::query::{page_size, AuditQuery, Cursor, EventQuery, Page};
use crate::store::records::{
    ActionRow, ActionState, AuditRecord, Claimed, EventRecord, NodeId, ResultRecord,
};

/// The store model held in memory: what a stateful hub does, minus surviving a restart.
///
/// Useful for tests and for a hub that wants dedupe, leases and a queryable audit log without a
/// disk.
pub struct MemoryStore {
    pub(super) clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store reading the time from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner {
                next_audit: 1,
                next_action: 1,
                next_event: 1,
                ..Inner::default()
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl BatchWriter for MemoryStore {
    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StoreError> {
        let now = self.clock.now();
        Ok(self.lock().write(batch, now))
    }
}

#[async_trait]
impl ActionQueue for MemoryStore {
    async fn claim(
        &self,
        node: &NodeId,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let mut due: Vec<(Timestamp, u64, ActionId)> = inner
            .actions
            .values()
            .filter(|(_, r)| r.state == ActionState::Ready && r.run_at <= now)
            .map(|(seq, r)| (r.run_at, *seq, r.record.id))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, _, id) in due {
            if let Some((_, row)) = inner.actions.get_mut(&id) {
                row.state = ActionState::Leased;
                row.attempt += 1;
                row.owner = Some(node.clone());
                row.lease_until = Some(later(now, lease));
                row.updated_at = now;
                claimed.push(Claimed {
                    record: row.record.clone(),
                    attempt: row.attempt,
                });
            }
        }
        Ok(claimed)
    }

    async fn heartbeat(&self, node: &NodeId, lease: Duration) -> Result<u64, StoreError> {
        let until = later(self.clock.now(), lease);
        let mut n = 0;
        for (_, row) in self.lock().actions.values_mut() {
            if row.state == ActionState::Leased && row.owner.as_ref() == Some(node) {
                n += 1;
                if row.lease_until.is_none_or(|u| u < until) {
                    row.lease_until = Some(until);
                }
            }
        }
        Ok(n)
    }

    async fn recover_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut n = 0;
        for (_, row) in self.lock().actions.values_mut() {
            if row.state == ActionState::Leased && row.lease_until.is_some_and(|u| u <= now) {
                n += 1;
                row.state = ActionState::Ready;
                row.owner = None;
                row.lease_until = None;
                row.run_at = row.run_at.min(now);
                row.updated_at = now;
            }
        }
        Ok(n)
    }

    async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
        Ok(self.lock().actions.get(&id).map(|(_, r)| r.clone()))
    }

    async fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<ActionRow>, StoreError> {
        let size = page_size(limit);
        let inner = self.lock();
        let mut dead: Vec<(u64, &ActionRow)> = inner
            .actions
            .values()
            .filter(|(seq, r)| r.state == ActionState::Dead && cursor.is_none_or(|c| *seq < c.0))
            .map(|(seq, r)| (*seq, r))
            .collect();
        dead.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        let more = dead.len() > size;
        dead.truncate(size);
        let next = more.then(|| Cursor(dead.last().map_or(0, |d| d.0)));
        Ok(Page {
            items: dead.into_iter().map(|(_, r)| r.clone()).collect(),
            next,
        })
    }

    async fn redrive(&self, id: ActionId) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        Ok(match inner.actions.get_mut(&id) {
            Some((_, row)) if row.state == ActionState::Dead => {
                row.state = ActionState::Ready;
                row.run_at = now;
                row.updated_at = now;
                true
            }
            _ => false,
        })
    }
}

#[async_trait]
impl RequestResults for MemoryStore {
    async fn results(&self, request: RequestId) -> Result<Vec<ResultRecord>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .lock()
            .results
            .iter()
            .filter(|r| r.request == request && r.expires_at > now)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn audit(&self, query: AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
        let size = query.page_size();
        let inner = self.lock();
        let mut items: Vec<AuditRecord> = inner
            .audit
            .values()
            .rev()
            .filter(|r| query.matches(r))
            .take(size + 1)
            .cloned()
            .collect();
        let more = items.len() > size;
        items.truncate(size);
        let next = more.then(|| Cursor(items.last().map_or(0, |r| r.seq)));
        Ok(Page { items, next })
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.lock().event(id).cloned())
    }

    async fn events(&self, query: EventQuery) -> Result<Page<EventRecord>, StoreError> {
        query.validate()?;
        let size = query.page_size();
        let before = query.cursor.map_or(u64::MAX, |c| c.0);
        let inner = self.lock();
        let mut items: Vec<(u64, &EventRecord)> = inner
            .events
            .range(..before)
            .rev()
            .filter(|(_, e)| query.matches(e))
            .take(size + 1)
            .map(|(seq, e)| (*seq, e))
            .collect();
        let more = items.len() > size;
        items.truncate(size);
        let next = more.then(|| Cursor(items.last().map_or(0, |(seq, _)| *seq)));
        Ok(Page {
            items: items.into_iter().map(|(_, e)| e.clone()).collect(),
            next,
        })
    }
}

#[async_trait]
impl Maintenance for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn prune(&self, retention: &Retention) -> Result<PruneReport, StoreError> {
        let now = self.clock.now();
        let mut report = PruneReport::default();
        let mut inner = self.lock();
        let too_old = |tenant: Option<&TenantId>, at: Timestamp| {
            retention
                .for_tenant(tenant)
                .is_some_and(|age| at < earlier(now, age))
        };
        let before = inner.results.len();
        inner.results.retain(|r| r.expires_at > now);
        report.results = (before - inner.results.len()) as u64;
        let before = inner.dedupe.len();
        inner.dedupe.retain(|_, (_, _, until)| *until > now);
        report.dedupe_keys = (before - inner.dedupe.len()) as u64;
        let before = inner.audit.len();
        inner.audit.retain(|_, r| !too_old(r.tenant.as_ref(), r.at));
        report.audit = (before - inner.audit.len()) as u64;
        let before = inner.actions.len();
        inner.actions.retain(|_, (_, r)| {
            !(r.state == ActionState::Done && too_old(r.record.tenant(), r.updated_at))
        });
        report.actions = (before - inner.actions.len()) as u64;
        // An event goes once it is old and none of its actions is left.
        let mut live: HashSet<EventId> = HashSet::new();
        for (_, r) in inner.actions.values() {
            live.insert(r.record.event.id);
        }
        let before = inner.events.len();
        let mut gone = Vec::new();
        inner.events.retain(|_, e| {
            let keep = live.contains(&e.id) || !too_old(e.principal.tenant.as_ref(), e.accepted_at);
            if !keep {
                gone.push(e.id);
            }
            keep
        });
        for id in gone {
            inner.event_seq.remove(&id);
        }
        report.events = (before - inner.events.len()) as u64;
        Ok(report)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let mut stats = StoreStats {
            backend: "memory".to_owned(),
            ..StoreStats::default()
        };
        for st in ActionState::ALL {
            stats.actions.insert(st, 0);
        }
        for (_, r) in inner.actions.values() {
            *stats.actions.entry(r.state).or_default() += 1;
            if r.state == ActionState::Ready {
                *stats
                    .ready_by_agent
                    .entry(r.record.agent.clone())
                    .or_default() += 1;
                if stats.oldest_ready.is_none_or(|o| r.run_at < o) {
                    stats.oldest_ready = Some(r.run_at);
                }
            }
        }
        stats.events = inner.events.len() as u64;
        stats.audit_entries = inner.audit.len() as u64;
        stats.results = inner.results.iter().filter(|r| r.expires_at > now).count() as u64;
        Ok(stats)
    }

    async fn check(&self) -> Result<CheckReport, StoreError> {
        let inner = self.lock();
        let mut report = CheckReport {
            checked: vec!["lease owners".to_owned(), "action events".to_owned()],
            problems: Vec::new(),
        };
        for (_, r) in inner.actions.values() {
            if (r.state == ActionState::Leased) != r.owner.is_some() {
                report.problems.push(format!(
                    "action {} is {:?} with owner {:?}",
                    r.record.id, r.state, r.owner
                ));
            }
            if !inner.event_seq.contains_key(&r.record.event.id) {
                report.problems.push(format!(
                    "action {} names event {}, which is not stored",
                    r.record.id, r.record.event.id
                ));
            }
        }
        Ok(report)
    }
}
