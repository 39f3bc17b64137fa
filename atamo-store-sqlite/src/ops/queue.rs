//! The action queue: claims, heartbeats, lease recovery and redrives.

use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{later, Claimed, NodeId, StoreError};
use rusqlite::{params, Connection};

use crate::codec::{attempt, from_json, ts, SqlResult};

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
