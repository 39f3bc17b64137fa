//! Reads: request results, events and the audit log.

use atamo_core::ids::{EventId, RequestId};
use atamo_core::store::{
    AuditQuery, AuditRecord, Cursor, EventQuery, EventRecord, Page, ResultRecord, StoreError,
};
use tokio_postgres::types::{Json, ToSql};

use super::conn::conn;
use crate::error::retrying;
use crate::rows::{audit_row, get, int, read_int, ts};
use crate::shared::Inner;

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
