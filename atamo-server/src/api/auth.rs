//! API keys and roles.
//!
//! A key is `atk_<id>_<secret>`: the id names the key (it shows in logs and audit), the secret
//! proves it. The store keeps the SHA-256 of the secret only (its definitions registry, kind
//! [`RegistryKind::API_KEY`]);
//! secrets are 256 random bits, so a fast hash is enough — a slow password hash protects
//! guessable secrets, which these are not. Keys are cached in memory; a key the cache does not
//! know (made on another node) is looked up in the store, and the cache is refreshed every few
//! seconds so that a key revoked elsewhere stops working.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use atamo_core::ids::TenantId;
use atamo_core::message::Timestamp;
use atamo_core::store::{
    AuditRecord, DefinitionRegistry, RegistryKind, RegistryOutcome, RegistryWrite, StoreError,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The registry kind API keys are stored under.
pub const KEY_KIND: RegistryKind = RegistryKind::API_KEY;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including keys and native or process agents.
    Admin,
    /// Agents, rules, types and dead letters.
    Operator,
    /// Publish events, send requests, read its own.
    Client,
    /// Read.
    Reader,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Client, Role::Reader];

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Client => "client",
            Self::Reader => "reader",
        }
    }

    /// The role of this name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key as it is listed (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyInfo {
    /// The key's id (the part of the token after `atk_`).
    pub id: String,
    /// What it may do.
    pub role: Role,
    /// The tenant it is bound to: it sees only that tenant's events, requests and audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tenant: Option<TenantId>,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was made (unix microseconds).
    pub created_at: u64,
}

/// The stored form: the info and the secret's hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    #[serde(flatten)]
    info: KeyInfo,
    /// Hex SHA-256 of the secret.
    hash: String,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The key's id (`environment` for the `ATAMO_ADMIN_TOKEN` key).
    pub key: String,
    /// Its role.
    pub role: Role,
    /// The tenant it is bound to.
    pub tenant: Option<TenantId>,
}

impl Caller {
    /// Whether the caller may see something of `tenant`: a tenant-bound key sees its own
    /// tenant only; a client key bound to none sees what belongs to no tenant; other keys see
    /// everything.
    pub fn may_see(&self, tenant: Option<&TenantId>) -> bool {
        match (&self.tenant, self.role) {
            (Some(mine), _) => tenant == Some(mine),
            (None, Role::Client) => tenant.is_none(),
            (None, _) => true,
        }
    }

    /// The tenant every listing of this caller is narrowed to, if any; `Err` when the caller
    /// asked for another tenant than its own.
    pub fn scope(&self, asked: Option<TenantId>) -> Result<Option<TenantId>, OtherTenant> {
        match (&self.tenant, asked) {
            (Some(mine), Some(a)) if &a != mine => Err(OtherTenant),
            (Some(mine), _) => Ok(Some(mine.clone())),
            (None, a) => Ok(a),
        }
    }

    /// The name audit records give the caller.
    pub fn audit_name(&self) -> String {
        format!("key:{}", self.key)
    }
}

/// A tenant-bound key asked about another tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherTenant;

/// A freshly made key: the token is shown once and never stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewKey {
    /// The bearer token to send in `Authorization: Bearer ...`.
    pub token: String,
    /// The key.
    #[serde(flatten)]
    pub info: KeyInfo,
}

/// The keys the service accepts.
pub struct KeyRing {
    registry: Arc<dyn DefinitionRegistry>,
    /// Each key's info and the SHA-256 of its secret, decoded once.
    keys: RwLock<HashMap<String, (KeyInfo, [u8; 32])>>,
    bootstrap: Option<[u8; 32]>,
    last_reload: std::sync::Mutex<Instant>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The 32 bytes a 64-digit hex hash stands for.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let digits = s.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn random_hex(n: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf)
        .map_err(|e| StoreError::unavailable(format!("no randomness for a key: {e}")))?;
    Ok(hex(&buf))
}

/// Equal without an early exit, so the time taken says nothing about where two hashes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `atk_<id>_<secret>`.
fn split_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("atk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

impl KeyRing {
    /// Keys from `registry`, plus `admin_token` (from `ATAMO_ADMIN_TOKEN`) as an admin key
    /// that is never stored.
    pub async fn open(
        registry: Arc<dyn DefinitionRegistry>,
        admin_token: Option<&str>,
    ) -> Result<Arc<Self>, StoreError> {
        let ring = Arc::new(Self {
            registry,
            keys: RwLock::new(HashMap::new()),
            bootstrap: admin_token.map(|t| sha256(t.as_bytes())),
            // In the past, so that the first unknown key is looked up at once.
            last_reload: std::sync::Mutex::new(
                Instant::now()
                    .checked_sub(Duration::from_secs(2))
                    .unwrap_or_else(Instant::now),
            ),
        });
        ring.reload().await?;
        Ok(ring)
    }

    /// Reads every key from the store again.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let entries = self.registry.entries(&KEY_KIND).await?;
        let mut keys = HashMap::with_capacity(entries.len());
        for e in entries {
            match serde_json::from_value::<StoredKey>(e.body) {
                Ok(k) => match unhex32(&k.hash) {
                    Some(hash) => {
                        keys.insert(k.info.id.clone(), (k.info, hash));
                    }
                    None => tracing::warn!(key = %e.id, "stored API key hash unreadable; ignored"),
                },
                Err(err) => {
                    tracing::warn!(key = %e.id, error = %err, "stored API key unreadable; ignored")
                }
            }
        }
        if let Ok(mut guard) = self.keys.write() {
            *guard = keys;
        }
        Ok(())
    }

    /// Refreshes the cache every `every` until the returned task is aborted.
    pub fn refresh_every(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let ring = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(ring) = ring.upgrade() else { return };
                if let Err(e) = ring.reload().await {
                    tracing::warn!(error = %e, "API keys not refreshed");
                }
            }
        })
    }

    /// The caller a bearer token stands for, or `None` when it is not a valid key.
    pub async fn verify(&self, token: &str) -> Option<Caller> {
        if let Some(hash) = &self.bootstrap {
            if same(&sha256(token.as_bytes()), hash) {
                return Some(Caller {
                    key: "environment".into(),
                    role: Role::Admin,
                    tenant: None,
                });
            }
        }
        let (id, secret) = split_token(token)?;
        let found = self.check(id, secret);
        if found.is_some() {
            return found;
        }
        // Perhaps made on another node since the last refresh: look again, at most once a second.
        let due = {
            let mut last = self.last_reload.lock().ok()?;
            if last.elapsed() >= Duration::from_secs(1) {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due && self.reload().await.is_ok() {
            return self.check(id, secret);
        }
        None
    }

    fn check(&self, id: &str, secret: &str) -> Option<Caller> {
        let keys = self.keys.read().ok()?;
        let (info, want) = keys.get(id)?;
        same(want, &sha256(secret.as_bytes())).then(|| Caller {
            key: info.id.clone(),
            role: info.role,
            tenant: info.tenant.clone(),
        })
    }

    /// Makes a key and stores its hash; the token in the answer is the only copy of the secret.
    pub async fn create(
        &self,
        role: Role,
        tenant: Option<TenantId>,
        name: Option<String>,
        audit: Vec<AuditRecord>,
    ) -> Result<NewKey, StoreError> {
        let id = random_hex(8)?;
        let secret = random_hex(32)?;
        let info = KeyInfo {
            id: id.clone(),
            role,
            tenant,
            name,
            created_at: Timestamp::now().unix_micros(),
        };
        let hash = sha256(secret.as_bytes());
        let stored = StoredKey {
            info: info.clone(),
            hash: hex(&hash),
        };
        let body = serde_json::to_value(&stored)
            .map_err(|e| StoreError::invalid("key not encodable").with_source(e))?;
        match self
            .registry
            .put(&KEY_KIND, &id, body, RegistryWrite::Create, audit)
            .await?
        {
            RegistryOutcome::Written { .. } => {}
            other => {
                return Err(StoreError::invalid(format!(
                    "key id {id} could not be stored: {other:?}"
                )))
            }
        }
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(id.clone(), (info.clone(), hash));
        }
        Ok(NewKey {
            token: format!("atk_{id}_{secret}"),
            info,
        })
    }

    /// Revokes a key; false when there is none of that id.
    pub async fn revoke(&self, id: &str, audit: Vec<AuditRecord>) -> Result<bool, StoreError> {
        let gone = self.registry.delete(&KEY_KIND, id, audit).await?;
        if let Ok(mut keys) = self.keys.write() {
            keys.remove(id);
        }
        Ok(gone)
    }

    /// Every stored key, by id.
    pub fn list(&self) -> Vec<KeyInfo> {
        let mut out: Vec<KeyInfo> = self
            .keys
            .read()
            .map(|k| k.values().map(|(info, _)| info.clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Whether any stored key is an admin key.
    pub fn has_admin(&self) -> bool {
        self.keys
            .read()
            .map(|k| k.values().any(|(info, _)| info.role == Role::Admin))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use atamo_core::store::MemoryStore;

    #[tokio::test]
    async fn keys_verify_until_revoked_and_only_their_hash_is_stored() {
        let store: Arc<dyn DefinitionRegistry> = Arc::new(MemoryStore::new());
        let ring = KeyRing::open(store.clone(), Some("an-admin-token-from-env"))
            .await
            .unwrap();
        let admin = ring.verify("an-admin-token-from-env").await.unwrap();
        assert_eq!(admin.role, Role::Admin);

        let key = ring
            .create(Role::Client, Some("acme".into()), None, vec![])
            .await
            .unwrap();
        let caller = ring.verify(&key.token).await.unwrap();
        assert_eq!(
            (caller.role, caller.tenant),
            (Role::Client, Some("acme".into()))
        );
        let stored = store.entry(&KEY_KIND, &key.info.id).await.unwrap().unwrap();
        let secret = key.token.rsplit('_').next().unwrap();
        assert!(!stored.body.to_string().contains(secret));

        // A second ring over the same store (another node) knows the key too.
        let other = KeyRing::open(store.clone(), None).await.unwrap();
        assert!(other.verify(&key.token).await.is_some());

        let mut wrong = key.token.clone();
        wrong.pop();
        wrong.push('x');
        assert!(ring.verify(&wrong).await.is_none());
        assert!(ring.verify("atk_nothing_here").await.is_none());
        assert!(ring.verify("").await.is_none());

        assert!(ring.revoke(&key.info.id, vec![]).await.unwrap());
        assert!(ring.verify(&key.token).await.is_none());
        other.reload().await.unwrap();
        assert!(other.verify(&key.token).await.is_none());
        assert!(!ring.revoke(&key.info.id, vec![]).await.unwrap());
    }

    #[test]
    fn tenant_scope() {
        let bound = Caller {
            key: "k".into(),
            role: Role::Client,
            tenant: Some("acme".into()),
        };
        assert!(bound.may_see(Some(&"acme".into())));
        assert!(!bound.may_see(Some(&"other".into())));
        assert!(!bound.may_see(None));
        assert_eq!(bound.scope(None), Ok(Some("acme".into())));
        assert!(bound.scope(Some("other".into())).is_err());
        let unbound_client = Caller {
            tenant: None,
            ..bound.clone()
        };
        assert!(unbound_client.may_see(None));
        assert!(!unbound_client.may_see(Some(&"acme".into())));
        let reader = Caller {
            role: Role::Reader,
            ..unbound_client
        };
        assert!(reader.may_see(Some(&"acme".into())));
    }
}
