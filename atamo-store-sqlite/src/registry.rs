//! The definitions registry on SQLite: one table, read on the read connections, written by
//! the writer thread with the entry's audit records in the same transaction.

use atamo_core::async_trait;
use atamo_core::message::Timestamp;
use atamo_core::store::{
    check_registry_id, AuditRecord, DefinitionRegistry, RegistryEntry, RegistryKind,
    RegistryOutcome, RegistryWrite, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::codec::{from_json, from_ts, to_json, ts, RawAudit, SqlResult};
use crate::ops::{encode_audit, insert_audit};
use crate::store::SqliteStore;

#[async_trait]
impl DefinitionRegistry for SqliteStore {
    async fn entry(
        &self,
        kind: &RegistryKind,
        id: &str,
    ) -> Result<Option<RegistryEntry>, StoreError> {
        check_registry_id(id)?;
        let (kind, id) = (kind.clone(), id.to_owned());
        self.readers.run(move |conn| entry(conn, &kind, &id)).await
    }

    async fn entries(&self, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
        let kind = kind.clone();
        self.readers.run(move |conn| entries(conn, &kind)).await
    }

    async fn put(
        &self,
        kind: &RegistryKind,
        id: &str,
        body: Value,
        mode: RegistryWrite,
        audit: Vec<AuditRecord>,
    ) -> Result<RegistryOutcome, StoreError> {
        check_registry_id(id)?;
        // Encoded here, so that the writer thread only binds.
        let body = to_json(&body)?;
        let audit = encode_audit(audit)?;
        let (kind, id) = (kind.clone(), id.to_owned());
        self.call(move |conn, now| put(conn, &kind, &id, &body, mode, &audit, now))
            .await
    }

    async fn delete(
        &self,
        kind: &RegistryKind,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> Result<bool, StoreError> {
        check_registry_id(id)?;
        let audit = encode_audit(audit)?;
        let (kind, id) = (kind.clone(), id.to_owned());
        self.call(move |conn, _| delete(conn, &kind, &id, &audit))
            .await
    }
}

/// The columns [`registry_entry`] reads, in order.
const REGISTRY_COLUMNS: &str = "kind, id, revision, updated_at, body";

fn registry_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode_registry(
    (kind, id, revision, updated_at, body): (String, String, i64, i64, String),
) -> Result<RegistryEntry, StoreError> {
    Ok(RegistryEntry {
        revision: u64::try_from(revision)
            .map_err(|_| StoreError::corrupt(format!("registry revision {revision}")))?,
        updated_at: from_ts(updated_at)?,
        body: from_json("registry entry", &body)?,
        kind: RegistryKind::new(kind)
            .map_err(|e| StoreError::corrupt("stored registry kind").with_source(e))?,
        id,
    })
}

fn entry(
    conn: &Connection,
    kind: &RegistryKind,
    id: &str,
) -> Result<Option<RegistryEntry>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = ?1 AND id = ?2"
    ))
    .db()?
    .query_row(params![kind.as_str(), id], registry_entry)
    .optional()
    .db()?
    .map(decode_registry)
    .transpose()
}

fn entries(conn: &Connection, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
    // Text compares byte by byte (BINARY): the order of ids is their byte order.
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = ?1 ORDER BY id"
        ))
        .db()?;
    let rows = stmt
        .query_map(params![kind.as_str()], registry_entry)
        .db()?
        .collect::<Result<Vec<_>, _>>()
        .db()?;
    rows.into_iter().map(decode_registry).collect()
}

/// Writes a registry entry as `mode` says, with its audit records when it is written.
fn put(
    conn: &Connection,
    kind: &RegistryKind,
    id: &str,
    body: &str,
    mode: RegistryWrite,
    audit: &[RawAudit],
    now: Timestamp,
) -> Result<RegistryOutcome, StoreError> {
    // The writer holds the database's write lock: nothing changes between the two statements.
    let current: Option<i64> = conn
        .prepare_cached("SELECT revision FROM registry WHERE kind = ?1 AND id = ?2")
        .db()?
        .query_row(params![kind.as_str(), id], |r| r.get(0))
        .optional()
        .db()?;
    let revision = match (current, mode) {
        (Some(_), RegistryWrite::Create) => return Ok(RegistryOutcome::Exists),
        (None, RegistryWrite::Replace) => return Ok(RegistryOutcome::Missing),
        (Some(old), _) => old.saturating_add(1),
        (None, _) => 1,
    };
    conn.prepare_cached(
        "INSERT INTO registry (kind, id, revision, updated_at, body) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, id) DO UPDATE SET revision = excluded.revision, \
         updated_at = excluded.updated_at, body = excluded.body",
    )
    .db()?
    .execute(params![kind.as_str(), id, revision, ts(now), body])
    .db()?;
    insert_audit(conn, audit)?;
    Ok(RegistryOutcome::Written {
        revision: u64::try_from(revision)
            .map_err(|_| StoreError::corrupt(format!("registry revision {revision}")))?,
    })
}

/// Deletes a registry entry, with its audit records when there was one.
fn delete(
    conn: &Connection,
    kind: &RegistryKind,
    id: &str,
    audit: &[RawAudit],
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM registry WHERE kind = ?1 AND id = ?2")
        .db()?
        .execute(params![kind.as_str(), id])
        .db()?;
    if n > 0 {
        insert_audit(conn, audit)?;
    }
    Ok(n > 0)
}
