//! The event log: events by id, and listings with filters on their columns and payload.

use atamo_core::store::{Cursor, EventQuery, EventRecord, Page, StoreError};
use atamo_core::EventId;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::codec::{from_json, ts, SqlResult};

pub(crate) fn event(conn: &Connection, id: EventId) -> Result<Option<EventRecord>, StoreError> {
    conn.prepare_cached("SELECT body FROM events WHERE id = ?1")
        .db()?
        .query_row(params![id.to_string()], |r| r.get::<_, String>(0))
        .optional()
        .db()?
        .map(|b| from_json("event", &b))
        .transpose()
}

/// The value a payload filter compares, for the JSON path `?N` of the event's body: a string's
/// text, a number's or boolean's JSON text (`->` keeps a number as it was written), otherwise
/// NULL, which matches nothing.
const PAYLOAD_TEXT: &str = "CASE json_type(body, ?N) WHEN 'text' THEN json_extract(body, ?N) \
     WHEN 'integer' THEN body -> ?N WHEN 'real' THEN body -> ?N \
     WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END";

/// The SQLite JSON path of a payload field: `$.payload."name"."name"...`. Each name is quoted
/// and the characters that end or escape a quoted name (`"`, `\`), and control characters,
/// are written as `\uXXXX` escapes, which SQLite undoes when it compares names (3.45 and
/// newer): any field name makes a valid path that means just that name. The path is a bound
/// parameter, never part of the statement's text.
pub(crate) fn payload_path(names: &[String]) -> String {
    use std::fmt::Write as _;
    let mut path = String::from("$.payload");
    for name in names {
        path.push_str(".\"");
        for c in name.chars() {
            if c == '"' || c == '\\' || c.is_control() {
                // Writing to a String cannot fail.
                let _ = write!(path, "\\u{:04x}", u32::from(c));
            } else {
                path.push(c);
            }
        }
        path.push('"');
    }
    path
}

/// The event query's statement (only the filters set) and its arguments.
fn events_sql(q: &EventQuery, size: usize) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("SELECT seq, body FROM events WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    /// Appends `AND <condition>?N`, `?N` binding `value`.
    fn filter(sql: &mut String, args: &mut Vec<SqlValue>, condition: &str, value: SqlValue) {
        args.push(value);
        sql.push_str(&format!(" AND {condition}?{}", args.len()));
    }
    let text = |s: &str| SqlValue::Text(s.to_owned());
    if let Some(v) = &q.event_type {
        filter(&mut sql, &mut args, "event_type = ", text(v.as_str()));
    }
    if let Some(v) = &q.user {
        filter(&mut sql, &mut args, "user_id = ", text(v.as_str()));
    }
    if let Some(v) = &q.tenant {
        filter(&mut sql, &mut args, "tenant = ", text(v.as_str()));
    }
    if let Some(v) = q.since {
        filter(
            &mut sql,
            &mut args,
            "accepted_at >= ",
            SqlValue::Integer(ts(v)),
        );
    }
    if let Some(v) = q.until {
        filter(
            &mut sql,
            &mut args,
            "accepted_at < ",
            SqlValue::Integer(ts(v)),
        );
    }
    if let Some(c) = q.cursor {
        let before = i64::try_from(c.0).unwrap_or(i64::MAX);
        filter(&mut sql, &mut args, "seq < ", SqlValue::Integer(before));
    }
    for f in &q.payload {
        args.push(SqlValue::Text(payload_path(&f.path)));
        let compared = PAYLOAD_TEXT.replace("?N", &format!("?{}", args.len()));
        filter(
            &mut sql,
            &mut args,
            &format!("{compared} = "),
            SqlValue::Text(f.value.clone()),
        );
    }
    args.push(SqlValue::Integer(size as i64 + 1));
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", args.len()));
    (sql, args)
}

pub(crate) fn events(conn: &Connection, q: &EventQuery) -> Result<Page<EventRecord>, StoreError> {
    q.validate()?;
    let size = q.page_size();
    let (sql, args) = events_sql(q, size);
    // The statement's text depends on which filters are set and how many payload filters
    // there are, not on their values: the cache holds a handful.
    let mut stmt = conn.prepare_cached(&sql).db()?;
    let mut rows = stmt
        .query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next = match rows.last() {
        Some((seq, _)) if more => {
            Some(Cursor(u64::try_from(*seq).map_err(|_| {
                StoreError::corrupt(format!("event seq {seq}"))
            })?))
        }
        _ => None,
    };
    let items = rows
        .iter()
        .map(|(_, body)| from_json("event", body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::schema;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn payload_paths_quote_every_name() {
        assert_eq!(payload_path(&[]), "$.payload");
        assert_eq!(
            payload_path(&names(&["order", "state"])),
            r#"$.payload."order"."state""#
        );
        assert_eq!(
            payload_path(&names(&["a.b", "q\"x", "b\\s", "", "$[0]", "new\nline"])),
            r#"$.payload."a.b"."q\u0022x"."b\u005cs".""."$[0]"."new\u000aline""#
        );
    }

    /// SQLite finds exactly the field each path names.
    #[test]
    fn payload_paths_find_odd_names() {
        let conn = Connection::open_in_memory().unwrap();
        let body = serde_json::json!({"payload": {
            "a.b": 1, "a": {"b": 2}, "q\"x": 3, "b\\s": 4, "": 5, "$[0]": 6, "new\nline": 7,
            "\u{1}": 8, "ü": {"✓": 9}
        }})
        .to_string();
        for (path, want) in [
            (names(&["a.b"]), Some(1)),
            (names(&["a", "b"]), Some(2)),
            (names(&["q\"x"]), Some(3)),
            (names(&["b\\s"]), Some(4)),
            (names(&[""]), Some(5)),
            (names(&["$[0]"]), Some(6)),
            (names(&["new\nline"]), Some(7)),
            (names(&["\u{1}"]), Some(8)),
            (names(&["ü", "✓"]), Some(9)),
            (names(&["q"]), None),
            (names(&["a", "b", "c"]), None),
        ] {
            let got: Option<i64> = conn
                .query_row(
                    "SELECT json_extract(?1, ?2)",
                    params![body, payload_path(&path)],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, want, "{path:?}");
        }
    }

    /// Listings read in `seq` order without sorting; a tenant's through its index.
    #[test]
    fn listings_need_no_sort() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("store.db")).unwrap();
        schema::migrate(&conn).unwrap();
        let plan = |q: &EventQuery| {
            let (sql, args) = events_sql(q, q.page_size());
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let all = plan(&EventQuery::default());
        assert!(all.starts_with("SCAN events"), "{all}");
        let by_tenant = plan(&EventQuery {
            tenant: Some("acme".into()),
            event_type: Some("t".into()),
            payload: vec![atamo_core::store::PayloadFilter::parse("a", "b")],
            cursor: Some(Cursor(10)),
            ..EventQuery::default()
        });
        assert!(
            by_tenant.contains("USING INDEX events_tenant"),
            "{by_tenant}"
        );
        for p in [&all, &by_tenant] {
            assert!(!p.contains("TEMP B-TREE"), "{p}");
        }
    }
}
