//! The audit log, with its folded rows read back as two steps.

use atamo_core::store::StoreError;
use atamo_core::store::{AuditQuery, AuditRecord, Cursor, Page};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection};

use crate::codec::{audit_columns, ts, RawAudit, SqlResult};

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
