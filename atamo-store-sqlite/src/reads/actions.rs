//! Actions, dead letters and request results.

use atamo_core::message::Timestamp;
use atamo_core::store::{page_size, ActionRow, Cursor, Page, ResultRecord, StoreError};
use atamo_core::{ActionId, RequestId};
use rusqlite::{params, Connection, OptionalExtension};

use crate::codec::{action_columns, from_json, ts, RawAction, SqlResult};

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
