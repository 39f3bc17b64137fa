//! The statements of writes, run by the writer thread inside the transaction it opened.

use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{
    earlier, later, AcceptEvent, AcceptOutcome, ActionState, AuditRecord, Claimed, EventRecord,
    NewAction, NodeId, PruneReport, RegistryOutcome, RegistryWrite, ResultRecord, Retention,
    Settle, Settlement, StoreError, WriteBatch, WriteOutcome,
};
use atamo_core::TenantId;
use rusqlite::{params, Connection, OptionalExtension};

use crate::codec::{attempt, from_json, parse_id, to_json, ts, RawAudit, SqlResult};

/// Whether an insert replaces a row with the same id (as the in-memory store does) or is a
/// plain insert (the baseline).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// `INSERT OR REPLACE`.
    Replace,
    /// `INSERT`.
    Plain,
}

/// The JSON bodies of the event and action rows of some accepts, encoded by the caller so that
/// the writer thread only binds them.
pub(crate) struct Bodies(Vec<(String, Vec<String>)>);

/// Encodes the bodies of `accepts` (on the caller's thread).
pub(crate) fn encode_bodies(accepts: &[AcceptEvent]) -> Result<Bodies, StoreError> {
    accepts
        .iter()
        .map(|a| {
            let actions = a
                .actions
                .iter()
                .map(|n| to_json(&n.record))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((to_json(&a.event)?, actions))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Bodies)
}

/// Rows per multi-row `INSERT` of events and actions: one statement's fixed cost (its halt,
/// reset and the `AUTOINCREMENT` counter's update) is paid once for these many rows.
const ROWS_PER_INSERT: usize = 32;

/// `INSERT [OR REPLACE] INTO table (columns) VALUES (?,...),(?,...)` for `rows` rows.
fn multi_row_sql(how: Insert, head: &str, columns: usize, rows: usize) -> String {
    let verb = match how {
        Insert::Replace => "INSERT OR REPLACE",
        Insert::Plain => "INSERT",
    };
    let mut sql = format!("{verb} INTO {head} VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push(',');
            }
            sql.push('?');
        }
        sql.push(')');
    }
    sql
}

/// Inserts event rows, several per statement.
pub(crate) fn insert_events(
    conn: &Connection,
    events: &[(&EventRecord, &str)],
    how: Insert,
) -> Result<(), StoreError> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = multi_row_sql(
            how,
            "events (id, event_type, user_id, tenant, correlation_id, request_id, dedupe_key, \
             accepted_at, body)",
            9,
            chunk.len(),
        );
        let mut stmt = conn.prepare_cached(&sql).db()?;
        struct Row<'a> {
            id: String,
            event_type: &'a str,
            user: &'a str,
            tenant: Option<&'a str>,
            correlation_id: String,
            request_id: Option<String>,
            at: i64,
        }
        let rows: Vec<Row<'_>> = chunk
            .iter()
            .map(|(e, _)| Row {
                id: e.id.to_string(),
                event_type: e.event_type.as_str(),
                user: e.principal.user.as_str(),
                tenant: e.principal.tenant.as_ref().map(TenantId::as_str),
                correlation_id: e.correlation_id.to_string(),
                request_id: e.request.map(|r| r.to_string()),
                at: ts(e.accepted_at),
            })
            .collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 9);
        for ((event, body), row) in chunk.iter().zip(&rows) {
            values.extend([
                &row.id as &dyn rusqlite::ToSql,
                &row.event_type,
                &row.user,
                &row.tenant,
                &row.correlation_id,
                &row.request_id,
                &event.dedupe_key,
                &row.at,
                body,
            ]);
        }
        stmt.execute(values.as_slice()).db()?;
    }
    Ok(())
}

/// Inserts new action rows, several per statement: each leased to its node (attempt 1) or
/// ready (attempt 0), due now.
pub(crate) fn insert_actions(
    conn: &Connection,
    actions: &[(&NewAction, &str)],
    now: Timestamp,
    how: Insert,
) -> Result<(), StoreError> {
    let now_ts = ts(now);
    for chunk in actions.chunks(ROWS_PER_INSERT) {
        let sql = multi_row_sql(
            how,
            "actions (id, event_id, agent, state, attempt, run_at, owner, lease_until, \
             last_error, tenant, updated_at, body)",
            12,
            chunk.len(),
        );
        let mut stmt = conn.prepare_cached(&sql).db()?;
        struct Row<'a> {
            id: String,
            event_id: String,
            agent: &'a str,
            state: &'static str,
            attempt: i64,
            owner: Option<&'a str>,
            lease_until: Option<i64>,
            tenant: Option<&'a str>,
        }
        let rows: Vec<Row<'_>> = chunk
            .iter()
            .map(|(a, _)| {
                let (state, attempt, owner, lease_until) = match &a.lease {
                    Some((node, lease)) => (
                        ActionState::Leased,
                        1,
                        Some(node.as_str()),
                        Some(ts(later(now, *lease))),
                    ),
                    None => (ActionState::Ready, 0, None, None),
                };
                Row {
                    id: a.record.id.to_string(),
                    event_id: a.record.event.id.to_string(),
                    agent: a.record.agent.as_str(),
                    tenant: a.record.tenant().map(TenantId::as_str),
                    state: state.as_str(),
                    attempt,
                    owner,
                    lease_until,
                }
            })
            .collect();
        let none: Option<&str> = None;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 12);
        for ((_, body), row) in chunk.iter().zip(&rows) {
            values.extend([
                &row.id as &dyn rusqlite::ToSql,
                &row.event_id,
                &row.agent,
                &row.state,
                &row.attempt,
                &now_ts,
                &row.owner,
                &row.lease_until,
                &none,
                &row.tenant,
                &now_ts,
                body,
            ]);
        }
        stmt.execute(values.as_slice()).db()?;
    }
    Ok(())
}

/// Commits a write batch's statements (the caller owns the transaction).
pub(crate) fn write(
    conn: &Connection,
    batch: WriteBatch,
    bodies: &Bodies,
    audit: &[RawAudit],
    now: Timestamp,
) -> Result<WriteOutcome, StoreError> {
    let mut out = WriteOutcome {
        accepted: Vec::with_capacity(batch.accepts.len()),
        settled: Vec::with_capacity(batch.settles.len()),
    };
    let mut refused = Vec::new();
    // Events without a dedupe key (the common case) are inserted together, in order; one with a
    // key first flushes those before it, so rows keep the order they came in.
    let mut events: Vec<(&EventRecord, &str)> = Vec::new();
    let mut actions: Vec<(&NewAction, &str)> = Vec::new();
    for (accept, (event_body, action_bodies)) in batch.accepts.iter().zip(&bodies.0) {
        if accept.event.dedupe_key.is_none() {
            events.push((&accept.event, event_body));
            actions.extend(
                accept
                    .actions
                    .iter()
                    .zip(action_bodies.iter().map(String::as_str)),
            );
            out.accepted.push(AcceptOutcome::New);
            continue;
        }
        insert_actions(conn, &actions, now, Insert::Replace)?;
        insert_events(conn, &events, Insert::Replace)?;
        actions.clear();
        events.clear();
        let outcome = accept_event(conn, accept, event_body, action_bodies, now)?;
        if outcome != AcceptOutcome::New {
            refused.push(accept.event.id.to_string());
        }
        out.accepted.push(outcome);
    }
    insert_actions(conn, &actions, now, Insert::Replace)?;
    insert_events(conn, &events, Insert::Replace)?;
    for settle in &batch.settles {
        out.settled.push(settle_one(conn, settle, now)?);
    }
    for result in &batch.results {
        insert_result(conn, result)?;
    }
    if refused.is_empty() {
        insert_audit(conn, audit)?;
    } else {
        // A refused duplicate's steps are not the path of anything stored.
        let kept: Vec<&RawAudit> = audit
            .iter()
            .filter(|r| r.event_id.as_ref().is_none_or(|id| !refused.contains(id)))
            .collect();
        insert_audit(conn, &kept)?;
    }
    Ok(out)
}

fn accept_event(
    conn: &Connection,
    accept: &AcceptEvent,
    event_body: &str,
    action_bodies: &[String],
    now: Timestamp,
) -> Result<AcceptOutcome, StoreError> {
    let event = &accept.event;
    if let Some(key) = &event.dedupe_key {
        let tenant = event.principal.tenant.as_ref().map_or("", TenantId::as_str);
        // Takes the key unless another event holds it within its window: one statement on the
        // common path (a new key), a second one only to read a duplicate's receipt.
        let taken = conn
            .prepare_cached(
                "INSERT INTO dedupe (tenant, key, event_id, correlation_id, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tenant, key) DO UPDATE SET event_id = excluded.event_id, \
                 correlation_id = excluded.correlation_id, expires_at = excluded.expires_at \
                 WHERE dedupe.expires_at <= ?6",
            )
            .db()?
            .execute(params![
                tenant,
                key,
                event.id.to_string(),
                event.correlation_id.to_string(),
                ts(later(now, accept.dedupe_window)),
                ts(now),
            ])
            .db()?;
        if taken == 0 {
            let (id, corr): (String, String) = conn
                .prepare_cached(
                    "SELECT event_id, correlation_id FROM dedupe WHERE tenant = ?1 AND key = ?2",
                )
                .db()?
                .query_row(params![tenant, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .db()?;
            return Ok(AcceptOutcome::Duplicate {
                event_id: parse_id(&id)?,
                correlation_id: parse_id(&corr)?,
            });
        }
    }
    let actions: Vec<(&NewAction, &str)> = accept
        .actions
        .iter()
        .zip(action_bodies.iter().map(String::as_str))
        .collect();
    insert_actions(conn, &actions, now, Insert::Replace)?;
    insert_events(conn, &[(event, event_body)], Insert::Replace)?;
    Ok(AcceptOutcome::New)
}

/// A settle's `UPDATE` with the fence every settle has: still leased, by the same node, at the
/// same attempt (parameters 1 to 3: id, attempt, node).
macro_rules! fenced {
    ($update:literal) => {
        concat!(
            $update,
            " WHERE id = ?1 AND state = 'leased' AND attempt = ?2 AND owner = ?3"
        )
    };
}

/// Settles one attempt if the node still holds it; `false` (and nothing changed) otherwise.
fn settle_one(conn: &Connection, settle: &Settle, now: Timestamp) -> Result<bool, StoreError> {
    let id = settle.action.to_string();
    let attempt = i64::from(settle.attempt);
    let node = settle.node.as_str();
    let now = ts(now);
    // Every statement is fenced the same way: still leased, same attempt, same owner.
    let changed = match &settle.outcome {
        Settlement::Done => conn
            .prepare_cached(fenced!(
                "UPDATE actions SET state = 'done', owner = NULL, lease_until = NULL, \
                 updated_at = ?4"
            ))
            .db()?
            .execute(params![id, attempt, node, now]),
        Settlement::Retry {
            run_at,
            hold_until: Some(until),
            error,
        } => conn
            .prepare_cached(fenced!(
                "UPDATE actions SET run_at = ?5, last_error = ?6, attempt = attempt + 1, \
                 lease_until = ?7, updated_at = ?4"
            ))
            .db()?
            .execute(params![
                id,
                attempt,
                node,
                now,
                ts(*run_at),
                to_json(error)?,
                ts(*until)
            ]),
        Settlement::Retry {
            run_at,
            hold_until: None,
            error,
        } => conn
            .prepare_cached(fenced!(
                "UPDATE actions SET state = 'ready', run_at = ?5, last_error = ?6, owner = NULL, \
                 lease_until = NULL, updated_at = ?4"
            ))
            .db()?
            .execute(params![
                id,
                attempt,
                node,
                now,
                ts(*run_at),
                to_json(error)?
            ]),
        Settlement::Dead { error } => conn
            .prepare_cached(fenced!(
                "UPDATE actions SET state = 'dead', last_error = ?5, owner = NULL, \
                 lease_until = NULL, updated_at = ?4"
            ))
            .db()?
            .execute(params![id, attempt, node, now, to_json(error)?]),
        Settlement::Release => conn
            .prepare_cached(fenced!(
                "UPDATE actions SET state = 'ready', run_at = ?4, owner = NULL, \
                 lease_until = NULL, updated_at = ?4"
            ))
            .db()?
            .execute(params![id, attempt, node, now]),
    }
    .db()?;
    Ok(changed == 1)
}

fn insert_result(conn: &Connection, result: &ResultRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO results (request_id, action_id, agent, tenant, expires_at, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .db()?
    .execute(params![
        result.request.to_string(),
        result.action.to_string(),
        result.agent.as_str(),
        result.tenant.as_ref().map(TenantId::as_str),
        ts(result.expires_at),
        to_json(result)?,
    ])
    .db()?;
    Ok(())
}

/// Encodes audit records (on the caller's thread, not the writer's), folding each
/// `rule_matched` into the `action_dispatched` that follows it when the dispatch says all it
/// says (see [`crate::codec::FOLDED_STEP`]).
pub(crate) fn encode_audit(records: Vec<AuditRecord>) -> Result<Vec<RawAudit>, StoreError> {
    let mut out = Vec::with_capacity(records.len());
    let mut records = records.into_iter().peekable();
    while let Some(r) = records.next() {
        if let Some(next) = records.peek_mut() {
            if crate::codec::folds_into(&r, next) {
                next.step = crate::codec::FOLDED_STEP.to_owned();
                continue;
            }
        }
        out.push(RawAudit::encode(r)?);
    }
    Ok(out)
}

/// Audit rows per INSERT statement: one statement per row costs more than its row.
const AUDIT_ROWS_PER_INSERT: usize = 32;

pub(crate) fn insert_audit<R: std::borrow::Borrow<RawAudit>>(
    conn: &Connection,
    records: &[R],
) -> Result<(), StoreError> {
    for chunk in records.chunks(AUDIT_ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO audit (at, step, event_id, correlation_id, request_id, action_id, \
             event_type, user_id, tenant, agent, detail) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?,?,?)");
        }
        let mut stmt = conn.prepare_cached(&sql).db()?;
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 11);
        for r in chunk {
            let r: &RawAudit = r.borrow();
            values.extend([
                &r.at as &dyn rusqlite::ToSql,
                &r.step,
                &r.event_id,
                &r.correlation_id,
                &r.request_id,
                &r.action_id,
                &r.event_type,
                &r.user,
                &r.tenant,
                &r.agent,
                &r.detail,
            ]);
        }
        stmt.execute(values.as_slice()).db()?;
    }
    Ok(())
}

/// Claims up to `limit` due ready actions, oldest first.
pub(crate) fn claim(
    conn: &Connection,
    node: &NodeId,
    limit: usize,
    lease: Duration,
    now: Timestamp,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(
            "UPDATE actions SET state = 'leased', attempt = attempt + 1, owner = ?1, \
             lease_until = ?2, updated_at = ?3 \
             WHERE seq IN (SELECT seq FROM actions WHERE state = 'ready' AND run_at <= ?3 \
                           ORDER BY run_at, seq LIMIT ?4) \
             RETURNING run_at, seq, attempt, body",
        )
        .db()?;
    let rows = stmt
        .query_map(
            params![
                node.as_str(),
                ts(later(now, lease)),
                ts(now),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .db()?;
    let mut rows = rows.collect::<Result<Vec<_>, _>>().db()?;
    // RETURNING gives rows in no particular order.
    rows.sort_unstable_by_key(|r| (r.0, r.1));
    rows.into_iter()
        .map(|(_, _, n, body)| {
            Ok(Claimed {
                record: from_json("action", &body)?,
                attempt: attempt(n)?,
            })
        })
        .collect()
}

/// Extends `node`'s leases to at least `now + lease`; returns how many it holds.
pub(crate) fn heartbeat(
    conn: &Connection,
    node: &NodeId,
    lease: Duration,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let until = ts(later(now, lease));
    let held: i64 = conn
        .prepare_cached("SELECT count(*) FROM actions WHERE owner = ?1 AND state = 'leased'")
        .db()?
        .query_row(params![node.as_str()], |r| r.get(0))
        .db()?;
    conn.prepare_cached(
        "UPDATE actions SET lease_until = ?2 WHERE owner = ?1 AND state = 'leased' \
         AND (lease_until IS NULL OR lease_until < ?2)",
    )
    .db()?
    .execute(params![node.as_str(), until])
    .db()?;
    Ok(held.max(0) as u64)
}

/// Makes leased actions whose lease ended ready again.
pub(crate) fn recover_expired(conn: &Connection, now: Timestamp) -> Result<u64, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE actions SET state = 'ready', owner = NULL, lease_until = NULL, \
             run_at = min(run_at, ?1), updated_at = ?1 \
             WHERE state = 'leased' AND lease_until <= ?1",
        )
        .db()?
        .execute(params![ts(now)])
        .db()?;
    Ok(n as u64)
}

/// Makes a dead action ready again.
pub(crate) fn redrive(
    conn: &Connection,
    id: atamo_core::ActionId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE actions SET state = 'ready', run_at = ?2, updated_at = ?2 \
             WHERE id = ?1 AND state = 'dead'",
        )
        .db()?
        .execute(params![id.to_string(), ts(now)])
        .db()?;
    Ok(n == 1)
}

/// Deletes what the retention no longer keeps.
pub(crate) fn prune(
    conn: &Connection,
    retention: &Retention,
    now: Timestamp,
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport {
        results: conn
            .prepare_cached("DELETE FROM results WHERE expires_at <= ?1")
            .db()?
            .execute(params![ts(now)])
            .db()? as u64,
        dedupe_keys: conn
            .prepare_cached("DELETE FROM dedupe WHERE expires_at <= ?1")
            .db()?
            .execute(params![ts(now)])
            .db()? as u64,
        ..PruneReport::default()
    };
    // The tenants with their own age, as a JSON array for `json_each` (one cached statement
    // whatever their number).
    let overridden = to_json(&retention.tenants.keys().collect::<Vec<_>>())?;
    let cutoff = |age| ts(earlier(now, age));

    // Audit entries, then done actions, then events left without actions: the same age rule
    // for each, by tenant.
    report.audit = prune_table(
        conn,
        retention,
        &overridden,
        cutoff,
        "DELETE FROM audit WHERE at < ?1 \
         AND (tenant IS NULL OR tenant NOT IN (SELECT value FROM json_each(?2)))",
        "DELETE FROM audit WHERE tenant = ?2 AND at < ?1",
    )?;
    report.actions = prune_table(
        conn,
        retention,
        &overridden,
        cutoff,
        "DELETE FROM actions WHERE state = 'done' AND updated_at < ?1 \
         AND (tenant IS NULL OR tenant NOT IN (SELECT value FROM json_each(?2)))",
        "DELETE FROM actions WHERE state = 'done' AND updated_at < ?1 AND tenant = ?2",
    )?;
    report.events = prune_table(
        conn,
        retention,
        &overridden,
        cutoff,
        "DELETE FROM events WHERE accepted_at < ?1 \
         AND (tenant IS NULL OR tenant NOT IN (SELECT value FROM json_each(?2))) \
         AND NOT EXISTS (SELECT 1 FROM actions WHERE actions.event_id = events.id)",
        "DELETE FROM events WHERE accepted_at < ?1 AND tenant = ?2 \
         AND NOT EXISTS (SELECT 1 FROM actions WHERE actions.event_id = events.id)",
    )?;
    Ok(report)
}

/// Runs `default_sql` (`?1` the cutoff, `?2` the overridden tenants) when there is a default
/// age, and `tenant_sql` (`?1` the cutoff, `?2` the tenant) for each tenant's own age.
fn prune_table(
    conn: &Connection,
    retention: &Retention,
    overridden: &str,
    cutoff: impl Fn(Duration) -> i64,
    default_sql: &str,
    tenant_sql: &str,
) -> Result<u64, StoreError> {
    let mut n = 0;
    if let Some(age) = retention.max_age {
        n += conn
            .prepare_cached(default_sql)
            .db()?
            .execute(params![cutoff(age), overridden])
            .db()? as u64;
    }
    for (tenant, age) in &retention.tenants {
        n += conn
            .prepare_cached(tenant_sql)
            .db()?
            .execute(params![cutoff(*age), tenant.as_str()])
            .db()? as u64;
    }
    Ok(n)
}

/// Inserts the event and action rows of `batches` with plain inserts, one transaction per
/// batch: no dedupe, no settles, results or audit. Returns the rows inserted.
pub(crate) fn baseline_batch(
    conn: &Connection,
    batch: &WriteBatch,
    bodies: &Bodies,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut events: Vec<(&EventRecord, &str)> = Vec::new();
    let mut actions: Vec<(&NewAction, &str)> = Vec::new();
    for (accept, (event_body, action_bodies)) in batch.accepts.iter().zip(&bodies.0) {
        events.push((&accept.event, event_body));
        actions.extend(
            accept
                .actions
                .iter()
                .zip(action_bodies.iter().map(String::as_str)),
        );
    }
    insert_events(conn, &events, Insert::Plain)?;
    insert_actions(conn, &actions, now, Insert::Plain)?;
    Ok((events.len() + actions.len()) as u64)
}

/// Writes a registry entry as `mode` says, with its audit records when it is written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn registry_put(
    conn: &Connection,
    kind: &str,
    id: &str,
    body: &str,
    mode: RegistryWrite,
    audit: &[RawAudit],
    now: Timestamp,
) -> Result<RegistryOutcome, StoreError> {
    // The writer holds the database's write lock: nothing changes between the two statements.
    let current: Option<i64> = conn
        .prepare_cached("SELECT revision FROM registry WHERE kind = ?1 AND id = ?2")
        .db()?
        .query_row(params![kind, id], |r| r.get(0))
        .optional()
        .db()?;
    let revision = match (current, mode) {
        (Some(_), RegistryWrite::Create) => return Ok(RegistryOutcome::Exists),
        (None, RegistryWrite::Replace) => return Ok(RegistryOutcome::Missing),
        (Some(old), _) => old.saturating_add(1),
        (None, _) => 1,
    };
    conn.prepare_cached(
        "INSERT INTO registry (kind, id, revision, updated_at, body) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, id) DO UPDATE SET revision = excluded.revision, \
         updated_at = excluded.updated_at, body = excluded.body",
    )
    .db()?
    .execute(params![kind, id, revision, ts(now), body])
    .db()?;
    insert_audit(conn, audit)?;
    Ok(RegistryOutcome::Written {
        revision: u64::try_from(revision)
            .map_err(|_| StoreError::Corrupt(format!("registry revision {revision}")))?,
    })
}

/// Deletes a registry entry, with its audit records when there was one.
pub(crate) fn registry_delete(
    conn: &Connection,
    kind: &str,
    id: &str,
    audit: &[RawAudit],
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM registry WHERE kind = ?1 AND id = ?2")
        .db()?
        .execute(params![kind, id])
        .db()?;
    if n > 0 {
        insert_audit(conn, audit)?;
    }
    Ok(n > 0)
}

/// Reads `PRAGMA synchronous`.
pub(crate) fn synchronous(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).db()
}
