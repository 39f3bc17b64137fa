//! The tables, and creating or upgrading them safely while other nodes start too.

use atamo_core::store::StoreError;
use tokio_postgres::Client;

use crate::error::store_error;

/// The schema version this build writes and understands.
pub(crate) const VERSION: i64 = 1;

/// The store's tables, for sizes.
pub(crate) const TABLES: [&str; 6] = ["meta", "events", "dedupe", "actions", "results", "audit"];

/// Checks a schema name: lower-case ASCII letters, digits and `_`, not starting with a digit or
/// `pg_`, at most 63 bytes. The name is used unquoted in statements, in `search_path` and as the
/// notification channel, so nothing needing quotes is accepted.
pub(crate) fn validate_schema(name: &str) -> Result<(), StoreError> {
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
        Err(StoreError::Invalid(format!(
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
    let e = |e: tokio_postgres::Error| store_error(&e);
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
            let text: String = row
                .try_get(0)
                .map_err(|err| crate::error::corrupt("schema version", err))?;
            text.parse::<i64>().map_err(|_| {
                StoreError::Corrupt(format!("schema {schema}: version {text:?} is not a number"))
            })?
        }
    };
    if version > VERSION {
        return Err(StoreError::Corrupt(format!(
            "schema {schema} is at version {version}, newer than this build understands \
             ({VERSION}); upgrade this node"
        )));
    }
    if version < 1 {
        tx.batch_execute(&v1(schema)).await.map_err(e)?;
        tracing::info!(schema, version = VERSION, "created the store's tables");
    }
    // Later versions upgrade here, one step at a time.
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

#[cfg(test)]
mod tests {
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
}
