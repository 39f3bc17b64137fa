//! Reads: a small pool of read connections used on blocking threads, and the queries.
//!
//! In WAL mode a reader sees the last committed state and never waits for the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use atamo_core::message::Timestamp;
use atamo_core::store::{
    page_size, ActionRow, ActionState, AuditQuery, AuditRecord, CheckReport, Cursor, EventQuery,
    EventRecord, Page, RegistryEntry, ResultRecord, StoreError, StoreStats,
};
use atamo_core::{ActionId, EventId, RequestId};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OpenFlags, OptionalExtension};
use tokio::sync::Semaphore;

use crate::codec::{
    action_columns, audit_columns, from_json, from_ts, parse_state, ts, RawAction, RawAudit,
    SqlResult,
};
use crate::schema::{self, SCHEMA_VERSION, TABLES};

/// Read connections, opened on demand and kept for reuse, at most `permits` in use at once.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

fn lock(idle: &Mutex<Vec<Connection>>) -> MutexGuard<'_, Vec<Connection>> {
    match idle.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Readers {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, max: usize) -> Self {
        Self {
            path,
            busy_timeout,
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Runs `f` on a read connection, on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.idle.clone();
        let path = self.path.clone();
        let busy_timeout = self.busy_timeout;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = match lock(&idle).pop() {
                Some(conn) => conn,
                None => open_reader(&path, busy_timeout)?,
            };
            let out = f(&conn);
            // A connection left inside a transaction (after a failed read) is not reused.
            if conn.is_autocommit() {
                lock(&idle).push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(busy_timeout).db()?;
    conn.pragma_update(None, "query_only", true).db()?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Runs `f` in one read transaction, so that its queries see one snapshot.
fn snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn.unchecked_transaction().db()?;
    // Nothing was written: ending with a rollback (when `tx` drops) is the same as a commit,
    // and does not fail after a query met a damaged page.
    f(&tx)
}

pub(crate) fn action(conn: &Connection, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        action_columns!(),
        " FROM actions WHERE id = ?1"
    ))
    .db()?
    .query_row(params![id.to_string()], RawAction::from_row)
    .optional()
    .db()?
    .map(RawAction::decode)
    .transpose()
}

pub(crate) fn dead_letters(
    conn: &Connection,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page<ActionRow>, StoreError> {
    let size = page_size(limit);
    let before = cursor.map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
    let mut stmt = conn
        .prepare_cached(concat!(
            "SELECT ",
            action_columns!(),
            " FROM actions WHERE state = 'dead' AND seq < ?1 ORDER BY seq DESC LIMIT ?2"
        ))
        .db()?;
    let mut raw = stmt
        .query_map(params![before, size as i64 + 1], RawAction::from_row)
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    let more = raw.len() > size;
    raw.truncate(size);
    let next = match raw.last() {
        Some(last) if more => Some(Cursor(last.seq.max(0) as u64)),
        _ => None,
    };
    Ok(Page {
        items: raw
            .into_iter()
            .map(RawAction::decode)
            .collect::<Result<_, _>>()?,
        next,
    })
}

pub(crate) fn results(
    conn: &Connection,
    request: RequestId,
    now: Timestamp,
) -> Result<Vec<ResultRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT body FROM results WHERE request_id = ?1 AND expires_at > ?2 ORDER BY seq",
        )
        .db()?;
    let bodies = stmt
        .query_map(params![request.to_string(), ts(now)], |r| {
            r.get::<_, String>(0)
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    bodies.iter().map(|b| from_json("result", b)).collect()
}

pub(crate) fn event(conn: &Connection, id: EventId) -> Result<Option<EventRecord>, StoreError> {
    conn.prepare_cached("SELECT body FROM events WHERE id = ?1")
        .db()?
        .query_row(params![id.to_string()], |r| r.get::<_, String>(0))
        .optional()
        .db()?
        .map(|b| from_json("event", &b))
        .transpose()
}

pub(crate) fn audit(conn: &Connection, q: &AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
    let size = q.page_size();
    let mut sql = String::from(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit WHERE 1 = 1"
    ));
    let mut args: Vec<SqlValue> = Vec::new();
    let mut filter = |column: &str, value: Option<String>| {
        if let Some(v) = value {
            args.push(SqlValue::Text(v));
            sql.push_str(&format!(" AND {column} = ?{}", args.len()));
        }
    };
    filter("user_id", q.user.as_ref().map(|v| v.as_str().to_owned()));
    filter("tenant", q.tenant.as_ref().map(|v| v.as_str().to_owned()));
    filter("agent", q.agent.as_ref().map(|v| v.as_str().to_owned()));
    filter(
        "event_type",
        q.event_type.as_ref().map(|v| v.as_str().to_owned()),
    );
    filter("event_id", q.event_id.map(|v| v.to_string()));
    filter("correlation_id", q.correlation_id.map(|v| v.to_string()));
    filter("request_id", q.request_id.map(|v| v.to_string()));
    filter("action_id", q.action_id.map(|v| v.to_string()));
    // A folded row answers for both of its steps (see `FOLDED_STEP`).
    if let Some(step) = &q.step {
        args.push(SqlValue::Text(step.clone()));
        if step == "rule_matched" || step == "action_dispatched" {
            args.push(SqlValue::Text(crate::codec::FOLDED_STEP.to_owned()));
            sql.push_str(&format!(
                " AND step IN (?{}, ?{})",
                args.len() - 1,
                args.len()
            ));
        } else {
            sql.push_str(&format!(" AND step = ?{}", args.len()));
        }
    }
    let mut bound = |op: &str, value: Option<i64>| {
        if let Some(v) = value {
            args.push(SqlValue::Integer(v));
            sql.push_str(&format!(" {op}{}", args.len()));
        }
    };
    bound("AND at >= ?", q.since.map(ts));
    bound("AND at < ?", q.until.map(ts));
    // Record seq `2n + 1` (and `2n`) come from row `n`: the rows at or before `(c - 1) / 2`
    // hold every record before cursor `c`.
    bound(
        "AND seq <= ?",
        q.cursor
            .map(|c| i64::try_from(c.0.saturating_sub(1) / 2).unwrap_or(i64::MAX)),
    );
    args.push(SqlValue::Integer(size as i64 + 1));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));

    // One statement per combination of filters, so the cache holds a handful at most.
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let raw = stmt
        .query_map(params_from_iter(args), RawAudit::from_row)
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    let more_rows = raw.len() > size;
    let mut items = Vec::with_capacity(raw.len() + 4);
    for r in raw {
        r.decode_all(&mut items)?;
    }
    // A folded row's two records are checked one by one (a match has no action id, and its
    // step is not the dispatch's), as is the cursor, which may fall between them.
    items.retain(|r| q.matches(r) && q.cursor.is_none_or(|c| r.seq < c.0));
    let more = more_rows || items.len() > size;
    items.truncate(size);
    if q.cursor == Some(Cursor(0)) {
        items.clear();
    }
    let next = match items.last() {
        Some(last) if more => Some(Cursor(last.seq)),
        _ => None,
    };
    Ok(Page { items, next })
}

/// The value a payload filter compares, for the JSON path `?N` of the event's body: a string's
/// text, a number's or boolean's JSON text (`->` keeps a number as it was written), otherwise
/// NULL, which matches nothing.
const PAYLOAD_TEXT: &str = "CASE json_type(body, ?N) WHEN 'text' THEN json_extract(body, ?N) \
     WHEN 'integer' THEN body -> ?N WHEN 'real' THEN body -> ?N \
     WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END";

/// The SQLite JSON path of a payload field: `$.payload."name"."name"...`. Each name is quoted
/// and the characters that end or escape a quoted name (`"`, `\`), and control characters,
/// are written as `\uXXXX` escapes, which SQLite undoes when it compares names (3.45 and
/// newer): any field name makes a valid path that means just that name. The path is a bound
/// parameter, never part of the statement's text.
pub(crate) fn payload_path(names: &[String]) -> String {
    use std::fmt::Write as _;
    let mut path = String::from("$.payload");
    for name in names {
        path.push_str(".\"");
        for c in name.chars() {
            if c == '"' || c == '\\' || c.is_control() {
                // Writing to a String cannot fail.
                let _ = write!(path, "\\u{:04x}", u32::from(c));
            } else {
                path.push(c);
            }
        }
        path.push('"');
    }
    path
}

/// The event query's statement (only the filters set) and its arguments.
fn events_sql(q: &EventQuery, size: usize) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("SELECT seq, body FROM events WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    /// Appends `AND <condition>?N`, `?N` binding `value`.
    fn filter(sql: &mut String, args: &mut Vec<SqlValue>, condition: &str, value: SqlValue) {
        args.push(value);
        sql.push_str(&format!(" AND {condition}?{}", args.len()));
    }
    let text = |s: &str| SqlValue::Text(s.to_owned());
    if let Some(v) = &q.event_type {
        filter(&mut sql, &mut args, "event_type = ", text(v.as_str()));
    }
    if let Some(v) = &q.user {
        filter(&mut sql, &mut args, "user_id = ", text(v.as_str()));
    }
    if let Some(v) = &q.tenant {
        filter(&mut sql, &mut args, "tenant = ", text(v.as_str()));
    }
    if let Some(v) = q.since {
        filter(
            &mut sql,
            &mut args,
            "accepted_at >= ",
            SqlValue::Integer(ts(v)),
        );
    }
    if let Some(v) = q.until {
        filter(
            &mut sql,
            &mut args,
            "accepted_at < ",
            SqlValue::Integer(ts(v)),
        );
    }
    if let Some(c) = q.cursor {
        let before = i64::try_from(c.0).unwrap_or(i64::MAX);
        filter(&mut sql, &mut args, "seq < ", SqlValue::Integer(before));
    }
    for f in &q.payload {
        args.push(SqlValue::Text(payload_path(&f.path)));
        let compared = PAYLOAD_TEXT.replace("?N", &format!("?{}", args.len()));
        filter(
            &mut sql,
            &mut args,
            &format!("{compared} = "),
            SqlValue::Text(f.value.clone()),
        );
    }
    args.push(SqlValue::Integer(size as i64 + 1));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    (sql, args)
}

pub(crate) fn events(conn: &Connection, q: &EventQuery) -> Result<Page<EventRecord>, StoreError> {
    q.validate()?;
    let size = q.page_size();
    let (sql, args) = events_sql(q, size);
    // The statement's text depends on which filters are set and how many payload filters
    // there are, not on their values: the cache holds a handful.
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next = match rows.last() {
        Some((seq, _)) if more => {
            Some(Cursor(u64::try_from(*seq).map_err(|_| {
                StoreError::Corrupt(format!("event seq {seq}"))
            })?))
        }
        _ => None,
    };
    let items = rows
        .iter()
        .map(|(_, body)| from_json("event", body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next })
}

/// The columns [`registry_entry`] reads, in order.
const REGISTRY_COLUMNS: &str = "kind, id, revision, updated_at, body";

fn registry_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode_registry(
    (kind, id, revision, updated_at, body): (String, String, i64, i64, String),
) -> Result<RegistryEntry, StoreError> {
    Ok(RegistryEntry {
        revision: u64::try_from(revision)
            .map_err(|_| StoreError::Corrupt(format!("registry revision {revision}")))?,
        updated_at: from_ts(updated_at)?,
        body: from_json("registry entry", &body)?,
        kind,
        id,
    })
}

pub(crate) fn registry_get(
    conn: &Connection,
    kind: &str,
    id: &str,
) -> Result<Option<RegistryEntry>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = ?1 AND id = ?2"
    ))
    .db()?
    .query_row(params![kind, id], registry_entry)
    .optional()
    .db()?
    .map(decode_registry)
    .transpose()
}

pub(crate) fn registry_list(
    conn: &Connection,
    kind: &str,
) -> Result<Vec<RegistryEntry>, StoreError> {
    // Text compares byte by byte (BINARY): the order of ids is their byte order.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = ?1 ORDER BY id"
        ))
        .db()?;
    let rows = stmt
        .query_map(params![kind], registry_entry)
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    rows.into_iter().map(decode_registry).collect()
}

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
            Err(StoreError::Corrupt(e)) => {
                report.problems.push(format!("{name}: {e}"));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn payload_paths_quote_every_name() {
        assert_eq!(payload_path(&[]), "$.payload");
        assert_eq!(
            payload_path(&names(&["order", "state"])),
            r#"$.payload."order"."state""#
        );
        assert_eq!(
            payload_path(&names(&["a.b", "q\"x", "b\\s", "", "$[0]", "new\nline"])),
            r#"$.payload."a.b"."q\u0022x"."b\u005cs".""."$[0]"."new\u000aline""#
        );
    }

    /// SQLite finds exactly the field each path names.
    #[test]
    fn payload_paths_find_odd_names() {
        let conn = Connection::open_in_memory().unwrap();
        let body = serde_json::json!({"payload": {
            "a.b": 1, "a": {"b": 2}, "q\"x": 3, "b\\s": 4, "": 5, "$[0]": 6, "new\nline": 7,
            "\u{1}": 8, "ü": {"✓": 9}
        }})
        .to_string();
        for (path, want) in [
            (names(&["a.b"]), Some(1)),
            (names(&["a", "b"]), Some(2)),
            (names(&["q\"x"]), Some(3)),
            (names(&["b\\s"]), Some(4)),
            (names(&[""]), Some(5)),
            (names(&["$[0]"]), Some(6)),
            (names(&["new\nline"]), Some(7)),
            (names(&["\u{1}"]), Some(8)),
            (names(&["ü", "✓"]), Some(9)),
            (names(&["q"]), None),
            (names(&["a", "b", "c"]), None),
        ] {
            let got: Option<i64> = conn
                .query_row(
                    "SELECT json_extract(?1, ?2)",
                    params![body, payload_path(&path)],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, want, "{path:?}");
        }
    }

    /// Listings read in `seq` order without sorting; a tenant's through its index.
    #[test]
    fn listings_need_no_sort() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("store.db")).unwrap();
        schema::migrate(&conn).unwrap();
        let plan = |q: &EventQuery| {
            let (sql, args) = events_sql(q, q.page_size());
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let all = plan(&EventQuery::default());
        assert!(all.starts_with("SCAN events"), "{all}");
        let by_tenant = plan(&EventQuery {
            tenant: Some("acme".into()),
            event_type: Some("t".into()),
            payload: vec![atamo_core::store::PayloadFilter::parse("a", "b")],
            cursor: Some(Cursor(10)),
            ..EventQuery::default()
        });
        assert!(
            by_tenant.contains("USING INDEX events_tenant"),
            "{by_tenant}"
        );
        for p in [&all, &by_tenant] {
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }
}
