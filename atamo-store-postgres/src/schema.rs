//! The tables, and creating or upgrading them safely while other nodes start too.

use atamo_core::store::StoreError;
use tokio_postgres::Client;

use crate::error::store_error;

/// The schema version this build writes and understands.
pub(crate) const VERSION: i64 = 2;

/// The store's tables, for sizes.
pub(crate) const TABLES: [&str; 7] = [
    "meta", "events", "dedupe", "actions", "results", "audit", "registry",
];

/// The functions of the schema, for the check.
pub(crate) const FUNCTIONS: [&str; 1] = ["json_filter_text"];

/// Checks a schema name: lower-case ASCII letters, digits and `_`, not starting with a digit or
/// `pg_`, at most 63 bytes. The name is used unquoted in statements, in `search_path` and as the
/// notification channel, so nothing needing quotes is accepted.
pub fn validate_schema(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes().first().is_some_and(|b| !b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(format!(
            "schema name {name:?}: use 1 to 63 lower-case ASCII letters, digits and `_`, \
             not starting with a digit or `pg_`"
        )))
    }
}

/// The advisory lock key guarding a schema's creation and upgrades (FNV-1a of its name).
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "atamo-store:".bytes().chain(schema.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Creates the schema and its tables, or checks and upgrades them, under a transaction-scoped
/// advisory lock: nodes starting at the same time take turns, and each later one finds the work
/// done.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let e = store_error;
    let tx = client.transaction().await.map_err(e)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
        .await
        .map_err(e)?;
    // Looked up first: `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even when the
    // schema is there.
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(e)?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(e)?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text NOT NULL)"
    ))
    .await
    .map_err(e)?;
    let found = tx
        .query_opt(
            &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(e)?;
    let version = match found {
        None => 0,
        Some(row) => {
            let text: String = row.try_get(0).map_err(|err| {
                StoreError::corrupt("the schema version does not decode").with_source(err)
            })?;
            text.parse::<i64>().map_err(|_| {
                StoreError::corrupt(format!("schema {schema}: version {text:?} is not a number"))
            })?
        }
    };
    if version > VERSION {
        return Err(StoreError::corrupt(format!(
            "schema {schema} is at version {version}, newer than this build understands \
             ({VERSION}); upgrade this node"
        )));
    }
    if version < 1 {
        tx.batch_execute(&v1(schema)).await.map_err(e)?;
        tracing::info!(schema, version = 1, "created the store's tables");
    }
    // Later versions upgrade here, one step at a time.
    if version < 2 {
        tx.batch_execute(&v2(schema)).await.map_err(e)?;
        tracing::info!(schema, version = 2, "upgraded the store's tables");
    }
    if version != VERSION {
        tx.execute(
            &format!(
                "INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            &[&VERSION.to_string()],
        )
        .await
        .map_err(e)?;
    }
    tx.commit().await.map_err(e)
}

/// Version 1. Times are unix microseconds (`bigint`); records are kept whole as `json` (the
/// exact text, which also takes `\u0000`), with the columns queries filter on beside them.
fn v1(s: &str) -> String {
    format!(
        "
CREATE TABLE {s}.events (
    id          uuid PRIMARY KEY,
    tenant      text,
    accepted_at bigint NOT NULL,
    record      json NOT NULL
);
CREATE INDEX events_accepted_at ON {s}.events (accepted_at);

-- Dedupe keys; '' is the tenant of events without one.
CREATE TABLE {s}.dedupe (
    tenant         text NOT NULL,
    key            text NOT NULL,
    event_id       uuid NOT NULL,
    correlation_id uuid NOT NULL,
    expires_at     bigint NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE INDEX dedupe_expires_at ON {s}.dedupe (expires_at);

-- seq orders claims (with run_at) and dead-letter pages.
CREATE TABLE {s}.actions (
    id          uuid PRIMARY KEY,
    seq         bigint GENERATED BY DEFAULT AS IDENTITY UNIQUE,
    agent       text NOT NULL,
    tenant      text,
    event_id    uuid NOT NULL,
    state       text NOT NULL CHECK (state IN ('ready', 'leased', 'done', 'dead')),
    attempt     bigint NOT NULL CHECK (attempt >= 0),
    run_at      bigint NOT NULL,
    owner       text,
    lease_until bigint,
    last_error  json,
    updated_at  bigint NOT NULL,
    record      json NOT NULL
);
CREATE INDEX actions_ready ON {s}.actions (run_at, seq) WHERE state = 'ready';
CREATE INDEX actions_owner ON {s}.actions (owner) WHERE state = 'leased';
CREATE INDEX actions_lease_until ON {s}.actions (lease_until) WHERE state = 'leased';
CREATE INDEX actions_dead ON {s}.actions (seq) WHERE state = 'dead';
CREATE INDEX actions_done ON {s}.actions (updated_at) WHERE state = 'done';
CREATE INDEX actions_event ON {s}.actions (event_id);

CREATE TABLE {s}.results (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id uuid NOT NULL,
    expires_at bigint NOT NULL,
    record     json NOT NULL
);
CREATE INDEX results_request ON {s}.results (request_id, seq);
CREATE INDEX results_expires_at ON {s}.results (expires_at);

-- seq is the audit cursor: newer entries have larger numbers.
CREATE TABLE {s}.audit (
    seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             bigint NOT NULL,
    step           text NOT NULL,
    event_id       uuid,
    correlation_id uuid,
    request_id     uuid,
    action_id      uuid,
    event_type     text,
    user_id        text,
    tenant         text,
    agent          text,
    detail         json NOT NULL
);
CREATE INDEX audit_at ON {s}.audit (at);
CREATE INDEX audit_event ON {s}.audit (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX audit_correlation ON {s}.audit (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX audit_request ON {s}.audit (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_action ON {s}.audit (action_id) WHERE action_id IS NOT NULL;
CREATE INDEX audit_user ON {s}.audit (user_id, seq) WHERE user_id IS NOT NULL;
CREATE INDEX audit_tenant ON {s}.audit (tenant, seq) WHERE tenant IS NOT NULL;
"
    )
}

/// Version 2: events get a sequence number, their type and user as columns, and the registry.
///
/// `events.seq` orders event listings and is their cursor; the events already stored are
/// numbered in the order they were accepted, and the identity continues after them. `event_type`
/// and `user_id` are filled from the records. A tenant's events are listed through
/// `events_tenant` (events without a tenant are not in it); filtering by type or user reads the
/// newest events first until a page is full (no index: one would cost every accepted event an
/// index insert).
///
/// `json_filter_text(doc, path)` is the text a payload filter compares: the value at `path`
/// (field names, through objects only) as a string's text or a number's or boolean's JSON text;
/// NULL for anything else. It works on `json` (the text as written), so numbers keep their
/// written form.
///
/// `registry` keeps configuration entries; ids compare byte by byte (`COLLATE "C"`), so lists
/// come in byte order whatever the database's collation.
fn v2(s: &str) -> String {
    format!(
        "
ALTER TABLE {s}.events ADD COLUMN seq bigint, ADD COLUMN event_type text, ADD COLUMN user_id text;
UPDATE {s}.events AS e
SET seq = n.seq, event_type = e.record->>'type', user_id = e.record->'principal'->>'user'
FROM (SELECT id, row_number() OVER (ORDER BY accepted_at, id) AS seq FROM {s}.events) AS n
WHERE e.id = n.id;
ALTER TABLE {s}.events
    ALTER COLUMN seq SET NOT NULL,
    ALTER COLUMN event_type SET NOT NULL,
    ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE {s}.events ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY;
SELECT setval(pg_get_serial_sequence('{s}.events', 'seq'),
              (SELECT coalesce(max(seq), 0) + 1 FROM {s}.events), false);
CREATE UNIQUE INDEX events_seq ON {s}.events (seq);
CREATE INDEX events_tenant ON {s}.events (tenant, seq) WHERE tenant IS NOT NULL;

CREATE FUNCTION {s}.json_filter_text(doc json, path text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    v json := doc;
    k text;
BEGIN
    FOREACH k IN ARRAY path LOOP
        IF json_typeof(v) IS DISTINCT FROM 'object' THEN
            RETURN NULL;
        END IF;
        v := v -> k;
        IF v IS NULL THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN CASE json_typeof(v)
        WHEN 'string' THEN v #>> '{{}}'
        WHEN 'number' THEN v::text
        WHEN 'boolean' THEN v::text
    END;
END
$fn$;

CREATE TABLE {s}.registry (
    kind       text COLLATE \"C\" NOT NULL,
    id         text COLLATE \"C\" NOT NULL,
    revision   bigint NOT NULL,
    updated_at bigint NOT NULL,
    body       json NOT NULL,
    PRIMARY KEY (kind, id)
);
"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["atamo", "t_1", "_x", "a".repeat(63).as_str()] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Atamo",
            "1x",
            "pg_x",
            "a-b",
            "a b",
            "a;drop",
            "\"q\"",
            "a".repeat(64).as_str(),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_keys_differ_by_schema() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("atamo"), lock_key("atamo"));
    }

    /// A schema of version 1 with events stored out of order upgrades to version 2: its events
    /// are numbered in the order they were accepted, get their type and user columns, and list
    /// and filter like new ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_1_schema_upgrades_with_its_events() {
        use atamo_core::message::Timestamp;
        use atamo_core::store::conformance::{action, event};
        use atamo_core::store::{
            AcceptEvent, BatchWriter, Clock, DefinitionRegistry, EventLog, EventQuery, Maintenance,
            ManualClock, NewAction, PayloadFilter, RegistryKind, RegistryOutcome, RegistryWrite,
            WriteBatch,
        };
        use serde_json::json;
        use tokio_postgres::types::Json;

        let pg = atamo_test_pg::Pg::start();
        let schema = atamo_test_pg::fresh_schema("upgrade");
        let client = pg.client().await;
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        client.batch_execute(&v1(&schema)).await.unwrap();
        client
            .batch_execute(&format!(
                "CREATE TABLE {schema}.meta (key text PRIMARY KEY, value text NOT NULL);
                 INSERT INTO {schema}.meta VALUES ('schema_version', '1')"
            ))
            .await
            .unwrap();
        let start = 1_800_000_000_000_000u64;
        let mut events = Vec::new();
        for i in 0..6u64 {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            let tenant = (i % 3 == 0).then_some("acme");
            let mut e = event(
                user,
                tenant,
                Timestamp::from_unix_micros(start + i * 1_000_000),
            );
            e.payload = json!({"i": i, "state": if i < 3 { "open" } else { "closed" }});
            events.push(e);
        }
        // Stored in another order than accepted, as version 1 wrote them.
        for i in [3usize, 0, 5, 1, 4, 2] {
            let e = &events[i];
            client
                .execute(
                    &format!(
                        "INSERT INTO {schema}.events (id, tenant, accepted_at, record)
                         VALUES ($1, $2, $3, $4)"
                    ),
                    &[
                        &e.id.as_uuid(),
                        &e.principal.tenant.as_ref().map(|t| t.as_str()),
                        &crate::rows::ts(e.accepted_at),
                        &Json(e),
                    ],
                )
                .await
                .unwrap();
        }

        let clock = ManualClock::new(Timestamp::from_unix_micros(start + 3_600_000_000));
        let store = crate::PostgresStore::connect(
            &pg.url,
            crate::PgOptions {
                clock: clock.clone(),
                schema: Some(schema.clone()),
                pool_size: 2,
                ..crate::PgOptions::default()
            },
        )
        .await
        .expect("connect");
        let version: String = client
            .query_one(
                &format!("SELECT value FROM {schema}.meta WHERE key = 'schema_version'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, VERSION.to_string());
        let numbers = |items: &[atamo_core::store::EventRecord]| {
            items
                .iter()
                .map(|e| e.payload["i"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        let all = store.events(EventQuery::default()).await.unwrap();
        assert_eq!(numbers(&all.items), [5, 4, 3, 2, 1, 0]);
        assert_eq!(all.items[5], events[0]);
        let by_user = store
            .events(EventQuery {
                user: Some("bob".into()),
                payload: vec![PayloadFilter::parse("state", "open")],
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(numbers(&by_user.items), [1]);
        let by_type_and_tenant = store
            .events(EventQuery {
                event_type: Some("order.created".into()),
                tenant: Some("acme".into()),
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(numbers(&by_type_and_tenant.items), [3, 0]);
        let page = store
            .events(EventQuery {
                limit: 4,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        let rest = store
            .events(EventQuery {
                cursor: page.next,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(numbers(&rest.items), [1, 0]);

        // New events are numbered after the old ones.
        let mut newer = event("carol", None, clock.now());
        newer.payload = json!({"i": 6});
        let a = action(&newer, "mailer");
        store
            .write(WriteBatch::accepting(vec![AcceptEvent::new(
                newer.clone(),
                vec![NewAction::ready(a)],
            )]))
            .await
            .unwrap();
        let first = store
            .events(EventQuery {
                limit: 1,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(first.items, vec![newer]);
        let seqs: Vec<i64> = client
            .query(
                &format!("SELECT seq FROM {schema}.events ORDER BY seq"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(seqs, (1..=7).collect::<Vec<i64>>());
        assert_eq!(
            store
                .put(
                    &RegistryKind::AGENT,
                    "mailer",
                    json!({}),
                    RegistryWrite::Create,
                    vec![]
                )
                .await
                .unwrap(),
            RegistryOutcome::Written { revision: 1 }
        );
        let report = store.check().await.unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        drop(store);
        client
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
