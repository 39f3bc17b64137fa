//! Event and action rows, inserted several per statement.

use atamo_core::message::Timestamp;
use atamo_core::store::{
    later, AcceptEvent, ActionState, EventRecord, NewAction, StoreError, WriteBatch,
};
use atamo_core::TenantId;
use rusqlite::Connection;

use crate::codec::{to_json, ts, SqlResult};

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
pub(crate) struct Bodies(pub(super) Vec<(String, Vec<String>)>);

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
