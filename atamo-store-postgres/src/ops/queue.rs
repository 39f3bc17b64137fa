//! The action queue: claims, heartbeats, lease recovery, lookups, dead letters and redrives.

use std::time::Duration;

use atamo_core::ids::ActionId;
use atamo_core::store::{
    later, page_size, ActionRecord, ActionRow, Claimed, Cursor, NodeId, Page, StoreError,
};
use tokio_postgres::types::Json;

use super::conn::{conn, notify};
use crate::error::retrying;
use crate::rows::{action_row, get, int, read_int, ts, ACTION_COLUMNS};
use crate::shared::Inner;

/// The subquery is a materialized CTE, so it runs exactly once: planned as a rescanned
/// semi-join, `FOR UPDATE SKIP LOCKED` would skip the rows this very statement already updated
/// and hand out more than the limit.
const CLAIM: &str = "\
WITH picked AS MATERIALIZED (
    SELECT seq FROM actions
    WHERE state = 'ready' AND run_at <= $3
    ORDER BY run_at, seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
UPDATE actions SET state = 'leased', attempt = attempt + 1, owner = $1, lease_until = $2,
                   updated_at = $3
WHERE seq IN (SELECT seq FROM picked) AND state = 'ready'
RETURNING record, attempt, run_at, seq";

pub(crate) async fn claim(
    inner: &Inner,
    node: &NodeId,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    retrying("claim", || async {
        let now = inner.clock.now();
        let c = conn(inner).await?;
        let st = c.prepare_cached(CLAIM).await?;
        let rows = c
            .query(
                &st,
                &[
                    &node.as_str(),
                    &ts(later(now, lease)),
                    &ts(now),
                    &int(limit as u64),
                ],
            )
            .await?;
        let mut got = Vec::with_capacity(rows.len());
        for r in &rows {
            let Json(record): Json<ActionRecord> = get(r, 0)?;
            let attempt: i64 = get(r, 1)?;
            let attempt = u32::try_from(attempt).map_err(|_| {
                StoreError::corrupt(format!("action attempt {attempt} is out of range"))
            })?;
            let run_at: i64 = get(r, 2)?;
            let seq: i64 = get(r, 3)?;
            got.push((run_at, seq, Claimed { record, attempt }));
        }
        // RETURNING has no order: oldest first, as claimed.
        got.sort_by_key(|g| (g.0, g.1));
        Ok(got.into_iter().map(|g| g.2).collect())
    })
    .await
}

const HEARTBEAT: &str = "\
WITH extended AS (
    UPDATE actions SET lease_until = $2
    WHERE state = 'leased' AND owner = $1 AND lease_until < $2
    RETURNING 1)
SELECT count(*) FROM actions WHERE state = 'leased' AND owner = $1";

pub(crate) async fn heartbeat(
    inner: &Inner,
    node: &NodeId,
    lease: Duration,
) -> Result<u64, StoreError> {
    retrying("heartbeat", || async {
        let until = ts(later(inner.clock.now(), lease));
        let c = conn(inner).await?;
        let st = c.prepare_cached(HEARTBEAT).await?;
        let row = c.query_one(&st, &[&node.as_str(), &until]).await?;
        Ok(read_int(get(&row, 0)?)?)
    })
    .await
}

const RECOVER: &str = "\
UPDATE actions SET state = 'ready', owner = NULL, lease_until = NULL,
                   run_at = LEAST(run_at, $1), updated_at = $1
WHERE state = 'leased' AND lease_until <= $1";

pub(crate) async fn recover_expired(inner: &Inner) -> Result<u64, StoreError> {
    let n = retrying("recover_expired", || async {
        let now = ts(inner.clock.now());
        let c = conn(inner).await?;
        let st = c.prepare_cached(RECOVER).await?;
        Ok(c.execute(&st, &[&now]).await?)
    })
    .await?;
    if n > 0 {
        notify(inner).await;
    }
    Ok(n)
}

pub(crate) async fn action(inner: &Inner, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
    retrying("action", || async {
        let c = conn(inner).await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM actions WHERE id = $1"
            ))
            .await?;
        match c.query_opt(&st, &[&id.as_uuid()]).await? {
            Some(row) => Ok(Some(action_row(&row, 0)?)),
            None => Ok(None),
        }
    })
    .await
}

pub(crate) async fn dead_letters(
    inner: &Inner,
    cursor: Option<Cursor>,
    limit: usize,
) -> Result<Page<ActionRow>, StoreError> {
    let size = page_size(limit);
    retrying("dead_letters", || async {
        let c = conn(inner).await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT seq, {ACTION_COLUMNS} FROM actions
                 WHERE state = 'dead' AND seq < $1 ORDER BY seq DESC LIMIT $2"
            ))
            .await?;
        let before = cursor.map_or(i64::MAX, |c| int(c.0));
        let rows = c.query(&st, &[&before, &int(size as u64 + 1)]).await?;
        let more = rows.len() > size;
        let mut items = Vec::with_capacity(size.min(rows.len()));
        let mut last = 0;
        for r in rows.iter().take(size) {
            last = read_int(get(r, 0)?)?;
            items.push(action_row(r, 1)?);
        }
        Ok(Page {
            items,
            next: more.then_some(Cursor(last)),
        })
    })
    .await
}

const REDRIVE: &str = "\
UPDATE actions SET state = 'ready', run_at = $2, updated_at = $2
WHERE id = $1 AND state = 'dead'";

pub(crate) async fn redrive(inner: &Inner, id: ActionId) -> Result<bool, StoreError> {
    let n = retrying("redrive", || async {
        let now = ts(inner.clock.now());
        let c = conn(inner).await?;
        let st = c.prepare_cached(REDRIVE).await?;
        Ok(c.execute(&st, &[&id.as_uuid(), &now]).await?)
    })
    .await?;
    if n > 0 {
        notify(inner).await;
    }
    Ok(n > 0)
}
