//! Gatehouse API keys for agents and services. A key is
//! `ghk_<id>_<secret>`; only the sha256 of the secret is stored, compared in
//! constant time. Lookups are cached for a couple of seconds, which bounds
//! how long a revocation takes to reach every replica sharing the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use super::principal::{AuthError, Principal, PrincipalKind};
use crate::audit::AuditStore;
use crate::audit::record::now_ms;

const PREFIX: &str = "ghk_";
const CACHE_TTL: Duration = Duration::from_secs(2);
pub const ISSUER: &str = "gatehouse";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("no key with id {0}")]
    NotFound(String),
}

/// What `keys create` asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub owner: String,
    pub kind: PrincipalKind,
    pub groups: Vec<String>,
    pub connections: Vec<String>,
    pub expires_at_ms: Option<i64>,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub kind: String,
    pub groups: Vec<String>,
    pub connections: Vec<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    #[serde(skip)]
    secret_hash: String,
}

pub struct ApiKeys {
    store: AuditStore,
    cache: Mutex<HashMap<String, (Instant, Option<KeyInfo>)>>,
}

impl ApiKeys {
    pub fn new(store: AuditStore) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Creates a key and returns it in full; it cannot be shown again.
    pub async fn create(&self, k: &NewKey) -> Result<(KeyInfo, String), KeyError> {
        if k.name.trim().is_empty() || k.owner.trim().is_empty() {
            return Err(KeyError::Invalid("a key needs a name and an owner".into()));
        }
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut id_bytes);
        rand::rng().fill_bytes(&mut secret_bytes);
        let id = hex::encode(id_bytes);
        let secret = hex::encode(secret_bytes);
        let info = KeyInfo {
            id: id.clone(),
            name: k.name.clone(),
            owner: k.owner.clone(),
            kind: k.kind.as_str().into(),
            groups: k.groups.clone(),
            connections: k.connections.clone(),
            created_at_ms: now_ms(),
            expires_at_ms: k.expires_at_ms,
            revoked_at_ms: None,
            secret_hash: hash_secret(&secret),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, owner, kind, groups_json, connections_json, secret_hash, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&info.id)
        .bind(&info.name)
        .bind(&info.owner)
        .bind(&info.kind)
        .bind(serde_json::to_string(&info.groups).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&info.connections).unwrap_or_else(|_| "[]".into()))
        .bind(&info.secret_hash)
        .bind(info.created_at_ms)
        .bind(info.expires_at_ms)
        .execute(self.store.pool())
        .await?;
        Ok((info, format!("{PREFIX}{id}_{secret}")))
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let rows = sqlx::query(&format!("{SELECT} ORDER BY created_at_ms"))
            .fetch_all(self.store.pool())
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn revoke(&self, id: &str) -> Result<(), KeyError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms())
        .execute(self.store.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(KeyError::NotFound(id.to_string()));
        }
        if let Ok(mut c) = self.cache.lock() {
            c.remove(id);
        }
        Ok(())
    }

    /// Checks a presented key and returns who it belongs to.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let (id, secret) = parse(presented).ok_or(AuthError::Malformed)?;
        let info = self.lookup(id).await?.ok_or(AuthError::Unknown)?;
        let ok: bool = hash_secret(secret)
            .as_bytes()
            .ct_eq(info.secret_hash.as_bytes())
            .into();
        if !ok {
            return Err(AuthError::Unknown);
        }
        if info.revoked_at_ms.is_some() {
            return Err(AuthError::Revoked);
        }
        if info.expires_at_ms.is_some_and(|t| t <= now_ms()) {
            return Err(AuthError::Expired);
        }
        let kind = PrincipalKind::parse(&info.kind).unwrap_or(PrincipalKind::Agent);
        Ok(Principal {
            subject: info.name.clone(),
            issuer: ISSUER.into(),
            kind,
            groups: info.groups.clone(),
            acting_for: (kind == PrincipalKind::Agent).then(|| info.owner.clone()),
            allowed_connections: info.connections.clone(),
        })
    }

    async fn lookup(&self, id: &str) -> Result<Option<KeyInfo>, AuthError> {
        if let Ok(c) = self.cache.lock()
            && let Some((at, hit)) = c.get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(hit.clone());
        }
        let row = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.pool())
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?;
        let info = row
            .as_ref()
            .map(key_from_row)
            .transpose()
            .map_err(|e| AuthError::Store(e.to_string()))?;
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(id.to_string(), (Instant::now(), info.clone()));
        }
        Ok(info)
    }
}

const SELECT: &str = "SELECT id, name, owner, kind, groups_json, connections_json, secret_hash, created_at_ms, expires_at_ms, revoked_at_ms FROM api_keys";

fn key_from_row(r: &sqlx::any::AnyRow) -> Result<KeyInfo, KeyError> {
    let groups: String = r.try_get("groups_json")?;
    let connections: String = r.try_get("connections_json")?;
    Ok(KeyInfo {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        owner: r.try_get("owner")?,
        kind: r.try_get("kind")?,
        groups: serde_json::from_str(&groups).unwrap_or_default(),
        connections: serde_json::from_str(&connections).unwrap_or_default(),
        secret_hash: r.try_get("secret_hash")?,
        created_at_ms: r.try_get("created_at_ms")?,
        expires_at_ms: r.try_get("expires_at_ms")?,
        revoked_at_ms: r.try_get("revoked_at_ms")?,
    })
}

fn parse(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, 16) && hex_of(secret, 64)).then_some((id, secret))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_format_is_checked_before_any_lookup() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(
            parse(&format!("ghk_{id}_{secret}")),
            Some((id, secret.as_str()))
        );
        assert_eq!(parse(&format!("ghk_{id}_{}", "a".repeat(63))), None);
        assert_eq!(parse("Bearer x"), None);
        assert_eq!(parse(&format!("ghk_{id}x_{secret}")), None);
    }
}
