//! Everything but writes: claims, leases, reads, pruning, stats and checks.

use std::collections::HashSet;
use std::time::Duration;

use atamo_core::ids::{ActionId, AgentId, EventId, RequestId};
use atamo_core::store::{
    earlier, later, page_size, ActionRecord, ActionRow, ActionState, AuditQuery, AuditRecord,
    CheckReport, Claimed, Cursor, EventQuery, EventRecord, NodeId, Page, PruneReport,
    RegistryEntry, RegistryOutcome, RegistryWrite, ResultRecord, Retention, StoreError, StoreStats,
};
use deadpool_postgres::Object;
use serde_json::Value;
use tokio_postgres::types::{Json, ToSql};

use crate::error::{retrying, Failure};
use crate::rows::{action_row, audit_row, get, int, read_int, read_ts, ts, ACTION_COLUMNS};
use crate::Inner;

async fn conn(inner: &Inner) -> Result<Object, Failure> {
    Ok(inner.pool.get().await?)
}

/// Tells every listening node that actions are ready. Only a hint: a failure is logged.
async fn notify(inner: &Inner) {
    let sent: Result<(), Failure> = async {
        let c = conn(inner).await?;
        let st = c.prepare_cached(crate::write::NOTIFY).await?;
        c.execute(&st, &[&inner.channel]).await?;
        Ok(())
    }
    .await;
    if let Err(e) = sent {
        let why = match e {
            Failure::Store(e) => e.to_string(),
            Failure::Retry(why) => why,
        };
        tracing::debug!(error = %why, "could not notify other nodes of ready actions");
    }
}

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
                StoreError::Corrupt(format!("action attempt {attempt} is out of range"))
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

pub(crate) async fn results(
    inner: &Inner,
    request: RequestId,
) -> Result<Vec<ResultRecord>, StoreError> {
    retrying("results", || async {
        let now = ts(inner.clock.now());
        let c = conn(inner).await?;
        let st = c
            .prepare_cached(
                "SELECT record FROM results WHERE request_id = $1 AND expires_at > $2
                 ORDER BY seq",
            )
            .await?;
        let rows = c.query(&st, &[&request.as_uuid(), &now]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Json(record): Json<ResultRecord> = get(r, 0)?;
            out.push(record);
        }
        Ok(out)
    })
    .await
}

pub(crate) async fn event(inner: &Inner, id: EventId) -> Result<Option<EventRecord>, StoreError> {
    retrying("event", || async {
        let c = conn(inner).await?;
        let st = c
            .prepare_cached("SELECT record FROM events WHERE id = $1")
            .await?;
        match c.query_opt(&st, &[&id.as_uuid()]).await? {
            Some(row) => {
                let Json(record): Json<EventRecord> = get(&row, 0)?;
                Ok(Some(record))
            }
            None => Ok(None),
        }
    })
    .await
}

/// The audit query's statement (only the filters set) and its parameters.
fn audit_sql(q: &AuditQuery, size: usize) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = format!(
        "SELECT {} FROM audit WHERE true",
        crate::rows::AUDIT_COLUMNS
    );
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut filter = |sql: &mut String, cond: &str, p: Box<dyn ToSql + Sync + Send>| {
        params.push(p);
        sql.push_str(&format!(" AND {cond} ${}", params.len()));
    };
    let text = |s: &str| -> Box<dyn ToSql + Sync + Send> { Box::new(s.to_owned()) };
    if let Some(v) = &q.user {
        filter(&mut sql, "user_id =", text(v.as_str()));
    }
    if let Some(v) = &q.tenant {
        filter(&mut sql, "tenant =", text(v.as_str()));
    }
    if let Some(v) = &q.agent {
        filter(&mut sql, "agent =", text(v.as_str()));
    }
    if let Some(v) = &q.event_type {
        filter(&mut sql, "event_type =", text(v.as_str()));
    }
    if let Some(v) = &q.step {
        filter(&mut sql, "step =", text(v));
    }
    if let Some(v) = q.event_id {
        filter(&mut sql, "event_id =", Box::new(v.as_uuid()));
    }
    if let Some(v) = q.correlation_id {
        filter(&mut sql, "correlation_id =", Box::new(v.as_uuid()));
    }
    if let Some(v) = q.request_id {
        filter(&mut sql, "request_id =", Box::new(v.as_uuid()));
    }
    if let Some(v) = q.action_id {
        filter(&mut sql, "action_id =", Box::new(v.as_uuid()));
    }
    if let Some(v) = q.since {
        filter(&mut sql, "at >=", Box::new(ts(v)));
    }
    if let Some(v) = q.until {
        filter(&mut sql, "at <", Box::new(ts(v)));
    }
    if let Some(v) = q.cursor {
        filter(&mut sql, "seq <", Box::new(int(v.0)));
    }
    params.push(Box::new(int(size as u64 + 1)));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", params.len()));
    (sql, params)
}

pub(crate) async fn audit(inner: &Inner, q: &AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
    let size = q.page_size();
    let (sql, params) = audit_sql(q, size);
    let refs: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
    retrying("audit", || async {
        let c = conn(inner).await?;
        let st = c.prepare_cached(&sql).await?;
        let rows = c.query(&st, &refs).await?;
        let more = rows.len() > size;
        let items = rows
            .iter()
            .take(size)
            .map(audit_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = more.then(|| Cursor(items.last().map_or(0, |r| r.seq)));
        Ok(Page { items, next })
    })
    .await
}

/// The event query's statement (only the filters set) and its parameters.
fn events_sql(q: &EventQuery, size: usize) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql = String::from("SELECT seq, record FROM events WHERE true");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut filter = |sql: &mut String, cond: &str, p: Box<dyn ToSql + Sync + Send>| {
        params.push(p);
        sql.push_str(&format!(" AND {cond} ${}", params.len()));
    };
    let text = |s: &str| -> Box<dyn ToSql + Sync + Send> { Box::new(s.to_owned()) };
    if let Some(v) = &q.event_type {
        filter(&mut sql, "event_type =", text(v.as_str()));
    }
    if let Some(v) = &q.user {
        filter(&mut sql, "user_id =", text(v.as_str()));
    }
    if let Some(v) = &q.tenant {
        filter(&mut sql, "tenant =", text(v.as_str()));
    }
    if let Some(v) = q.since {
        filter(&mut sql, "accepted_at >=", Box::new(ts(v)));
    }
    if let Some(v) = q.until {
        filter(&mut sql, "accepted_at <", Box::new(ts(v)));
    }
    if let Some(v) = q.cursor {
        filter(&mut sql, "seq <", Box::new(int(v.0)));
    }
    for f in &q.payload {
        // The path is a parameter: field names never become part of the statement.
        let path: Vec<String> = std::iter::once("payload".to_owned())
            .chain(f.path.iter().cloned())
            .collect();
        params.push(Box::new(path));
        let at = params.len();
        params.push(Box::new(f.value.clone()));
        sql.push_str(&format!(
            " AND json_filter_text(record, ${at}::text[]) = ${}",
            params.len()
        ));
    }
    params.push(Box::new(int(size as u64 + 1)));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", params.len()));
    (sql, params)
}

pub(crate) async fn events(inner: &Inner, q: &EventQuery) -> Result<Page<EventRecord>, StoreError> {
    q.validate()?;
    let size = q.page_size();
    let (sql, params) = events_sql(q, size);
    let refs: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
    retrying("events", || async {
        let c = conn(inner).await?;
        let st = c.prepare_cached(&sql).await?;
        let rows = c.query(&st, &refs).await?;
        let more = rows.len() > size;
        let mut items = Vec::with_capacity(rows.len().min(size));
        let mut last = 0;
        for r in rows.iter().take(size) {
            last = read_int(get(r, 0)?)?;
            let Json(record): Json<EventRecord> = get(r, 1)?;
            items.push(record);
        }
        Ok(Page {
            items,
            next: more.then_some(Cursor(last)),
        })
    })
    .await
}

const REGISTRY_COLUMNS: &str = "kind, id, revision, updated_at, body";

fn registry_entry(r: &tokio_postgres::Row) -> Result<RegistryEntry, StoreError> {
    let Json(body): Json<Value> = get(r, 4)?;
    Ok(RegistryEntry {
        kind: get(r, 0)?,
        id: get(r, 1)?,
        revision: read_int(get(r, 2)?)?,
        updated_at: read_ts(get(r, 3)?)?,
        body,
    })
}

pub(crate) async fn registry_get(
    inner: &Inner,
    kind: &str,
    id: &str,
) -> Result<Option<RegistryEntry>, StoreError> {
    retrying("registry_get", || async {
        let c = conn(inner).await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = $1 AND id = $2"
            ))
            .await?;
        match c.query_opt(&st, &[&kind, &id]).await? {
            Some(r) => Ok(Some(registry_entry(&r)?)),
            None => Ok(None),
        }
    })
    .await
}

pub(crate) async fn registry_list(
    inner: &Inner,
    kind: &str,
) -> Result<Vec<RegistryEntry>, StoreError> {
    retrying("registry_list", || async {
        let c = conn(inner).await?;
        // The columns' collation is "C": ids sort byte by byte.
        let st = c
            .prepare_cached(&format!(
                "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = $1 ORDER BY id"
            ))
            .await?;
        let rows = c.query(&st, &[&kind]).await?;
        Ok(rows
            .iter()
            .map(registry_entry)
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await
}

/// `$1` kind, `$2` id, `$3` time, `$4` body; each returns the new revision when it wrote.
const REGISTRY_CREATE: &str = "\
INSERT INTO registry (kind, id, revision, updated_at, body) VALUES ($1, $2, 1, $3, $4)
ON CONFLICT (kind, id) DO NOTHING
RETURNING revision";
const REGISTRY_REPLACE: &str = "\
UPDATE registry SET revision = revision + 1, updated_at = $3, body = $4
WHERE kind = $1 AND id = $2
RETURNING revision";
const REGISTRY_UPSERT: &str = "\
INSERT INTO registry AS r (kind, id, revision, updated_at, body) VALUES ($1, $2, 1, $3, $4)
ON CONFLICT (kind, id) DO UPDATE
    SET revision = r.revision + 1, updated_at = EXCLUDED.updated_at, body = EXCLUDED.body
RETURNING revision";

pub(crate) async fn registry_put(
    inner: &Inner,
    kind: &str,
    id: &str,
    body: &Value,
    mode: RegistryWrite,
    audit: &[AuditRecord],
) -> Result<RegistryOutcome, StoreError> {
    let sql = match mode {
        RegistryWrite::Create => REGISTRY_CREATE,
        RegistryWrite::Replace => REGISTRY_REPLACE,
        RegistryWrite::Upsert => REGISTRY_UPSERT,
    };
    let rows = crate::write::AuditRows::build(audit.iter());
    retrying("registry_put", || async {
        let now = ts(inner.clock.now());
        let mut c = conn(inner).await?;
        let tx = c.transaction().await?;
        let st = tx.prepare_cached(sql).await?;
        let Some(row) = tx.query_opt(&st, &[&kind, &id, &now, &Json(body)]).await? else {
            tx.rollback().await?;
            return Ok(match mode {
                RegistryWrite::Create => RegistryOutcome::Exists,
                _ => RegistryOutcome::Missing,
            });
        };
        let revision = read_int(get(&row, 0)?)?;
        if !rows.is_empty() {
            let st = tx.prepare_cached(crate::write::AUDIT_INSERT).await?;
            tx.execute(&st, &rows.params()).await?;
        }
        tx.commit().await?;
        Ok(RegistryOutcome::Written { revision })
    })
    .await
}

pub(crate) async fn registry_delete(
    inner: &Inner,
    kind: &str,
    id: &str,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    let rows = crate::write::AuditRows::build(audit.iter());
    retrying("registry_delete", || async {
        let mut c = conn(inner).await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached("DELETE FROM registry WHERE kind = $1 AND id = $2")
            .await?;
        if tx.execute(&st, &[&kind, &id]).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if !rows.is_empty() {
            let st = tx.prepare_cached(crate::write::AUDIT_INSERT).await?;
            tx.execute(&st, &rows.params()).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}

/// Audit entries, finished actions and events (none of whose actions is left) older than
/// their tenant's own age (`$1` tenants, `$2` cutoffs).
const PRUNE_TENANTS: [&str; 3] = [
    "DELETE FROM audit a USING unnest($1::text[], $2::bigint[]) AS t(tenant, cutoff)
     WHERE a.tenant = t.tenant AND a.at < t.cutoff",
    "DELETE FROM actions a USING unnest($1::text[], $2::bigint[]) AS t(tenant, cutoff)
     WHERE a.state = 'done' AND a.tenant = t.tenant AND a.updated_at < t.cutoff",
    "DELETE FROM events e USING unnest($1::text[], $2::bigint[]) AS t(tenant, cutoff)
     WHERE e.tenant = t.tenant AND e.accepted_at < t.cutoff
       AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = e.id)",
];

/// The same for everything else, older than the default age (`$1` cutoff, `$2` the tenants
/// with their own age).
const PRUNE_DEFAULT: [&str; 3] = [
    "DELETE FROM audit
     WHERE at < $1 AND (tenant IS NULL OR NOT (tenant = ANY($2::text[])))",
    "DELETE FROM actions
     WHERE state = 'done' AND updated_at < $1
       AND (tenant IS NULL OR NOT (tenant = ANY($2::text[])))",
    "DELETE FROM events e
     WHERE e.accepted_at < $1 AND (e.tenant IS NULL OR NOT (e.tenant = ANY($2::text[])))
       AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.event_id = e.id)",
];

pub(crate) async fn prune(inner: &Inner, retention: &Retention) -> Result<PruneReport, StoreError> {
    retrying("prune", || async {
        let now = inner.clock.now();
        let now_i = ts(now);
        let tenants: Vec<&str> = retention.tenants.keys().map(|t| t.as_str()).collect();
        let cutoffs: Vec<i64> = retention
            .tenants
            .values()
            .map(|age| ts(earlier(now, *age)))
            .collect();
        let default: Option<i64> = retention.max_age.map(|age| ts(earlier(now, age)));
        let mut c = conn(inner).await?;
        let tx = c.transaction().await?;
        let results = tx
            .execute("DELETE FROM results WHERE expires_at <= $1", &[&now_i])
            .await?;
        let dedupe_keys = tx
            .execute("DELETE FROM dedupe WHERE expires_at <= $1", &[&now_i])
            .await?;
        // Audit entries, actions, events: in this order, so events lose their actions first.
        let mut aged = [0u64; 3];
        for (i, n) in aged.iter_mut().enumerate() {
            if !tenants.is_empty() {
                *n += tx.execute(PRUNE_TENANTS[i], &[&tenants, &cutoffs]).await?;
            }
            if let Some(cutoff) = default {
                *n += tx.execute(PRUNE_DEFAULT[i], &[&cutoff, &tenants]).await?;
            }
        }
        tx.commit().await?;
        Ok(PruneReport {
            audit: aged[0],
            results,
            events: aged[2],
            actions: aged[1],
            dedupe_keys,
        })
    })
    .await
}

const STATS_STATES: &str = "SELECT state, count(*) FROM actions GROUP BY state";
const STATS_READY: &str =
    "SELECT agent, count(*), min(run_at) FROM actions WHERE state = 'ready' GROUP BY agent";
const STATS_COUNTS: &str = "\
SELECT (SELECT count(*) FROM events),
       (SELECT count(*) FROM audit),
       (SELECT count(*) FROM results WHERE expires_at > $1),
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $2 AND c.relkind = 'r' AND c.relname = ANY($3::text[]))";

pub(crate) async fn stats(inner: &Inner) -> Result<StoreStats, StoreError> {
    retrying("stats", || async {
        let now = ts(inner.clock.now());
        let c = conn(inner).await?;
        let tables: Vec<&str> = crate::schema::TABLES.to_vec();
        let counts_params: [&(dyn ToSql + Sync); 3] = [&now, &inner.schema, &tables];
        // Pipelined on the one connection.
        let (states, ready, counts) = tokio::try_join!(
            c.query(STATS_STATES, &[]),
            c.query(STATS_READY, &[]),
            c.query_one(STATS_COUNTS, &counts_params),
        )?;
        let mut stats = StoreStats {
            backend: "postgres".to_owned(),
            ..StoreStats::default()
        };
        for st in ActionState::ALL {
            stats.actions.insert(st, 0);
        }
        for r in &states {
            let name: &str = get(r, 0)?;
            let state = ActionState::parse(name)
                .ok_or_else(|| StoreError::Corrupt(format!("action state {name:?}")))?;
            stats.actions.insert(state, read_int(get(r, 1)?)?);
        }
        for r in &ready {
            let agent: String = get(r, 0)?;
            stats
                .ready_by_agent
                .insert(AgentId::from(agent), read_int(get(r, 1)?)?);
            let oldest = read_ts(get(r, 2)?)?;
            if stats.oldest_ready.is_none_or(|o| oldest < o) {
                stats.oldest_ready = Some(oldest);
            }
        }
        stats.events = read_int(get(&counts, 0)?)?;
        stats.audit_entries = read_int(get(&counts, 1)?)?;
        stats.results = read_int(get(&counts, 2)?)?;
        stats.size_bytes = Some(read_int(get(&counts, 3)?)?);
        Ok(stats)
    })
    .await
}

/// The most problems of one kind listed.
const SHOWN: i64 = 100;

const CHECK_LEASES: &str = "\
SELECT id::text, state, owner, lease_until FROM actions
WHERE (state = 'leased' AND (owner IS NULL OR lease_until IS NULL))
   OR (state <> 'leased' AND (owner IS NOT NULL OR lease_until IS NOT NULL))
LIMIT $1";
const CHECK_EVENTS: &str = "\
SELECT a.id::text, a.event_id::text FROM actions a
WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id)
LIMIT $1";
const CHECK_ATTEMPTS: &str = "\
SELECT id::text, attempt FROM actions WHERE state = 'leased' AND attempt < 1 LIMIT $1";
const CHECK_RECENT: &str = "\
SELECT id, record FROM actions ORDER BY seq DESC LIMIT $1";
const CHECK_CATALOG: &str = "\
SELECT c.relname, c.relkind::text, coalesce(i.indisvalid AND i.indisready, true)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')";

/// The functions of [`crate::schema::FUNCTIONS`] missing from the schema `$1`.
const CHECK_FUNCTIONS: &str = "\
SELECT f FROM unnest($2::text[]) AS f
WHERE NOT EXISTS (
    SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = $1 AND p.proname = f)";

pub(crate) async fn check(inner: &Inner) -> Result<CheckReport, StoreError> {
    retrying("check", || async {
        let c = conn(inner).await?;
        let mut report = CheckReport::default();

        report.checked.push("schema version".to_owned());
        let version = c
            .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .await?;
        match version.map(|r| get::<String>(&r, 0)).transpose()? {
            Some(v) if v == crate::schema::VERSION.to_string() => {}
            Some(v) => report.problems.push(format!(
                "schema version is {v}, this build writes {}",
                crate::schema::VERSION
            )),
            None => report
                .problems
                .push("the schema version is not recorded".to_owned()),
        }

        report
            .checked
            .push("tables, indexes and functions".to_owned());
        let catalog = c.query(CHECK_CATALOG, &[&inner.schema]).await?;
        let mut tables = HashSet::new();
        for r in &catalog {
            let name: String = get(r, 0)?;
            let kind: String = get(r, 1)?;
            let valid: bool = get(r, 2)?;
            if kind == "r" {
                tables.insert(name);
            } else if !valid {
                report
                    .problems
                    .push(format!("index {name} is invalid; rebuild it (REINDEX)"));
            }
        }
        for t in crate::schema::TABLES {
            if !tables.contains(t) {
                report.problems.push(format!("table {t} is missing"));
            }
        }
        let functions: Vec<&str> = crate::schema::FUNCTIONS.to_vec();
        for r in c
            .query(CHECK_FUNCTIONS, &[&inner.schema, &functions])
            .await?
        {
            let name: String = get(&r, 0)?;
            report.problems.push(format!("function {name} is missing"));
        }

        report.checked.push("lease owners".to_owned());
        for r in c.query(CHECK_LEASES, &[&SHOWN]).await? {
            let id: String = get(&r, 0)?;
            let state: String = get(&r, 1)?;
            let owner: Option<String> = get(&r, 2)?;
            let until: Option<i64> = get(&r, 3)?;
            report.problems.push(format!(
                "action {id} is {state} with owner {owner:?} and lease end {until:?}"
            ));
        }

        report.checked.push("action events".to_owned());
        for r in c.query(CHECK_EVENTS, &[&SHOWN]).await? {
            let id: String = get(&r, 0)?;
            let event: String = get(&r, 1)?;
            report.problems.push(format!(
                "action {id} names event {event}, which is not stored"
            ));
        }

        report.checked.push("attempts of leased actions".to_owned());
        for r in c.query(CHECK_ATTEMPTS, &[&SHOWN]).await? {
            let id: String = get(&r, 0)?;
            let attempt: i64 = get(&r, 1)?;
            report
                .problems
                .push(format!("action {id} is leased with attempt {attempt}"));
        }

        report
            .checked
            .push("newest action records decode".to_owned());
        for r in c.query(CHECK_RECENT, &[&SHOWN]).await? {
            let id: uuid::Uuid = get(&r, 0)?;
            match r.try_get::<_, Json<ActionRecord>>(1) {
                Ok(Json(record)) if record.id.as_uuid() == id => {}
                Ok(Json(record)) => report.problems.push(format!(
                    "action {id} holds the record of action {}",
                    record.id
                )),
                Err(e) => report
                    .problems
                    .push(format!("action {id}: its record does not decode: {e}")),
            }
        }
        Ok(report)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use atamo_core::message::Timestamp;

    #[test]
    fn audit_statements_name_only_the_filters_set() {
        let (sql, params) = audit_sql(&AuditQuery::default(), 100);
        assert!(
            sql.ends_with("WHERE true ORDER BY seq DESC LIMIT $1"),
            "{sql}"
        );
        assert_eq!(params.len(), 1);
        let q = AuditQuery {
            user: Some("alice".into()),
            since: Some(Timestamp::from_unix_micros(5)),
            cursor: Some(Cursor(9)),
            ..AuditQuery::default()
        };
        let (sql, params) = audit_sql(&q, 10);
        assert!(
            sql.ends_with(
                "WHERE true AND user_id = $1 AND at >= $2 AND seq < $3 ORDER BY seq DESC LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn event_statements_bind_payload_paths_and_values() {
        let (sql, params) = events_sql(&EventQuery::default(), 100);
        assert!(
            sql.ends_with("WHERE true ORDER BY seq DESC LIMIT $1"),
            "{sql}"
        );
        assert_eq!(params.len(), 1);
        let q = EventQuery {
            tenant: Some("acme".into()),
            payload: vec![atamo_core::store::PayloadFilter {
                path: vec!["x'); DROP TABLE events; --".to_owned()],
                value: "' OR true --".to_owned(),
            }],
            cursor: Some(Cursor(9)),
            ..EventQuery::default()
        };
        let (sql, params) = events_sql(&q, 10);
        assert!(
            sql.ends_with(
                "WHERE true AND tenant = $1 AND seq < $2 \
                 AND json_filter_text(record, $3::text[]) = $4 ORDER BY seq DESC LIMIT $5"
            ),
            "{sql}"
        );
        assert!(!sql.contains("DROP") && !sql.contains("OR true"), "{sql}");
        assert_eq!(params.len(), 5);
    }
}
