//! One write transaction: the group's dedupe keys, then every row, pipelined.

use std::collections::{HashMap, HashSet};

use atamo_core::ids::{CorrelationId, EventId};
use atamo_core::message::Timestamp;
use atamo_core::store::{AcceptEvent, AcceptOutcome, StoreError, WriteBatch, WriteOutcome};
use tokio_postgres::types::{Json, ToSql};
use uuid::Uuid;

use super::dedupe::plan_dedupe;
use super::params::{plan_settles, ActionRows, AuditRows, EventRows, ResultRows};
use super::pipeline::{command, first_error, pipeline, step, Step, TxConn};
use super::statements::{
    ACTIONS_CONFLICT, ACTIONS_SELECT, AUDIT_INSERT, BEGIN, COMMIT, DEDUPE_CLAIM, DEDUPE_READ,
    EVENTS_INSERT, EVENTS_UPSERT, NOTIFY, RESULTS_INSERT, SETTLE,
};
use crate::error::{store_error, Failure};
use crate::rows::ts;
use crate::shared::Inner;

/// Writes `batches` in one transaction; one outcome per batch.
pub(super) async fn commit(
    inner: &Inner,
    batches: &[&WriteBatch],
) -> Result<Vec<WriteOutcome>, Failure> {
    let now = inner.clock.now();
    let now_i = ts(now);
    let accepts: Vec<&AcceptEvent> = batches.iter().flat_map(|b| &b.accepts).collect();
    let settles: Vec<&atamo_core::store::Settle> =
        batches.iter().flat_map(|b| &b.settles).collect();

    let mut tx = TxConn {
        conn: Some(inner.pool.get().await?),
        open: false,
    };
    let result = commit_in(inner, &mut tx, now, now_i, &accepts, &settles, batches).await;
    if result.is_err() {
        tx.rollback().await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn commit_in(
    inner: &Inner,
    tx: &mut TxConn,
    now: Timestamp,
    now_i: i64,
    accepts: &[&AcceptEvent],
    settles: &[&atamo_core::store::Settle],
    batches: &[&WriteBatch],
) -> Result<Vec<WriteOutcome>, Failure> {
    let conn = tx.conn.as_ref().ok_or(StoreError::Closed)?;
    let client: &tokio_postgres::Client = conn;

    // Dedupe: each key's first event in the group claims the key (an insert, or an update of
    // an expired holder). A key still held by another event makes every event with it a
    // duplicate of that one.
    let dedupe = plan_dedupe(accepts, now);
    let mut outcome: Vec<AcceptOutcome> = vec![AcceptOutcome::New; accepts.len()];
    tx.open = true;
    // Without dedupe keys, BEGIN goes out with the rest below.
    if !dedupe.keys.is_empty() {
        let claim = conn.prepare_cached(DEDUPE_CLAIM).await?;
        let tenants: Vec<&str> = dedupe.keys.iter().map(|k| k.0).collect();
        let names: Vec<&str> = dedupe.keys.iter().map(|k| k.1).collect();
        let ids: Vec<Uuid> = dedupe.chains.iter().map(|c| c.holder.0.as_uuid()).collect();
        let corrs: Vec<Uuid> = dedupe.chains.iter().map(|c| c.holder.1.as_uuid()).collect();
        let until: Vec<i64> = dedupe.chains.iter().map(|c| ts(c.holder.2)).collect();
        let params: [&(dyn ToSql + Sync); 6] = [&tenants, &names, &ids, &corrs, &until, &now_i];
        let rows = first_error(
            pipeline(vec![command(client, BEGIN), step(client, &claim, &params)]).await,
        )?;
        let claimed: HashSet<(String, String)> = rows
            .get(1)
            .into_iter()
            .flatten()
            .map(|r| Ok((crate::rows::get(r, 0)?, crate::rows::get(r, 1)?)))
            .collect::<Result<_, StoreError>>()?;
        let held: HashSet<usize> = (0..dedupe.keys.len())
            .filter(|&k| {
                let (t, n) = dedupe.keys[k];
                !claimed.contains(&(t.to_owned(), n.to_owned()))
            })
            .collect();
        let mut holders: HashMap<(String, String), (EventId, CorrelationId)> = HashMap::new();
        if !held.is_empty() {
            let read = conn.prepare_cached(DEDUPE_READ).await?;
            let keys: Vec<(&str, &str)> = held.iter().map(|&k| dedupe.keys[k]).collect();
            let tenants: Vec<&str> = keys.iter().map(|k| k.0).collect();
            let names: Vec<&str> = keys.iter().map(|k| k.1).collect();
            for r in client.query(&read, &[&tenants, &names]).await? {
                let id: Uuid = crate::rows::get(&r, 2)?;
                let corr: Uuid = crate::rows::get(&r, 3)?;
                holders.insert(
                    (crate::rows::get(&r, 0)?, crate::rows::get(&r, 1)?),
                    (EventId::from_uuid(id), CorrelationId::from_uuid(corr)),
                );
            }
        }
        for (k, chain) in dedupe.chains.iter().enumerate() {
            let (t, n) = dedupe.keys[k];
            match holders.get(&(t.to_owned(), n.to_owned())) {
                Some(&(event_id, correlation_id)) => {
                    for (i, _) in &chain.outcomes {
                        outcome[*i] = AcceptOutcome::Duplicate {
                            event_id,
                            correlation_id,
                        };
                    }
                }
                None if held.contains(&k) => {
                    // The holder went between the two statements (it is locked by the first,
                    // so this should not happen): run the transaction again.
                    return Err(Failure::Retry(
                        format!("dedupe key {n:?} changed hands").into(),
                    ));
                }
                None => {
                    for (i, o) in &chain.outcomes {
                        outcome[*i] = *o;
                    }
                }
            }
        }
    }

    // The rows of the new events, their actions, settles, results and audit records.
    let new: Vec<&AcceptEvent> = accepts
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o == AcceptOutcome::New)
        .map(|(a, _)| *a)
        .collect();
    let events = EventRows::build(new.iter().map(|a| &a.event));
    let actions = ActionRows::build(new.iter().flat_map(|a| &a.actions), now);
    let (rounds, settle_wakes) = plan_settles(settles, now);
    let mut results = ResultRows::default();
    for r in batches.iter().flat_map(|b| &b.results) {
        results.requests.push(r.request.as_uuid());
        results.expires_at.push(ts(r.expires_at));
        results.records.push(Json(r));
    }
    // A refused duplicate's steps are not the path of anything stored.
    let refused: HashSet<EventId> = accepts
        .iter()
        .zip(&outcome)
        .filter(|(_, o)| **o != AcceptOutcome::New)
        .map(|(a, _)| a.event.id)
        .collect();
    let audit = AuditRows::build(
        batches
            .iter()
            .flat_map(|b| &b.audit)
            .filter(|r| r.event_id.is_none_or(|id| !refused.contains(&id))),
    );
    let wake = actions.any_ready || settle_wakes;

    let events_st = match events.ids.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(EVENTS_UPSERT).await?),
    };
    let actions_st = match actions.ids.is_empty() {
        true => None,
        false => Some(
            conn.prepare_cached(&format!("{ACTIONS_SELECT}{ACTIONS_CONFLICT}"))
                .await?,
        ),
    };
    let settle_st = match rounds.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(SETTLE).await?),
    };
    let results_st = match results.requests.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(RESULTS_INSERT).await?),
    };
    let audit_st = match audit.is_empty() {
        true => None,
        false => Some(conn.prepare_cached(AUDIT_INSERT).await?),
    };
    let notify_st = match wake {
        true => Some(conn.prepare_cached(NOTIFY).await?),
        false => None,
    };

    let event_params = events.params();
    let action_params = actions.params(&now_i);
    let round_params: Vec<[&(dyn ToSql + Sync); 11]> =
        rounds.iter().map(|r| r.params(&now_i)).collect();
    let result_params: [&(dyn ToSql + Sync); 3] =
        [&results.requests, &results.expires_at, &results.records];
    let audit_params = audit.params();
    let notify_params: [&(dyn ToSql + Sync); 1] = [&inner.channel];

    let mut steps: Vec<Step<'_>> = Vec::new();
    if dedupe.keys.is_empty() {
        steps.push(command(client, BEGIN));
    }
    if let Some(st) = &events_st {
        steps.push(step(client, st, &event_params));
    }
    if let Some(st) = &actions_st {
        steps.push(step(client, st, &action_params));
    }
    let first_round = steps.len();
    if let Some(st) = &settle_st {
        for params in &round_params {
            steps.push(step(client, st, params));
        }
    }
    let after_rounds = steps.len();
    if let Some(st) = &results_st {
        steps.push(step(client, st, &result_params));
    }
    if let Some(st) = &audit_st {
        steps.push(step(client, st, &audit_params));
    }
    if let Some(st) = &notify_st {
        steps.push(step(client, st, &notify_params));
    }
    steps.push(command(client, COMMIT));
    let results = pipeline(steps).await;
    let committed = matches!(results.last(), Some(Some(_)));
    let rows = first_error(results);
    if committed {
        // COMMIT ran: it committed, or (after an error) rolled back.
        tx.open = false;
    }
    let rows = rows?;

    let mut settled = vec![false; settles.len()];
    for round in &rows[first_round..after_rounds] {
        for r in round {
            let idx: i64 = crate::rows::get(r, 0)?;
            if let Some(s) = usize::try_from(idx).ok().and_then(|i| settled.get_mut(i)) {
                *s = true;
            }
        }
    }

    // Split the outcomes by batch.
    let mut out = Vec::with_capacity(batches.len());
    let (mut a, mut s) = (0, 0);
    for b in batches {
        out.push(WriteOutcome {
            accepted: outcome[a..a + b.accepts.len()].to_vec(),
            settled: settled[s..s + b.settles.len()].to_vec(),
        });
        a += b.accepts.len();
        s += b.settles.len();
    }
    Ok(out)
}

/// Inserts each batch's events and actions with plain multi-row inserts, one transaction per
/// batch (no dedupe, settles, results or audit): what the tables take at best.
pub(crate) async fn baseline_insert(
    inner: &Inner,
    batches: Vec<WriteBatch>,
) -> Result<u64, StoreError> {
    let e = store_error;
    let mut conn = inner.pool.get().await.map_err(crate::error::pool_error)?;
    let events_st = conn.prepare_cached(EVENTS_INSERT).await.map_err(e)?;
    let actions_st = conn.prepare_cached(ACTIONS_SELECT).await.map_err(e)?;
    let mut rows = 0;
    for batch in &batches {
        let now = inner.clock.now();
        let now_i = ts(now);
        let events = EventRows::build(batch.accepts.iter().map(|a| &a.event));
        let actions = ActionRows::build(batch.accepts.iter().flat_map(|a| &a.actions), now);
        let tx = conn.transaction().await.map_err(e)?;
        if !events.ids.is_empty() {
            rows += tx.execute(&events_st, &events.params()).await.map_err(e)?;
        }
        if !actions.ids.is_empty() {
            rows += tx
                .execute(&actions_st, &actions.params(&now_i))
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
    }
    Ok(rows)
}
