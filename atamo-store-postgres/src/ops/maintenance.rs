//! Pruning by retention, statistics and the integrity check.

use std::collections::HashSet;

use atamo_core::ids::AgentId;
use atamo_core::store::{
    earlier, ActionRecord, ActionState, CheckReport, PruneReport, Retention, StoreError, StoreStats,
};
use tokio_postgres::types::{Json, ToSql};

use super::conn::conn;
use crate::error::retrying;
use crate::rows::{get, read_int, read_ts, ts};
use crate::shared::Inner;

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
                .ok_or_else(|| StoreError::corrupt(format!("action state {name:?}")))?;
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
