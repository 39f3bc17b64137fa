//! The in-memory store: the store model with nothing on disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use super::{
    check_registry_key, check_registry_kind, earlier, later, AcceptOutcome, ActionRow, ActionState,
    AuditQuery, AuditRecord, CheckReport, Claimed, Clock, Cursor, EventQuery, EventRecord, NodeId,
    Page, PruneReport, RegistryEntry, RegistryOutcome, RegistryWrite, ResultRecord, Retention,
    Settlement, Store, StoreError, StoreFuture, StoreStats, SystemClock, WriteBatch, WriteOutcome,
};
use crate::ids::{ActionId, CorrelationId, EventId, RequestId, TenantId};
use crate::message::Timestamp;

/// The store model held in memory: what a stateful hub does, minus surviving a restart.
///
/// Useful for tests and for a hub that wants dedupe, leases and a queryable audit log without a
/// disk.
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Events by their insertion number (the order of pages).
    events: BTreeMap<u64, EventRecord>,
    /// Each event's insertion number.
    event_seq: HashMap<EventId, u64>,
    next_event: u64,
    dedupe: HashMap<(Option<TenantId>, String), (EventId, CorrelationId, Timestamp)>,
    /// Actions by id, with their insertion number (the order of pages).
    actions: HashMap<ActionId, (u64, ActionRow)>,
    next_action: u64,
    results: Vec<ResultRecord>,
    audit: BTreeMap<u64, AuditRecord>,
    next_audit: u64,
    registry: BTreeMap<(String, String), RegistryEntry>,
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

    fn lock(&self) -> MutexGuard<'_, Inner> {
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

fn ready<T: Send + 'static>(v: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(v)))
}

fn done<T: Send + 'static>(v: Result<T, StoreError>) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(v))
}

impl Inner {
    fn write(&mut self, batch: WriteBatch, now: Timestamp) -> WriteOutcome {
        let mut out = WriteOutcome::default();
        let mut refused = Vec::new();
        for accept in batch.accepts {
            let event = accept.event;
            if let Some(key) = &event.dedupe_key {
                let k = (event.principal.tenant.clone(), key.clone());
                if let Some((id, corr, until)) = self.dedupe.get(&k) {
                    if *until > now {
                        refused.push(event.id);
                        out.accepted.push(AcceptOutcome::Duplicate {
                            event_id: *id,
                            correlation_id: *corr,
                        });
                        continue;
                    }
                }
                self.dedupe.insert(
                    k,
                    (
                        event.id,
                        event.correlation_id,
                        later(now, accept.dedupe_window),
                    ),
                );
            }
            for action in accept.actions {
                let (state, attempt, owner, lease_until) = match action.lease {
                    Some((node, lease)) => {
                        (ActionState::Leased, 1, Some(node), Some(later(now, lease)))
                    }
                    None => (ActionState::Ready, 0, None, None),
                };
                let seq = self.next_action;
                self.next_action += 1;
                self.actions.insert(
                    action.record.id,
                    (
                        seq,
                        ActionRow {
                            record: action.record,
                            state,
                            attempt,
                            run_at: now,
                            owner,
                            lease_until,
                            last_error: None,
                            updated_at: now,
                        },
                    ),
                );
            }
            self.insert_event(event);
            out.accepted.push(AcceptOutcome::New);
        }
        for settle in batch.settles {
            let Some((_, row)) = self.actions.get_mut(&settle.action) else {
                out.settled.push(false);
                continue;
            };
            let held = row.state == ActionState::Leased
                && row.attempt == settle.attempt
                && row.owner.as_ref() == Some(&settle.node);
            if !held {
                out.settled.push(false);
                continue;
            }
            row.updated_at = now;
            match settle.outcome {
                Settlement::Done => {
                    row.state = ActionState::Done;
                    row.owner = None;
                    row.lease_until = None;
                }
                Settlement::Retry {
                    run_at,
                    hold_until,
                    error,
                } => {
                    row.run_at = run_at;
                    row.last_error = Some(error);
                    match hold_until {
                        Some(until) => {
                            row.attempt += 1;
                            row.lease_until = Some(until);
                        }
                        None => {
                            row.state = ActionState::Ready;
                            row.owner = None;
                            row.lease_until = None;
                        }
                    }
                }
                Settlement::Dead { error } => {
                    row.state = ActionState::Dead;
                    row.owner = None;
                    row.lease_until = None;
                    row.last_error = Some(error);
                }
                Settlement::Release => {
                    row.state = ActionState::Ready;
                    row.run_at = now;
                    row.owner = None;
                    row.lease_until = None;
                }
            }
            out.settled.push(true);
        }
        self.results.extend(batch.results);
        // A refused duplicate's steps are not the path of anything stored.
        self.push_audit(
            batch
                .audit
                .into_iter()
                .filter(|r| r.event_id.is_none_or(|id| !refused.contains(&id))),
        );
        out
    }

    /// Stores an event under a new insertion number (replacing one with the same id).
    fn insert_event(&mut self, event: EventRecord) {
        if let Some(old) = self.event_seq.remove(&event.id) {
            self.events.remove(&old);
        }
        let seq = self.next_event;
        self.next_event += 1;
        self.event_seq.insert(event.id, seq);
        self.events.insert(seq, event);
    }

    fn event(&self, id: EventId) -> Option<&EventRecord> {
        self.event_seq.get(&id).and_then(|seq| self.events.get(seq))
    }

    fn push_audit(&mut self, records: impl IntoIterator<Item = AuditRecord>) {
        for mut record in records {
            record.seq = self.next_audit;
            self.next_audit += 1;
            self.audit.insert(record.seq, record);
        }
    }

    fn registry_put(
        &mut self,
        key: (String, String),
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
        now: Timestamp,
    ) -> RegistryOutcome {
        let revision = match (self.registry.get(&key), mode) {
            (Some(_), RegistryWrite::Create) => return RegistryOutcome::Exists,
            (None, RegistryWrite::Replace) => return RegistryOutcome::Missing,
            (Some(old), _) => old.revision + 1,
            (None, _) => 1,
        };
        let (kind, id) = key.clone();
        self.registry.insert(
            key,
            RegistryEntry {
                kind,
                id,
                body,
                revision,
                updated_at: now,
            },
        );
        self.push_audit(audit);
        RegistryOutcome::Written { revision }
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn write(&self, batch: WriteBatch) -> StoreFuture<'_, WriteOutcome> {
        let now = self.clock.now();
        ready(self.lock().write(batch, now))
    }

    fn claim(&self, node: &NodeId, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<Claimed>> {
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
        ready(claimed)
    }

    fn heartbeat(&self, node: &NodeId, lease: Duration) -> StoreFuture<'_, u64> {
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
        ready(n)
    }

    fn recover_expired(&self) -> StoreFuture<'_, u64> {
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
        ready(n)
    }

    fn action(&self, id: ActionId) -> StoreFuture<'_, Option<ActionRow>> {
        ready(self.lock().actions.get(&id).map(|(_, r)| r.clone()))
    }

    fn dead_letters(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StoreFuture<'_, Page<ActionRow>> {
        let size = super::page_size(limit);
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
        ready(Page {
            items: dead.into_iter().map(|(_, r)| r.clone()).collect(),
            next,
        })
    }

    fn redrive(&self, id: ActionId) -> StoreFuture<'_, bool> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let done = match inner.actions.get_mut(&id) {
            Some((_, row)) if row.state == ActionState::Dead => {
                row.state = ActionState::Ready;
                row.run_at = now;
                row.updated_at = now;
                true
            }
            _ => false,
        };
        ready(done)
    }

    fn results(&self, request: RequestId) -> StoreFuture<'_, Vec<ResultRecord>> {
        let now = self.clock.now();
        ready(
            self.lock()
                .results
                .iter()
                .filter(|r| r.request == request && r.expires_at > now)
                .cloned()
                .collect(),
        )
    }

    fn event(&self, id: EventId) -> StoreFuture<'_, Option<EventRecord>> {
        ready(self.lock().event(id).cloned())
    }

    fn audit(&self, query: AuditQuery) -> StoreFuture<'_, Page<AuditRecord>> {
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
        ready(Page { items, next })
    }

    fn events(&self, query: EventQuery) -> StoreFuture<'_, Page<EventRecord>> {
        if let Err(e) = query.validate() {
            return done(Err(e));
        }
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
        ready(Page {
            items: items.into_iter().map(|(_, e)| e.clone()).collect(),
            next,
        })
    }

    fn registry_get(&self, kind: &str, id: &str) -> StoreFuture<'_, Option<RegistryEntry>> {
        if let Err(e) = check_registry_key(kind, id) {
            return done(Err(e));
        }
        let key = (kind.to_owned(), id.to_owned());
        ready(self.lock().registry.get(&key).cloned())
    }

    fn registry_list(&self, kind: &str) -> StoreFuture<'_, Vec<RegistryEntry>> {
        if let Err(e) = check_registry_kind(kind) {
            return done(Err(e));
        }
        let from = (kind.to_owned(), String::new());
        // Keys sort by kind, then id: the kind's entries are one range, ordered by id.
        ready(
            self.lock()
                .registry
                .range(from..)
                .take_while(|((k, _), _)| k == kind)
                .map(|(_, entry)| entry.clone())
                .collect(),
        )
    }

    fn registry_put(
        &self,
        kind: &str,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, RegistryOutcome> {
        if let Err(e) = check_registry_key(kind, id) {
            return done(Err(e));
        }
        let now = self.clock.now();
        let key = (kind.to_owned(), id.to_owned());
        ready(self.lock().registry_put(key, body, mode, audit, now))
    }

    fn registry_delete(
        &self,
        kind: &str,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> StoreFuture<'_, bool> {
        if let Err(e) = check_registry_key(kind, id) {
            return done(Err(e));
        }
        let key = (kind.to_owned(), id.to_owned());
        let mut inner = self.lock();
        let deleted = inner.registry.remove(&key).is_some();
        if deleted {
            inner.push_audit(audit);
        }
        ready(deleted)
    }

    fn prune(&self, retention: &Retention) -> StoreFuture<'_, PruneReport> {
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
        let mut live: std::collections::HashSet<EventId> = std::collections::HashSet::new();
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
        ready(report)
    }

    fn stats(&self) -> StoreFuture<'_, StoreStats> {
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
        ready(stats)
    }

    fn check(&self) -> StoreFuture<'_, CheckReport> {
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
        ready(report)
    }
}
