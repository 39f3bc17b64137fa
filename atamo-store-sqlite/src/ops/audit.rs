//! Audit rows: encoded (and folded) on the caller's thread, inserted several per statement.

use atamo_core::store::{AuditRecord, StoreError};
use rusqlite::Connection;

use crate::codec::{RawAudit, SqlResult};

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
