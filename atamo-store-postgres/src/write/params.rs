//! The array parameters of the `unnest` statements: rows of events, actions, settles,
//! results and audit records.

use std::collections::HashMap;

use atamo_core::ids::{ActionId, EventId};
use atamo_core::message::Timestamp;
use atamo_core::store::{
    later, ActionRecord, ActionState, AuditRecord, EventRecord, NewAction, ResultRecord, Settlement,
};
use serde_json::Value;
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use crate::rows::{int, ts};

/// Rows of new events (by id, the last one written wins, as in the in-memory store).
#[derive(Default)]
pub(crate) struct EventRows<'a> {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) tenants: Vec<Option<&'a str>>,
    pub(crate) accepted_at: Vec<i64>,
    pub(crate) records: Vec<Json<&'a EventRecord>>,
    pub(crate) event_types: Vec<&'a str>,
    pub(crate) users: Vec<&'a str>,
}

impl<'a> EventRows<'a> {
    pub(crate) fn build(events: impl Iterator<Item = &'a EventRecord>) -> Self {
        let mut rows = Self::default();
        let mut seen: HashMap<EventId, usize> = HashMap::new();
        for e in events {
            let tenant = e.principal.tenant.as_ref().map(|t| t.as_str());
            if let Some(&at) = seen.get(&e.id) {
                rows.tenants[at] = tenant;
                rows.accepted_at[at] = ts(e.accepted_at);
                rows.records[at] = Json(e);
                rows.event_types[at] = e.event_type.as_str();
                rows.users[at] = e.principal.user.as_str();
                continue;
            }
            seen.insert(e.id, rows.ids.len());
            rows.ids.push(e.id.as_uuid());
            rows.tenants.push(tenant);
            rows.accepted_at.push(ts(e.accepted_at));
            rows.records.push(Json(e));
            rows.event_types.push(e.event_type.as_str());
            rows.users.push(e.principal.user.as_str());
        }
        rows
    }

    /// The parameters of [`EVENTS_UPSERT`] and [`EVENTS_INSERT`].
    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 6] {
        [
            &self.ids,
            &self.tenants,
            &self.accepted_at,
            &self.records,
            &self.event_types,
            &self.users,
        ]
    }
}

/// Rows of new actions, in order (an id written twice keeps its last version, at its place).
#[derive(Default)]
pub(crate) struct ActionRows<'a> {
    pub(crate) ids: Vec<Uuid>,
    pub(crate) agents: Vec<&'a str>,
    pub(crate) tenants: Vec<Option<&'a str>>,
    pub(crate) events: Vec<Uuid>,
    pub(crate) states: Vec<&'static str>,
    pub(crate) attempts: Vec<i64>,
    pub(crate) owners: Vec<Option<&'a str>>,
    pub(crate) lease_until: Vec<Option<i64>>,
    pub(crate) records: Vec<Json<&'a ActionRecord>>,
    /// Whether one of them is ready.
    pub(crate) any_ready: bool,
}

impl<'a> ActionRows<'a> {
    pub(crate) fn build(actions: impl Iterator<Item = &'a NewAction>, now: Timestamp) -> Self {
        let mut last: HashMap<ActionId, usize> = HashMap::new();
        let all: Vec<&NewAction> = actions.collect();
        for (i, a) in all.iter().enumerate() {
            last.insert(a.record.id, i);
        }
        let mut rows = Self::default();
        for (i, a) in all.iter().enumerate() {
            if last.get(&a.record.id) != Some(&i) {
                continue;
            }
            let r = &a.record;
            rows.ids.push(r.id.as_uuid());
            rows.agents.push(r.agent.as_str());
            rows.tenants.push(r.tenant().map(|t| t.as_str()));
            rows.events.push(r.event.id.as_uuid());
            match &a.lease {
                Some((node, lease)) => {
                    rows.states.push(ActionState::Leased.as_str());
                    rows.attempts.push(1);
                    rows.owners.push(Some(node.as_str()));
                    rows.lease_until.push(Some(ts(later(now, *lease))));
                }
                None => {
                    rows.any_ready = true;
                    rows.states.push(ActionState::Ready.as_str());
                    rows.attempts.push(0);
                    rows.owners.push(None);
                    rows.lease_until.push(None);
                }
            }
            rows.records.push(Json(r));
        }
        rows
    }

    pub(crate) fn params<'p>(&'p self, now: &'p i64) -> [&'p (dyn ToSql + Sync); 10] {
        [
            now,
            &self.ids,
            &self.agents,
            &self.tenants,
            &self.events,
            &self.states,
            &self.attempts,
            &self.owners,
            &self.lease_until,
            &self.records,
        ]
    }
}

/// The parameters of one [`SETTLE`] statement.
#[derive(Default)]
pub(super) struct SettleRound<'a> {
    ids: Vec<Uuid>,
    attempts: Vec<i64>,
    nodes: Vec<&'a str>,
    states: Vec<&'static str>,
    bumps: Vec<i64>,
    lease_until: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    set_error: Vec<bool>,
    errors: Vec<Option<Json<&'a Value>>>,
    idx: Vec<i64>,
}

/// The settles of a group as rounds of [`SETTLE`]: round `k` holds each action's `k`-th settle,
/// so settles of one action apply in order (one `UPDATE` changes a row once), and each round
/// is sorted by action id (concurrent writers lock rows in the same order). Also whether a
/// settle may make an action ready now.
pub(super) fn plan_settles<'a>(
    settles: &[&'a atamo_core::store::Settle],
    now: Timestamp,
) -> (Vec<SettleRound<'a>>, bool) {
    let mut seen: HashMap<ActionId, usize> = HashMap::new();
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut wakes = false;
    for (i, s) in settles.iter().enumerate() {
        let n = seen.entry(s.action).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    let rounds = rounds
        .into_iter()
        .map(|mut members| {
            members.sort_by_key(|&i| settles[i].action);
            let mut r = SettleRound::default();
            for i in members {
                let s = settles[i];
                r.ids.push(s.action.as_uuid());
                r.attempts.push(i64::from(s.attempt));
                r.nodes.push(s.node.as_str());
                r.idx.push(int(i as u64));
                let (state, bump, lease_until, run_at, error) = match &s.outcome {
                    Settlement::Done => (ActionState::Done, 0, None, None, None),
                    Settlement::Retry {
                        run_at,
                        hold_until: Some(until),
                        error,
                    } => (
                        ActionState::Leased,
                        1,
                        Some(ts(*until)),
                        Some(ts(*run_at)),
                        Some(error),
                    ),
                    Settlement::Retry {
                        run_at,
                        hold_until: None,
                        error,
                    } => {
                        wakes |= *run_at <= now;
                        (ActionState::Ready, 0, None, Some(ts(*run_at)), Some(error))
                    }
                    Settlement::Dead { error } => (ActionState::Dead, 0, None, None, Some(error)),
                    Settlement::Release => {
                        wakes = true;
                        (ActionState::Ready, 0, None, Some(ts(now)), None)
                    }
                };
                r.states.push(state.as_str());
                r.bumps.push(bump);
                r.lease_until.push(lease_until);
                r.run_at.push(run_at);
                r.set_error.push(error.is_some());
                r.errors.push(error.map(Json));
            }
            r
        })
        .collect();
    (rounds, wakes)
}

impl<'a> SettleRound<'a> {
    pub(super) fn params<'p>(&'p self, now: &'p i64) -> [&'p (dyn ToSql + Sync); 11] {
        [
            now,
            &self.ids,
            &self.attempts,
            &self.nodes,
            &self.states,
            &self.bumps,
            &self.lease_until,
            &self.run_at,
            &self.set_error,
            &self.errors,
            &self.idx,
        ]
    }
}

#[derive(Default)]
pub(super) struct ResultRows<'a> {
    pub(super) requests: Vec<Uuid>,
    pub(super) expires_at: Vec<i64>,
    pub(super) records: Vec<Json<&'a ResultRecord>>,
}

/// The parameters of [`AUDIT_INSERT`].
#[derive(Default)]
pub(crate) struct AuditRows<'a> {
    at: Vec<i64>,
    steps: Vec<&'a str>,
    events: Vec<Option<Uuid>>,
    correlations: Vec<Option<Uuid>>,
    requests: Vec<Option<Uuid>>,
    actions: Vec<Option<Uuid>>,
    event_types: Vec<Option<&'a str>>,
    users: Vec<Option<&'a str>>,
    tenants: Vec<Option<&'a str>>,
    agents: Vec<Option<&'a str>>,
    details: Vec<Json<&'a Value>>,
}

impl<'a> AuditRows<'a> {
    /// Whether there is no record.
    pub(crate) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub(crate) fn build(records: impl Iterator<Item = &'a AuditRecord>) -> Self {
        let mut rows = Self::default();
        for r in records {
            rows.at.push(ts(r.at));
            rows.steps.push(&r.step);
            rows.events.push(r.event_id.map(|i| i.as_uuid()));
            rows.correlations
                .push(r.correlation_id.map(|i| i.as_uuid()));
            rows.requests.push(r.request_id.map(|i| i.as_uuid()));
            rows.actions.push(r.action_id.map(|i| i.as_uuid()));
            rows.event_types
                .push(r.event_type.as_ref().map(|t| t.as_str()));
            rows.users.push(r.user.as_ref().map(|t| t.as_str()));
            rows.tenants.push(r.tenant.as_ref().map(|t| t.as_str()));
            rows.agents.push(r.agent.as_ref().map(|t| t.as_str()));
            rows.details.push(Json(&r.detail));
        }
        rows
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.at,
            &self.steps,
            &self.events,
            &self.correlations,
            &self.requests,
            &self.actions,
            &self.event_types,
            &self.users,
            &self.tenants,
            &self.agents,
            &self.details,
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use atamo_core::ids::ActionId;
    use atamo_core::store::conformance::{action, event};
    use atamo_core::store::{NodeId, Settle};

    use super::*;

    #[test]
    fn settles_of_one_action_go_in_rounds() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let x = ActionId::generate();
        let y = ActionId::generate();
        let s = |action, attempt, outcome| Settle {
            action,
            attempt,
            node: NodeId::new("a"),
            outcome,
        };
        let list = [
            s(
                x,
                1,
                Settlement::Retry {
                    run_at: now,
                    hold_until: Some(now),
                    error: Value::Null,
                },
            ),
            s(y, 1, Settlement::Done),
            s(x, 2, Settlement::Release),
        ];
        let refs: Vec<&Settle> = list.iter().collect();
        let (rounds, wakes) = plan_settles(&refs, now);
        assert!(wakes, "a release makes an action ready");
        assert_eq!(rounds.len(), 2);
        assert_eq!(rounds[0].ids.len(), 2);
        assert_eq!(rounds[1].ids, vec![x.as_uuid()]);
        assert_eq!(rounds[1].idx, vec![2]);
        assert_eq!(rounds[1].states, vec!["ready"]);
    }

    #[test]
    fn an_action_written_twice_keeps_its_last_version() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let e = event("alice", None, now);
        let a = action(&e, "mailer");
        let mut a2 = a.clone();
        a2.agent = "archive".into();
        let b = action(&e, "mailer");
        let list = [
            NewAction {
                record: a,
                lease: None,
            },
            NewAction {
                record: b,
                lease: Some((NodeId::new("n"), Duration::from_secs(1))),
            },
            NewAction {
                record: a2,
                lease: None,
            },
        ];
        let rows = ActionRows::build(list.iter(), now);
        assert_eq!(rows.agents, vec!["mailer", "archive"]);
        assert_eq!(rows.states, vec!["leased", "ready"]);
        assert!(rows.any_ready);
    }
}
