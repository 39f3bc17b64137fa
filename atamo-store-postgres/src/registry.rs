//! The definitions registry on PostgreSQL: one table; each write is one statement (an insert,
//! an update or an upsert raising the revision) in a transaction with its audit records, so
//! nodes writing the same entry at once each get their own revision. Ids sort byte by byte
//! (`COLLATE "C"`).

use atamo_core::async_trait;
use atamo_core::store::{
    check_registry_id, AuditRecord, DefinitionRegistry, RegistryEntry, RegistryKind,
    RegistryOutcome, RegistryWrite, StoreError,
};
use serde_json::Value;
use tokio_postgres::types::Json;

use crate::error::retrying;
use crate::ops::conn;
use crate::rows::{get, read_int, read_ts, ts};
use crate::shared::Inner;
use crate::store::PostgresStore;
use crate::write::{AuditRows, AUDIT_INSERT};

#[async_trait]
impl DefinitionRegistry for PostgresStore {
    async fn entry(
        &self,
        kind: &RegistryKind,
        id: &str,
    ) -> Result<Option<RegistryEntry>, StoreError> {
        check_registry_id(id)?;
        entry(&self.inner, kind, id).await
    }

    async fn entries(&self, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
        entries(&self.inner, kind).await
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
        put(&self.inner, kind, id, &body, mode, &audit).await
    }

    async fn delete(
        &self,
        kind: &RegistryKind,
        id: &str,
        audit: Vec<AuditRecord>,
    ) -> Result<bool, StoreError> {
        check_registry_id(id)?;
        delete(&self.inner, kind, id, &audit).await
    }
}

const REGISTRY_COLUMNS: &str = "kind, id, revision, updated_at, body";

fn registry_entry(r: &tokio_postgres::Row) -> Result<RegistryEntry, StoreError> {
    let Json(body): Json<Value> = get(r, 4)?;
    Ok(RegistryEntry {
        kind: RegistryKind::new(get::<String>(r, 0)?)
            .map_err(|e| StoreError::corrupt("stored registry kind").with_source(e))?,
        id: get(r, 1)?,
        revision: read_int(get(r, 2)?)?,
        updated_at: read_ts(get(r, 3)?)?,
        body,
    })
}

async fn entry(
    inner: &Inner,
    kind: &RegistryKind,
    id: &str,
) -> Result<Option<RegistryEntry>, StoreError> {
    retrying("registry_get", || async {
        let c = conn(inner).await?;
        let st = c
            .prepare_cached(&format!(
                "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = $1 AND id = $2"
            ))
            .await?;
        match c.query_opt(&st, &[&kind.as_str(), &id]).await? {
            Some(r) => Ok(Some(registry_entry(&r)?)),
            None => Ok(None),
        }
    })
    .await
}

async fn entries(inner: &Inner, kind: &RegistryKind) -> Result<Vec<RegistryEntry>, StoreError> {
    retrying("registry_list", || async {
        let c = conn(inner).await?;
        // The columns' collation is "C": ids sort byte by byte.
        let st = c
            .prepare_cached(&format!(
                "SELECT {REGISTRY_COLUMNS} FROM registry WHERE kind = $1 ORDER BY id"
            ))
            .await?;
        let rows = c.query(&st, &[&kind.as_str()]).await?;
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

async fn put(
    inner: &Inner,
    kind: &RegistryKind,
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
    let rows = AuditRows::build(audit.iter());
    retrying("registry_put", || async {
        let now = ts(inner.clock.now());
        let mut c = conn(inner).await?;
        let tx = c.transaction().await?;
        let st = tx.prepare_cached(sql).await?;
        let Some(row) = tx
            .query_opt(&st, &[&kind.as_str(), &id, &now, &Json(body)])
            .await?
        else {
            tx.rollback().await?;
            return Ok(match mode {
                RegistryWrite::Create => RegistryOutcome::Exists,
                _ => RegistryOutcome::Missing,
            });
        };
        let revision = read_int(get(&row, 0)?)?;
        if !rows.is_empty() {
            let st = tx.prepare_cached(AUDIT_INSERT).await?;
            tx.execute(&st, &rows.params()).await?;
        }
        tx.commit().await?;
        Ok(RegistryOutcome::Written { revision })
    })
    .await
}

async fn delete(
    inner: &Inner,
    kind: &RegistryKind,
    id: &str,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    let rows = AuditRows::build(audit.iter());
    retrying("registry_delete", || async {
        let mut c = conn(inner).await?;
        let tx = c.transaction().await?;
        let st = tx
            .prepare_cached("DELETE FROM registry WHERE kind = $1 AND id = $2")
            .await?;
        if tx.execute(&st, &[&kind.as_str(), &id]).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if !rows.is_empty() {
            let st = tx.prepare_cached(AUDIT_INSERT).await?;
            tx.execute(&st, &rows.params()).await?;
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}
