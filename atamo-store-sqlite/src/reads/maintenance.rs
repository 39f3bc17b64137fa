//! Statistics, the size on disk and the integrity check.

use std::path::Path;

use atamo_core::message::Timestamp;
use atamo_core::store::{ActionState, CheckReport, StoreError, StoreStats};
use rusqlite::{params, Connection};

use super::pool::snapshot;
use crate::codec::{from_ts, parse_state, ts, SqlResult};
use crate::schema::{self, SCHEMA_VERSION, TABLES};

/// The size of the database file plus its WAL.
pub(crate) fn size_on_disk(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    len(path) + len(Path::new(&wal))
}

pub(crate) fn stats(conn: &Connection, now: Timestamp) -> Result<StoreStats, StoreError> {
    snapshot(conn, |conn| {
        let mut stats = StoreStats {
            backend: "sqlite".to_owned(),
            ..StoreStats::default()
        };
        for st in ActionState::ALL {
            stats.actions.insert(st, 0);
        }
        let mut stmt = conn
            .prepare_cached("SELECT state, count(*) FROM actions GROUP BY state")
            .db()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .db()?;
        for row in rows {
            let (state, n) = row.db()?;
            stats.actions.insert(parse_state(&state)?, n.max(0) as u64);
        }
        let mut stmt = conn
            .prepare_cached(
                "SELECT agent, count(*) FROM actions WHERE state = 'ready' GROUP BY agent",
            )
            .db()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .db()?;
        for row in rows {
            let (agent, n) = row.db()?;
            stats.ready_by_agent.insert(agent.into(), n.max(0) as u64);
        }
        let oldest: Option<i64> = conn
            .prepare_cached("SELECT min(run_at) FROM actions WHERE state = 'ready'")
            .db()?
            .query_row([], |r| r.get(0))
            .db()?;
        stats.oldest_ready = oldest.map(from_ts).transpose()?;
        let count = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<u64, StoreError> {
            let n: i64 = conn
                .prepare_cached(sql)
                .db()?
                .query_row(args, |r| r.get(0))
                .db()?;
            Ok(n.max(0) as u64)
        };
        stats.events = count("SELECT count(*) FROM events", &[])?;
        // A folded row holds two entries.
        stats.audit_entries = count(
            "SELECT count(*) + count(CASE WHEN step = 'rule_matched+action_dispatched' THEN 1 END) FROM audit",
            &[],
        )?;
        stats.results = count(
            "SELECT count(*) FROM results WHERE expires_at > ?1",
            &[&ts(now)],
        )?;
        Ok(stats)
    })
}

/// Problems listed per check at most; past that, only their number.
const MAX_LISTED: i64 = 100;

pub(crate) fn check(conn: &Connection) -> Result<CheckReport, StoreError> {
    snapshot(conn, check_in)
}

fn check_in(conn: &Connection) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport::default();
    // A damaged file makes queries fail with `Corrupt`: that is a finding, not a failure of
    // the check. Other errors (the file cannot be read at all) end the check.
    let run = |name: &str,
               report: &mut CheckReport,
               f: &dyn Fn(&Connection) -> Result<Vec<String>, StoreError>| {
        report.checked.push(name.to_owned());
        match f(conn) {
            Ok(problems) => {
                report.problems.extend(problems);
                Ok(())
            }
            Err(e @ StoreError::Corrupt { .. }) => {
                report.problems.push(format!("{name}: {}", e.detail()));
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    run("sqlite integrity", &mut report, &|conn| {
        let mut stmt = conn.prepare("PRAGMA integrity_check(100)").db()?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .db()?
            .collect::<Result<Vec<_>, _>>()
            .db()?;
        Ok(lines
            .into_iter()
            .filter(|l| l != "ok")
            .map(|l| format!("sqlite integrity: {l}"))
            .collect())
    })?;
    run("schema version", &mut report, &|conn| {
        let found = schema::version(conn)?;
        let mut problems = Vec::new();
        if found != SCHEMA_VERSION {
            problems.push(format!(
                "schema version is {found}, expected {SCHEMA_VERSION}"
            ));
        }
        for table in TABLES {
            let exists: bool = conn
                .query_row(
                    "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    params![table],
                    |r| r.get(0),
                )
                .db()?;
            if !exists {
                problems.push(format!("table {table} is missing"));
            }
        }
        Ok(problems)
    })?;
    run("lease owners", &mut report, &|conn| {
        listed(
            conn,
            "SELECT id, state, owner FROM actions \
             WHERE (state = 'leased') <> (owner IS NOT NULL) LIMIT ?1",
            "SELECT count(*) FROM actions WHERE (state = 'leased') <> (owner IS NOT NULL)",
            |r| {
                Ok(format!(
                    "action {} is {} with owner {:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?
                ))
            },
        )
    })?;
    run("action events", &mut report, &|conn| {
        listed(
            conn,
            "SELECT id, event_id FROM actions \
             WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.id = actions.event_id) LIMIT ?1",
            "SELECT count(*) FROM actions \
             WHERE NOT EXISTS (SELECT 1 FROM events WHERE events.id = actions.event_id)",
            |r| {
                Ok(format!(
                    "action {} names event {}, which is not stored",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            },
        )
    })?;
    run("action states", &mut report, &|conn| {
        listed(
            conn,
            "SELECT id, state FROM actions \
             WHERE state NOT IN ('ready', 'leased', 'done', 'dead') LIMIT ?1",
            "SELECT count(*) FROM actions \
             WHERE state NOT IN ('ready', 'leased', 'done', 'dead')",
            |r| {
                Ok(format!(
                    "action {} has the unknown state {:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            },
        )
    })?;
    Ok(report)
}

/// The first [`MAX_LISTED`] problems `list_sql` finds, and how many more `count_sql` counts.
fn listed(
    conn: &Connection,
    list_sql: &str,
    count_sql: &str,
    describe: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<String>,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(list_sql).db()?;
    let mut problems = stmt
        .query_map(params![MAX_LISTED], |r| describe(r))
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    if problems.len() as i64 == MAX_LISTED {
        let total: i64 = conn.query_row(count_sql, [], |r| r.get(0)).db()?;
        if total > MAX_LISTED {
            problems.push(format!("... and {} more like these", total - MAX_LISTED));
        }
    }
    Ok(problems)
}
