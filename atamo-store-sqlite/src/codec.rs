//! Conversions between the store's types and SQLite values, and error mapping.

use std::fmt::Display;
use std::str::FromStr;

use atamo_core::message::Timestamp;
use atamo_core::store::{ActionRecord, ActionRow, ActionState, AuditRecord, NodeId, StoreError};
use rusqlite::ffi::ErrorCode;
use rusqlite::Row;
use serde_json::Value;

/// Maps a SQLite error to a store error, the SQLite error as its source: damaged files are
/// `Corrupt`, bad input is `Invalid`, everything else (I/O, locks, a full disk) is
/// `Unavailable`.
pub(crate) fn sql_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    let error = match &e {
        E::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::corrupt("the database file is damaged or not a database")
            }
            ErrorCode::ConstraintViolation | ErrorCode::TooBig => {
                StoreError::invalid("sqlite refused the data")
            }
            _ => StoreError::unavailable("sqlite failed"),
        },
        E::FromSqlConversionFailure(..)
        | E::InvalidColumnType(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(_) => StoreError::corrupt("a stored value does not decode"),
        E::ToSqlConversionFailure(_) => StoreError::invalid("a value does not encode"),
        _ => StoreError::unavailable("sqlite failed"),
    };
    error.with_source(e)
}

/// Lets `?` convert SQLite errors inside functions returning `StoreError`.
pub(crate) trait SqlResult<T> {
    /// The result with the error mapped by [`sql_error`].
    fn db(self) -> Result<T, StoreError>;
}

impl<T> SqlResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(sql_error)
    }
}

/// A timestamp as stored: unix microseconds in a signed 64-bit integer (saturating).
pub(crate) fn ts(t: Timestamp) -> i64 {
    i64::try_from(t.unix_micros()).unwrap_or(i64::MAX)
}

/// A stored timestamp.
pub(crate) fn from_ts(v: i64) -> Result<Timestamp, StoreError> {
    u64::try_from(v)
        .map(Timestamp::from_unix_micros)
        .map_err(|_| StoreError::corrupt(format!("negative timestamp {v}")))
}

/// A stored id (event, action, correlation or request id).
pub(crate) fn parse_id<T>(s: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::corrupt(format!("stored id `{s}` does not parse: {e}")))
}

/// A value as stored JSON text.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::invalid("cannot encode JSON").with_source(e))
}

/// A value from stored JSON text.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s)
        .map_err(|e| StoreError::corrupt(format!("stored {what} is invalid")).with_source(e))
}

/// The columns [`RawAction::from_row`] reads, in order.
macro_rules! action_columns {
    () => {
        "seq, body, state, attempt, run_at, owner, lease_until, last_error, updated_at"
    };
}
pub(crate) use action_columns;

/// An `actions` row as SQLite returns it, before decoding.
pub(crate) struct RawAction {
    pub(crate) seq: i64,
    body: String,
    state: String,
    attempt: i64,
    run_at: i64,
    owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    updated_at: i64,
}

impl RawAction {
    /// Reads the columns of [`action_columns!`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            body: r.get(1)?,
            state: r.get(2)?,
            attempt: r.get(3)?,
            run_at: r.get(4)?,
            owner: r.get(5)?,
            lease_until: r.get(6)?,
            last_error: r.get(7)?,
            updated_at: r.get(8)?,
        })
    }

    /// The action row.
    pub(crate) fn decode(self) -> Result<ActionRow, StoreError> {
        let record: ActionRecord = from_json("action", &self.body)?;
        Ok(ActionRow {
            state: parse_state(&self.state)?,
            attempt: attempt(self.attempt)?,
            run_at: from_ts(self.run_at)?,
            owner: self.owner.map(NodeId::new),
            lease_until: self.lease_until.map(from_ts).transpose()?,
            last_error: self
                .last_error
                .map(|e| from_json::<Value>("error", &e))
                .transpose()?,
            updated_at: from_ts(self.updated_at)?,
            record,
        })
    }
}

/// A stored action state.
pub(crate) fn parse_state(s: &str) -> Result<ActionState, StoreError> {
    ActionState::parse(s).ok_or_else(|| StoreError::corrupt(format!("unknown action state `{s}`")))
}

/// A stored attempt number.
pub(crate) fn attempt(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::corrupt(format!("attempt {v} is out of range")))
}

/// The columns [`RawAudit::from_row`] reads, in order.
macro_rules! audit_columns {
    () => {
        "seq, at, step, event_id, correlation_id, request_id, action_id, event_type, user_id, \
         tenant, agent, detail"
    };
}
pub(crate) use audit_columns;

/// The step of an audit row that holds a `rule_matched` step and the `action_dispatched` step
/// right after it: the dispatch names the same event, agent and time, and its `action` holds
/// the rule's `action_type`, `provider` and `rule`, which are all the match says. One row
/// instead of two, on the path every routed event takes (audit rows are most of the writer's
/// work); reads give back both steps.
pub(crate) const FOLDED_STEP: &str = "rule_matched+action_dispatched";

/// Whether `matched` is a `rule_matched` step that `dispatched`, the step after it, can stand
/// for (and give back exactly).
pub(crate) fn folds_into(matched: &AuditRecord, dispatched: &AuditRecord) -> bool {
    if matched.step != "rule_matched" || dispatched.step != "action_dispatched" {
        return false;
    }
    let same = matched.at == dispatched.at
        && matched.event_id == dispatched.event_id
        && matched.correlation_id == dispatched.correlation_id
        && matched.request_id == dispatched.request_id
        && matched.action_id.is_none()
        && matched.event_type == dispatched.event_type
        && matched.user == dispatched.user
        && matched.tenant == dispatched.tenant
        && matched.agent == dispatched.agent;
    same && matched_detail(&dispatched.detail).as_ref() == Some(&matched.detail)
}

/// The detail of the `rule_matched` step a folded dispatch stands for.
fn matched_detail(dispatched: &serde_json::Value) -> Option<serde_json::Value> {
    let action = dispatched.get("action")?.as_object()?;
    let mut detail = serde_json::Map::new();
    for key in ["action_type", "provider", "rule"] {
        detail.insert(key.to_owned(), action.get(key)?.clone());
    }
    Some(serde_json::Value::Object(detail))
}

/// An `audit` row as SQLite stores it: read back before decoding, or encoded (on the caller's
/// thread, so that the writer only binds it) before insertion.
pub(crate) struct RawAudit {
    seq: i64,
    pub(crate) at: i64,
    pub(crate) step: String,
    pub(crate) event_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) action_id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) agent: Option<String>,
    pub(crate) detail: String,
}

impl RawAudit {
    /// Encodes a record for insertion (its `seq` is the store's to give).
    pub(crate) fn encode(r: AuditRecord) -> Result<Self, StoreError> {
        Ok(Self {
            seq: 0,
            at: ts(r.at),
            detail: to_json(&r.detail)?,
            step: r.step,
            event_id: r.event_id.map(|x| x.to_string()),
            correlation_id: r.correlation_id.map(|x| x.to_string()),
            request_id: r.request_id.map(|x| x.to_string()),
            action_id: r.action_id.map(|x| x.to_string()),
            event_type: r.event_type.map(|x| x.as_str().to_owned()),
            user: r.user.map(|x| x.as_str().to_owned()),
            tenant: r.tenant.map(|x| x.as_str().to_owned()),
            agent: r.agent.map(|x| x.as_str().to_owned()),
        })
    }

    /// Reads the columns of [`audit_columns!`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: r.get(0)?,
            at: r.get(1)?,
            step: r.get(2)?,
            event_id: r.get(3)?,
            correlation_id: r.get(4)?,
            request_id: r.get(5)?,
            action_id: r.get(6)?,
            event_type: r.get(7)?,
            user: r.get(8)?,
            tenant: r.get(9)?,
            agent: r.get(10)?,
            detail: r.get(11)?,
        })
    }

    /// The audit records of the row, newest first: one, or for a [`FOLDED_STEP`] row the
    /// dispatch and then the match. Row `n` gives sequence number `2n + 1` (and `2n` to the
    /// match it holds), so that every record has its own place for cursors.
    pub(crate) fn decode_all(self, out: &mut Vec<AuditRecord>) -> Result<(), StoreError> {
        let folded = self.step == FOLDED_STEP;
        let mut record = self.decode()?;
        record.seq = record.seq * 2 + 1;
        if !folded {
            out.push(record);
            return Ok(());
        }
        record.step = "action_dispatched".to_owned();
        let matched = AuditRecord {
            seq: record.seq - 1,
            step: "rule_matched".to_owned(),
            action_id: None,
            detail: matched_detail(&record.detail).unwrap_or_default(),
            ..record.clone()
        };
        out.push(record);
        out.push(matched);
        Ok(())
    }

    /// The audit record.
    pub(crate) fn decode(self) -> Result<AuditRecord, StoreError> {
        fn id<T>(s: Option<String>) -> Result<Option<T>, StoreError>
        where
            T: FromStr,
            T::Err: Display,
        {
            s.as_deref().map(parse_id).transpose()
        }
        Ok(AuditRecord {
            seq: u64::try_from(self.seq)
                .map_err(|_| StoreError::corrupt(format!("audit seq {}", self.seq)))?,
            at: from_ts(self.at)?,
            step: self.step,
            event_id: id(self.event_id)?,
            correlation_id: id(self.correlation_id)?,
            request_id: id(self.request_id)?,
            action_id: id(self.action_id)?,
            event_type: self.event_type.map(Into::into),
            user: self.user.map(Into::into),
            tenant: self.tenant.map(Into::into),
            agent: self.agent.map(Into::into),
            detail: from_json("audit detail", &self.detail)?,
        })
    }
}
