//! A write batch: accepted events (with dedupe), settles fenced by attempt, results and audit.

use atamo_core::message::Timestamp;
use atamo_core::store::{
    later, AcceptEvent, AcceptOutcome, EventRecord, NewAction, ResultRecord, Settle, Settlement,
    StoreError, WriteBatch, WriteOutcome,
};
use atamo_core::TenantId;
use rusqlite::{params, Connection};

use super::audit::insert_audit;
use super::insert::{insert_actions, insert_events, Bodies, Insert};
use crate::codec::{parse_id, to_json, ts, RawAudit, SqlResult};

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
