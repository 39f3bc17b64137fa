//! Pruning by retention, and the writer's `PRAGMA synchronous`.

use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{earlier, PruneReport, Retention, StoreError};
use rusqlite::{params, Connection};

use crate::codec::{to_json, ts, SqlResult};

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

/// Reads `PRAGMA synchronous`.
pub(crate) fn synchronous(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).db()
}
