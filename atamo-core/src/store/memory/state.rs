//! What the in-memory store holds, and how writes change it.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::ids::{ActionId, CorrelationId, EventId, TenantId};
use crate::message::Timestamp;
use crate::store::batch::{AcceptOutcome, Settlement, WriteBatch, WriteOutcome};
use crate::store::clock::later;
use crate::store::records::{ActionRow, ActionState, AuditRecord, EventRecord, ResultRecord};
use crate::store::registry::{RegistryEntry, RegistryKind, RegistryOutcome, RegistryWrite};

/// Everything the store holds, behind its lock.
#[derive(Default)]
pub(super) struct Inner {
    /// Events by their insertion number (the order of pages).
    pub(super) events: BTreeMap<u64, EventRecord>,
    /// Each event's insertion number.
    pub(super) event_seq: HashMap<EventId, u64>,
    pub(super) next_event: u64,
    pub(super) dedupe: HashMap<(Option<TenantId>, String), (EventId, CorrelationId, Timestamp)>,
    /// Actions by id, with their insertion number (the order of pages).
    pub(super) actions: HashMap<ActionId, (u64, ActionRow)>,
    pub(super) next_action: u64,
    pub(super) results: Vec<ResultRecord>,
    pub(super) audit: BTreeMap<u64, AuditRecord>,
    pub(super) next_audit: u64,
    pub(super) registry: BTreeMap<(RegistryKind, String), RegistryEntry>,
}

impl Inner {
    pub(super) fn write(&mut self, batch: WriteBatch, now: Timestamp) -> WriteOutcome {
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

    pub(super) fn event(&self, id: EventId) -> Option<&EventRecord> {
        self.event_seq.get(&id).and_then(|seq| self.events.get(seq))
    }

    pub(super) fn push_audit(&mut self, records: impl IntoIterator<Item = AuditRecord>) {
        for mut record in records {
            record.seq = self.next_audit;
            self.next_audit += 1;
            self.audit.insert(record.seq, record);
        }
    }

    pub(super) fn registry_put(
        &mut self,
        key: (RegistryKind, String),
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
