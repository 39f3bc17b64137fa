//! Writes: group commit, and the statements of one transaction.
//!
//! `write` calls queue their batches for one writer task, which merges the batches waiting
//! (up to `max_batch_items` items) into one transaction and tells each caller its own outcome.
//! A transaction is a few statements whatever its size: every kind of row goes in with one
//! `INSERT … SELECT FROM unnest(…)` (or one `UPDATE … FROM unnest(…)` for settles), and the
//! statements are pipelined on the connection, so most groups cost one or two round trips.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use atamo_core::ids::{ActionId, CorrelationId, EventId};
use atamo_core::message::Timestamp;
use atamo_core::store::{
    later, AcceptEvent, AcceptOutcome, ActionRecord, ActionState, AuditRecord, EventRecord,
    NewAction, ResultRecord, Settlement, StoreError, WriteBatch, WriteOutcome,
};
use deadpool_postgres::Object;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Row, Statement};
use uuid::Uuid;

use crate::error::{retrying, store_error, Failure};
use crate::rows::{int, ts};
use crate::Inner;

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
        Err(e) if group.len() > 1 && !matches!(e, StoreError::Unavailable(_)) => {
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

// ---------------------------------------------------------------------------------------------
// Statements

const BEGIN: &str = "BEGIN";
const COMMIT: &str = "COMMIT";

const DEDUPE_CLAIM: &str = "\
INSERT INTO dedupe AS d (tenant, key, event_id, correlation_id, expires_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[])
ON CONFLICT (tenant, key) DO UPDATE
    SET event_id = EXCLUDED.event_id, correlation_id = EXCLUDED.correlation_id,
        expires_at = EXCLUDED.expires_at
    WHERE d.expires_at <= $6
RETURNING d.tenant, d.key";

const DEDUPE_READ: &str = "\
SELECT d.tenant, d.key, d.event_id, d.correlation_id
FROM dedupe d JOIN unnest($1::text[], $2::text[]) AS k(tenant, key)
    ON d.tenant = k.tenant AND d.key = k.key";

/// An event written again (same id) takes a new `seq`: it is listed as the newest.
const EVENTS_UPSERT: &str = "\
INSERT INTO events (id, tenant, accepted_at, record, event_type, user_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::json[], $5::text[], $6::text[])
ON CONFLICT (id) DO UPDATE
    SET seq = EXCLUDED.seq, tenant = EXCLUDED.tenant, accepted_at = EXCLUDED.accepted_at,
        record = EXCLUDED.record, event_type = EXCLUDED.event_type, user_id = EXCLUDED.user_id";

pub(crate) const EVENTS_INSERT: &str = "\
INSERT INTO events (id, tenant, accepted_at, record, event_type, user_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::json[], $5::text[], $6::text[])";

const ACTIONS_SELECT: &str = "\
INSERT INTO actions (id, agent, tenant, event_id, state, attempt, run_at, owner, lease_until,
                     updated_at, record)
SELECT u.id, u.agent, u.tenant, u.event_id, u.state, u.attempt, $1::bigint, u.owner,
       u.lease_until, $1::bigint, u.record
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bigint[], $8::text[],
            $9::bigint[], $10::json[])
    AS u(id, agent, tenant, event_id, state, attempt, owner, lease_until, record)";

const ACTIONS_CONFLICT: &str = "
ON CONFLICT (id) DO UPDATE
    SET seq = EXCLUDED.seq, agent = EXCLUDED.agent, tenant = EXCLUDED.tenant,
        event_id = EXCLUDED.event_id, state = EXCLUDED.state, attempt = EXCLUDED.attempt,
        run_at = EXCLUDED.run_at, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
        last_error = NULL, updated_at = EXCLUDED.updated_at, record = EXCLUDED.record";

/// One `UPDATE` for many settles, each fenced by its attempt and node.
const SETTLE: &str = "\
UPDATE actions AS a SET
    state = s.state,
    attempt = a.attempt + s.bump,
    owner = CASE WHEN s.state = 'leased' THEN a.owner END,
    lease_until = CASE WHEN s.state = 'leased' THEN s.lease_until END,
    run_at = COALESCE(s.run_at, a.run_at),
    last_error = CASE WHEN s.set_error THEN s.error ELSE a.last_error END,
    updated_at = $1::bigint
FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
            $8::bigint[], $9::bool[], $10::json[], $11::bigint[])
    AS s(id, attempt, node, state, bump, lease_until, run_at, set_error, error, idx)
WHERE a.id = s.id AND a.attempt = s.attempt AND a.owner = s.node AND a.state = 'leased'
RETURNING s.idx";

const RESULTS_INSERT: &str = "\
INSERT INTO results (request_id, expires_at, record)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::json[])";

pub(crate) const AUDIT_INSERT: &str = "\
INSERT INTO audit (at, step, event_id, correlation_id, request_id, action_id, event_type,
                   user_id, tenant, agent, detail)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::json[])";

pub(crate) const NOTIFY: &str = "SELECT pg_notify($1, '')";

// ---------------------------------------------------------------------------------------------
// Pipelining

type Step<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// A statement with its parameters, run by [`pipeline`].
fn step<'a>(
    client: &'a tokio_postgres::Client,
    statement: &'a Statement,
    params: &'a [&'a (dyn ToSql + Sync)],
) -> Step<'a> {
    Box::pin(client.query(statement, params))
}

/// A simple command (`BEGIN`, `COMMIT`), run by [`pipeline`].
fn command<'a>(client: &'a tokio_postgres::Client, sql: &'static str) -> Step<'a> {
    Box::pin(async move { client.batch_execute(sql).await.map(|()| Vec::new()) })
}

/// Runs `steps` pipelined on one connection and returns each one's result, or `None` for the
/// steps never sent.
///
/// tokio-postgres sends a request when its future is first polled, and the server runs requests
/// in the order they arrive, so the first polls go strictly in order here (futures' join
/// helpers do not promise an order for long lists). A step that fails on its first poll was
/// never sent (its parameters did not encode, say): the steps after it are then not sent
/// either, so a trailing `COMMIT` never commits a transaction missing a statement.
async fn pipeline(steps: Vec<Step<'_>>) -> Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> {
    let n = steps.len();
    let mut results: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
        (0..n).map(|_| None).collect();
    let mut live: Vec<Option<Step<'_>>> = steps.into_iter().map(Some).collect();
    let mut sent = false;
    std::future::poll_fn(|cx| {
        for i in 0..n {
            let Some(fut) = live[i].as_mut() else {
                continue;
            };
            if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                let unsent = !sent && r.is_err();
                results[i] = Some(r);
                live[i] = None;
                if unsent {
                    // Nothing after it goes out.
                    for slot in &mut live[i + 1..] {
                        *slot = None;
                    }
                    break;
                }
            }
        }
        sent = true;
        if live.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    results
}

/// A pooled connection in an explicit transaction. Dropped while the transaction is still open
/// (a failed `ROLLBACK`, a cancelled write), the connection is closed rather than returned to
/// the pool mid-transaction.
struct TxConn {
    conn: Option<Object>,
    open: bool,
}

impl TxConn {
    fn client(&self) -> Result<&tokio_postgres::Client, StoreError> {
        self.conn.as_ref().map(|o| &***o).ok_or(StoreError::Closed)
    }

    async fn rollback(&mut self) {
        if !self.open {
            return;
        }
        if let Ok(client) = self.client() {
            if client.batch_execute("ROLLBACK").await.is_ok() {
                self.open = false;
            }
        }
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        if self.open {
            if let Some(conn) = self.conn.take() {
                drop(Object::take(conn));
            }
        }
    }
}

/// The first failure among `results` (a step never sent counts as one).
fn first_error(
    results: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>>,
) -> Result<Vec<Vec<Row>>, Failure> {
    let mut rows = Vec::with_capacity(results.len());
    let mut failure: Option<Failure> = None;
    for r in results {
        match r {
            Some(Ok(v)) => rows.push(v),
            Some(Err(e)) => {
                // A rolled-back transaction makes later steps fail too; the first error is
                // the cause.
                if failure.is_none() {
                    failure = Some(e.into());
                }
                rows.push(Vec::new());
            }
            None => {
                if failure.is_none() {
                    failure = Some(Failure::Store(StoreError::Unavailable(
                        "a statement was not sent".to_owned(),
                    )));
                }
                rows.push(Vec::new());
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(rows),
    }
}

// ---------------------------------------------------------------------------------------------
// One transaction

/// `''` for events without a tenant, in the dedupe table's key.
fn tenant_key(e: &EventRecord) -> &str {
    e.principal.tenant.as_ref().map_or("", |t| t.as_str())
}

/// The dedupe decisions of a group, made in the order of its accepts.
struct Dedupe<'a> {
    /// The distinct keys, sorted (so concurrent writers lock them in the same order).
    keys: Vec<(&'a str, &'a str)>,
    /// Per key, assuming its first event in the group is new: each accept's outcome and the
    /// holder written at the end.
    chains: Vec<Chain>,
}

struct Chain {
    /// (accept index, outcome) for every accept with this key.
    outcomes: Vec<(usize, AcceptOutcome)>,
    /// The holder stored once the group is written.
    holder: (EventId, CorrelationId, Timestamp),
}

fn plan_dedupe<'a>(accepts: &[&'a AcceptEvent], now: Timestamp) -> Dedupe<'a> {
    let mut index: HashMap<(&'a str, &'a str), usize> = HashMap::new();
    let mut keys: Vec<(&'a str, &'a str)> = Vec::new();
    let mut key_of = Vec::with_capacity(accepts.len());
    for a in accepts {
        key_of.push(a.event.dedupe_key.as_deref().map(|key| {
            let k = (tenant_key(&a.event), key);
            *index.entry(k).or_insert_with(|| {
                keys.push(k);
                keys.len() - 1
            })
        }));
    }
    // Sort the keys and renumber.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&x, &y| keys[x].cmp(&keys[y]));
    let mut renumber = vec![0; keys.len()];
    for (new, &old) in order.iter().enumerate() {
        renumber[old] = new;
    }
    let keys: Vec<(&str, &str)> = order.iter().map(|&old| keys[old]).collect();
    let key_of: Vec<Option<usize>> = key_of
        .into_iter()
        .map(|k| k.map(|old| renumber[old]))
        .collect();
    let mut chains: Vec<Option<Chain>> = keys.iter().map(|_| None).collect();
    for (i, a) in accepts.iter().enumerate() {
        let Some(k) = key_of[i] else { continue };
        let mine = (
            a.event.id,
            a.event.correlation_id,
            later(now, a.dedupe_window),
        );
        match &mut chains[k] {
            None => {
                chains[k] = Some(Chain {
                    outcomes: vec![(i, AcceptOutcome::New)],
                    holder: mine,
                });
            }
            Some(chain) => {
                // As the in-memory store: a holder still inside its window makes this a
                // duplicate; otherwise this event takes the key over.
                if chain.holder.2 > now {
                    chain.outcomes.push((
                        i,
                        AcceptOutcome::Duplicate {
                            event_id: chain.holder.0,
                            correlation_id: chain.holder.1,
                        },
                    ));
                } else {
                    chain.outcomes.push((i, AcceptOutcome::New));
                    chain.holder = mine;
                }
            }
        }
    }
    Dedupe {
        keys,
        chains: chains.into_iter().flatten().collect(),
    }
}

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
struct SettleRound<'a> {
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
fn plan_settles<'a>(
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
    fn params<'p>(&'p self, now: &'p i64) -> [&'p (dyn ToSql + Sync); 11] {
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
struct ResultRows<'a> {
    requests: Vec<Uuid>,
    expires_at: Vec<i64>,
    records: Vec<Json<&'a ResultRecord>>,
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

/// Writes `batches` in one transaction; one outcome per batch.
async fn commit(inner: &Inner, batches: &[&WriteBatch]) -> Result<Vec<WriteOutcome>, Failure> {
    let now = inner.clock.now();
    let now_i = ts(now);
    let accepts: Vec<&AcceptEvent> = batches.iter().flat_map(|b| &b.accepts).collect();
    let settles: Vec<&atamo_core::store::Settle> =
        batches.iter().flat_map(|b| &b.settles).collect();

    let mut tx = TxConn {
        conn: Some(inner.pool.get().await?),
        open: false,
    };
    let result = commit_in(inner, &mut tx, now, now_i, &accepts, &settles, batches).await;
    if result.is_err() {
        tx.rollback().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn commit_in(
    inner: &Inner,
    tx: &mut TxConn,
    now: Timestamp,
    now_i: i64,
    accepts: &[&AcceptEvent],
    settles: &[&atamo_core::store::Settle],
    batches: &[&WriteBatch],
) -> Result<Vec<WriteOutcome>, Failure> {
    let conn = tx.conn.as_ref().ok_or(StoreError::Closed)?;
    let client: &tokio_postgres::Client = conn;

    // Dedupe: each key's first event in the group claims the key (an insert, or an update of
    // an expired holder). A key still held by another event makes every event with it a
    // duplicate of that one.
    let dedupe = plan_dedupe(accepts, now);
    let mut outcome: Vec<AcceptOutcome> = vec![AcceptOutcome::New; accepts.len()];
    tx.open = true;
    // Without dedupe keys, BEGIN goes out with the rest below.
    if !dedupe.keys.is_empty() {
        let claim = conn.prepare_cached(DEDUPE_CLAIM).await?;
        let tenants: Vec<&str> = dedupe.keys.iter().map(|k| k.0).collect();
        let names: Vec<&str> = dedupe.keys.iter().map(|k| k.1).collect();
        let ids: Vec<Uuid> = dedupe.chains.iter().map(|c| c.holder.0.as_uuid()).collect();
        let corrs: Vec<Uuid> = dedupe.chains.iter().map(|c| c.holder.1.as_uuid()).collect();
        let until: Vec<i64> = dedupe.chains.iter().map(|c| ts(c.holder.2)).collect();
        let params: [&(dyn ToSql + Sync); 6] = [&tenants, &names, &ids, &corrs, &until, &now_i];
        let rows = first_error(
            pipeline(vec![command(client, BEGIN), step(client, &claim, &params)]).await,
        )?;
        let claimed: HashSet<(String, String)> = rows
            .get(1)
            .into_iter()
            .flatten()
            .map(|r| Ok((crate::rows::get(r, 0)?, crate::rows::get(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;
        let held: HashSet<usize> = (0..dedupe.keys.len())
            .filter(|&k| {
                let (t, n) = dedupe.keys[k];
                !claimed.contains(&(t.to_owned(), n.to_owned()))
            })
            .collect();
        let mut holders: HashMap<(String, String), (EventId, CorrelationId)> = HashMap::new();
        if !held.is_empty() {
            let read = conn.prepare_cached(DEDUPE_READ).await?;
            let keys: Vec<(&str, &str)> = held.iter().map(|&k| dedupe.keys[k]).collect();
            let tenants: Vec<&str> = keys.iter().map(|k| k.0).collect();
            let names: Vec<&str> = keys.iter().map(|k| k.1).collect();
            for r in client.query(&read, &[&tenants, &names]).await? {
                let id: Uuid = crate::rows::get(&r, 2)?;
                let corr: Uuid = crate::rows::get(&r, 3)?;
                holders.insert(
                    (crate::rows::get(&r, 0)?, crate::rows::get(&r, 1)?),
                    (EventId::from_uuid(id), CorrelationId::from_uuid(corr)),
                );
            }
        }
        for (k, chain) in dedupe.chains.iter().enumerate() {
            let (t, n) = dedupe.keys[k];
            match holders.get(&(t.to_owned(), n.to_owned())) {
                Some(&(event_id, correlation_id)) => {
                    for (i, _) in &chain.outcomes {
                        outcome[*i] = AcceptOutcome::Duplicate {
                            event_id,
                            correlation_id,
                        };
                    }
                }
                None if held.contains(&k) => {
                    // The holder went between the two statements (it is locked by the first,
                    // so this should not happen): run the transaction again.
                    return Err(Failure::Retry(format!("dedupe key {n:?} changed hands")));
                }
                None => {
                    for (i, o) in &chain.outcomes {
                        outcome[*i] = *o;
                    }
                }
            }
        }
    }

    // The rows of the new events, their actions, settles, results and audit records.
    let new: Vec<&AcceptEvent> = accepts
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o == AcceptOutcome::New)
        .map(|(a, _)| *a)
        .collect();
    let events = EventRows::build(new.iter().map(|a| &a.event));
    let actions = ActionRows::build(new.iter().flat_map(|a| &a.actions), now);
    let (rounds, settle_wakes) = plan_settles(settles, now);
    let mut results = ResultRows::default();
    for r in batches.iter().flat_map(|b| &b.results) {
        results.requests.push(r.request.as_uuid());
        results.expires_at.push(ts(r.expires_at));
        results.records.push(Json(r));
    }
    // A refused duplicate's steps are not the path of anything stored.
    let refused: HashSet<EventId> = accepts
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o != AcceptOutcome::New)
        .map(|(a, _)| a.event.id)
        .collect();
    let audit = AuditRows::build(
        batches
            .iter()
            .flat_map(|b| &b.audit)
            .filter(|r| r.event_id.is_none_or(|id| !refused.contains(&id))),
    );
    let wake = actions.any_ready || settle_wakes;

    let events_st = match events.ids.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(EVENTS_UPSERT).await?),
    };
    let actions_st = match actions.ids.is_empty() {
        true => None,
        false => Some(
            conn.prepare_cached(&format!("{ACTIONS_SELECT}{ACTIONS_CONFLICT}"))
                .await?,
        ),
    };
    let settle_st = match rounds.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(SETTLE).await?),
    };
    let results_st = match results.requests.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(RESULTS_INSERT).await?),
    };
    let audit_st = match audit.at.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(AUDIT_INSERT).await?),
    };
    let notify_st = match wake {
        true => Some(conn.prepare_cached(NOTIFY).await?),
        false => None,
    };

    let event_params = events.params();
    let action_params = actions.params(&now_i);
    let round_params: Vec<[&(dyn ToSql + Sync); 11]> =
        rounds.iter().map(|r| r.params(&now_i)).collect();
    let result_params: [&(dyn ToSql + Sync); 3] =
        [&results.requests, &results.expires_at, &results.records];
    let audit_params = audit.params();
    let notify_params: [&(dyn ToSql + Sync); 1] = [&inner.channel];

    let mut steps: Vec<Step<'_>> = Vec::new();
    if dedupe.keys.is_empty() {
        steps.push(command(client, BEGIN));
    }
    if let Some(st) = &events_st {
        steps.push(step(client, st, &event_params));
    }
    if let Some(st) = &actions_st {
        steps.push(step(client, st, &action_params));
    }
    let first_round = steps.len();
    if let Some(st) = &settle_st {
        for params in &round_params {
            steps.push(step(client, st, params));
        }
    }
    let after_rounds = steps.len();
    if let Some(st) = &results_st {
        steps.push(step(client, st, &result_params));
    }
    if let Some(st) = &audit_st {
        steps.push(step(client, st, &audit_params));
    }
    if let Some(st) = &notify_st {
        steps.push(step(client, st, &notify_params));
    }
    steps.push(command(client, COMMIT));
    let results = pipeline(steps).await;
    let committed = matches!(results.last(), Some(Some(_)));
    let rows = first_error(results);
    if committed {
        // COMMIT ran: it committed, or (after an error) rolled back.
        tx.open = false;
    }
    let rows = rows?;

    let mut settled = vec![false; settles.len()];
    for round in &rows[first_round..after_rounds] {
        for r in round {
            let idx: i64 = crate::rows::get(r, 0)?;
            if let Some(s) = usize::try_from(idx).ok().and_then(|i| settled.get_mut(i)) {
                *s = true;
            }
        }
    }

    // Split the outcomes by batch.
    let mut out = Vec::with_capacity(batches.len());
    let (mut a, mut s) = (0, 0);
    for b in batches {
        out.push(WriteOutcome {
            accepted: outcome[a..a + b.accepts.len()].to_vec(),
            settled: settled[s..s + b.settles.len()].to_vec(),
        });
        a += b.accepts.len();
        s += b.settles.len();
    }
    Ok(out)
}

/// Inserts each batch's events and actions with plain multi-row inserts, one transaction per
/// batch (no dedupe, settles, results or audit): what the tables take at best.
pub(crate) async fn baseline_insert(
    inner: &Inner,
    batches: Vec<WriteBatch>,
) -> Result<u64, StoreError> {
    let e = |e: tokio_postgres::Error| store_error(&e);
    let mut conn = inner.pool.get().await.map_err(crate::error::pool_error)?;
    let events_st = conn.prepare_cached(EVENTS_INSERT).await.map_err(e)?;
    let actions_st = conn.prepare_cached(ACTIONS_SELECT).await.map_err(e)?;
    let mut rows = 0;
    for batch in &batches {
        let now = inner.clock.now();
        let now_i = ts(now);
        let events = EventRows::build(batch.accepts.iter().map(|a| &a.event));
        let actions = ActionRows::build(batch.accepts.iter().flat_map(|a| &a.actions), now);
        let tx = conn.transaction().await.map_err(e)?;
        if !events.ids.is_empty() {
            rows += tx.execute(&events_st, &events.params()).await.map_err(e)?;
        }
        if !actions.ids.is_empty() {
            rows += tx
                .execute(&actions_st, &actions.params(&now_i))
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use atamo_core::store::conformance::{action, event};
    use atamo_core::store::{NodeId, Settle};

    use super::*;

    fn keyed(key: &str, window: u64, now: Timestamp) -> AcceptEvent {
        let mut e = event("alice", None, now);
        e.dedupe_key = Some(key.to_owned());
        AcceptEvent {
            event: e,
            dedupe_window: Duration::from_secs(window),
            actions: vec![],
        }
    }

    #[test]
    fn dedupe_chains_follow_the_windows_in_order() {
        let now = Timestamp::from_unix_micros(1_000_000);
        let a = keyed("k", 60, now);
        let b = keyed("k", 60, now);
        let c = keyed("j", 0, now);
        let d = keyed("j", 60, now);
        let e = keyed("j", 60, now);
        let all = [&a, &b, &c, &d, &e];
        let plan = plan_dedupe(&all, now);
        assert_eq!(plan.keys, vec![("", "j"), ("", "k")]);
        let j = &plan.chains[0];
        assert_eq!(
            j.outcomes,
            vec![
                (2, AcceptOutcome::New),
                // A window of 0 blocks nothing.
                (3, AcceptOutcome::New),
                (
                    4,
                    AcceptOutcome::Duplicate {
                        event_id: d.event.id,
                        correlation_id: d.event.correlation_id
                    }
                ),
            ]
        );
        assert_eq!(j.holder.0, d.event.id);
        let k = &plan.chains[1];
        assert_eq!(k.holder.0, a.event.id);
    }

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
