//! Converting between records and columns.

use atamo_core::ids::{
    ActionId, AgentId, CorrelationId, EventId, EventType, RequestId, TenantId, UserId,
};
use atamo_core::message::Timestamp;
use atamo_core::store::{ActionRecord, ActionRow, ActionState, AuditRecord, NodeId, StoreError};
use serde_json::Value;
use tokio_postgres::types::{FromSql, Json};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::corrupt;

/// A time as stored: unix microseconds (times past year 294,247 saturate).
pub(crate) fn ts(t: Timestamp) -> i64 {
    i64::try_from(t.unix_micros()).unwrap_or(i64::MAX)
}

/// A stored time.
pub(crate) fn read_ts(micros: i64) -> Result<Timestamp, StoreError> {
    u64::try_from(micros)
        .map(Timestamp::from_unix_micros)
        .map_err(|_| corrupt("time", format!("{micros} is before 1970")))
}

/// A count or sequence number as stored (saturating).
pub(crate) fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count or sequence number.
pub(crate) fn read_int(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| corrupt("count", format!("{n} is negative")))
}

/// Column `idx` of `row`, or `Corrupt` naming it.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| {
        let name = row.columns().get(idx).map_or("?", |c| c.name());
        StoreError::corrupt(format!("column {name} does not decode")).with_source(e)
    })
}

/// The columns [`action_row`] reads, in its order.
pub(crate) const ACTION_COLUMNS: &str =
    "record, state, attempt, run_at, owner, lease_until, last_error, updated_at";

/// An action from [`ACTION_COLUMNS`] starting at column `at`.
pub(crate) fn action_row(row: &Row, at: usize) -> Result<ActionRow, StoreError> {
    let Json(record): Json<ActionRecord> = get(row, at)?;
    let state: &str = get(row, at + 1)?;
    let state = ActionState::parse(state)
        .ok_or_else(|| corrupt("action state", format!("{state:?} is not a state")))?;
    let attempt: i64 = get(row, at + 2)?;
    let attempt = u32::try_from(attempt)
        .map_err(|_| corrupt("action attempt", format!("{attempt} is out of range")))?;
    let owner: Option<&str> = get(row, at + 4)?;
    let lease_until: Option<i64> = get(row, at + 5)?;
    let last_error: Option<Json<Value>> = get(row, at + 6)?;
    Ok(ActionRow {
        record,
        state,
        attempt,
        run_at: read_ts(get(row, at + 3)?)?,
        owner: owner.map(NodeId::new),
        lease_until: lease_until.map(read_ts).transpose()?,
        last_error: last_error.map(|Json(v)| v),
        updated_at: read_ts(get(row, at + 7)?)?,
    })
}

/// The columns [`audit_row`] reads, in its order.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, step, event_id, correlation_id, request_id, \
     action_id, event_type, user_id, tenant, agent, detail";

/// An audit entry from [`AUDIT_COLUMNS`].
pub(crate) fn audit_row(row: &Row) -> Result<AuditRecord, StoreError> {
    let name = |idx: usize| -> Result<Option<String>, StoreError> { get(row, idx) };
    let id = |idx: usize| -> Result<Option<Uuid>, StoreError> { get(row, idx) };
    let Json(detail): Json<Value> = get(row, 11)?;
    Ok(AuditRecord {
        seq: read_int(get(row, 0)?)?,
        at: read_ts(get(row, 1)?)?,
        step: get(row, 2)?,
        event_id: id(3)?.map(EventId::from_uuid),
        correlation_id: id(4)?.map(CorrelationId::from_uuid),
        request_id: id(5)?.map(RequestId::from_uuid),
        action_id: id(6)?.map(ActionId::from_uuid),
        event_type: name(7)?.map(EventType::from),
        user: name(8)?.map(UserId::from),
        tenant: name(9)?.map(TenantId::from),
        agent: name(10)?.map(AgentId::from),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_saturate() {
        let t = Timestamp::from_unix_micros(1_800_000_000_000_000);
        assert_eq!(read_ts(ts(t)).ok(), Some(t));
        assert_eq!(
            ts(Timestamp::from_unix_micros(u64::MAX)),
            Timestamp::MAX.unix_micros() as i64
        );
        assert!(read_ts(-1).is_err());
        assert_eq!(int(u64::MAX), i64::MAX);
        assert!(read_int(-5).is_err());
    }
}
