//! The schema, versioned with `PRAGMA user_version`.

use atamo_core::store::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::codec::SqlResult;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i64 = 2;

/// The tables a store of [`SCHEMA_VERSION`] has.
pub(crate) const TABLES: [&str; 6] = [
    "events", "dedupe", "actions", "results", "audit", "registry",
];

/// `MIGRATIONS[i]` takes a database from version `i` to version `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2];

/// Version 1.
///
/// Ids are UUID text, times are unix microseconds, JSON is text. Each row keeps the whole record
/// as JSON in `body` (what reads return) next to the columns that queries filter on. There are
/// no foreign keys: an action names its event, and the check verifies that every action's
/// event is stored (enforcing it would cost a lookup on every insert of the hot path).
const V1: &str = "
CREATE TABLE events (
    id             TEXT PRIMARY KEY NOT NULL,
    event_type     TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    tenant         TEXT,
    correlation_id TEXT NOT NULL,
    request_id     TEXT,
    dedupe_key     TEXT,
    accepted_at    INTEGER NOT NULL,
    body           TEXT NOT NULL
);
CREATE INDEX events_accepted_at ON events (accepted_at);

-- tenant is '' for events without one.
CREATE TABLE dedupe (
    tenant         TEXT NOT NULL,
    key            TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX dedupe_expires_at ON dedupe (expires_at);

-- seq orders actions by insertion (claims break run_at ties with it; it is the dead letters'
-- cursor); AUTOINCREMENT so that a number is never given twice.
CREATE TABLE actions (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    event_id    TEXT NOT NULL,
    agent       TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    run_at      INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    tenant      TEXT,
    updated_at  INTEGER NOT NULL,
    body        TEXT NOT NULL
);
-- The partial indexes lead with state too, so the planner sees that they match both terms of
-- `state = 'x' AND column < ?` and prefers them to actions_claim.
CREATE INDEX actions_claim ON actions (run_at, seq) WHERE state = 'ready';
CREATE INDEX actions_lease ON actions (lease_until, owner) WHERE state = 'leased';
CREATE INDEX actions_dead ON actions (state, seq) WHERE state = 'dead';
CREATE INDEX actions_done ON actions (state, updated_at) WHERE state = 'done';
CREATE INDEX actions_event ON actions (event_id);

CREATE TABLE results (
    seq        INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    action_id  TEXT NOT NULL,
    agent      TEXT NOT NULL,
    tenant     TEXT,
    expires_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX results_request ON results (request_id, seq);
CREATE INDEX results_expires_at ON results (expires_at);

-- seq is the audit cursor. Every index also holds the rowid (seq), so a filter on one column
-- reads its newest entries first without sorting.
CREATE TABLE audit (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    step           TEXT NOT NULL,
    event_id       TEXT,
    correlation_id TEXT,
    request_id     TEXT,
    action_id      TEXT,
    event_type     TEXT,
    user_id        TEXT,
    tenant         TEXT,
    agent          TEXT,
    detail         TEXT NOT NULL
);
CREATE INDEX audit_event ON audit (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX audit_correlation ON audit (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX audit_request ON audit (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX audit_action ON audit (action_id) WHERE action_id IS NOT NULL;
";

/// Version 2: events get a sequence number of their own, and the registry.
///
/// `events.seq` orders event listings and is their cursor. Version 1's events were ordered by
/// their implicit rowid, which `VACUUM` may renumber; the table is rebuilt with
/// `seq INTEGER PRIMARY KEY AUTOINCREMENT` (a number is never given twice), keeping every row
/// with its rowid as its `seq` (so the order stays), the unique index on `id` and the index on
/// `accepted_at`.
///
/// Listing a tenant's events reads `events_tenant`, whose entries end with the rowid (`seq`),
/// so they come newest first without sorting; it holds only events with a tenant, so events
/// without one pay nothing for it. Listing by type or user scans the newest events first
/// until a page is full: an index on either cost every accepted event more than it saves (an
/// insert at a spread-out place of one more B-tree).
///
/// `registry` holds configuration entries by kind and id, the body as JSON text.
const V2: &str = "
CREATE TABLE events_v2 (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    event_type     TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    tenant         TEXT,
    correlation_id TEXT NOT NULL,
    request_id     TEXT,
    dedupe_key     TEXT,
    accepted_at    INTEGER NOT NULL,
    body           TEXT NOT NULL
);
INSERT INTO events_v2 (seq, id, event_type, user_id, tenant, correlation_id, request_id,
                       dedupe_key, accepted_at, body)
    SELECT rowid, id, event_type, user_id, tenant, correlation_id, request_id, dedupe_key,
           accepted_at, body
    FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;
CREATE INDEX events_accepted_at ON events (accepted_at);
CREATE INDEX events_tenant ON events (tenant) WHERE tenant IS NOT NULL;

CREATE TABLE registry (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    body       TEXT NOT NULL,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
";

/// The database's schema version.
pub(crate) fn version(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0)).db()
}

/// The error for a database this build cannot read.
fn unknown_version(found: i64) -> StoreError {
    StoreError::corrupt(format!(
        "the database has schema version {found}, this build understands version \
         {SCHEMA_VERSION} and older"
    ))
}

/// Brings the database to [`SCHEMA_VERSION`] in one transaction; refuses a newer one.
pub(crate) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // Checked before taking the write lock, so a newer database is refused without writing.
    let found = version(conn)?;
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(unknown_version(found));
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate).db()?;
    // Read again under the lock: another process may have migrated in between.
    let found = version(&tx)?;
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(unknown_version(found));
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(step).db()?;
        tracing::debug!(version = i + 1, "store schema migrated");
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .db()?;
    tx.commit().db()
}
