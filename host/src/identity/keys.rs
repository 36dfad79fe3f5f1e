//! Gatehouse API keys for agents and services. A key is
//! `ghk_<id>_<secret>`; only the sha256 of the secret is stored, compared in
//! constant time. Lookups are cached for a couple of seconds, which bounds
//! how long a revocation takes to reach every replica sharing the store.
//!
//! Each key made since schema version 2 also has a SCRAM-SHA-256 verifier of
//! the whole key string, so PostgreSQL clients can log in with the key id as
//! their user name and prove they hold the key without sending it.

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
use crate::postgres::scram::Verifier;

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
    /// `None` for keys made before verifiers were kept.
    #[serde(skip)]
    scram_verifier: Option<String>,
}

/// What a SCRAM login by key id finds in the store.
pub enum ScramKey {
    /// No key has this id.
    Unknown,
    /// The key was made before verifiers were kept: it can only log in by
    /// sending the key itself.
    NoVerifier(KeyInfo),
    Found(Verifier, KeyInfo),
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
        let full = format!("{PREFIX}{id}_{secret}");
        // 4096 rounds of PBKDF2: off the async workers.
        let verifier = tokio::task::spawn_blocking({
            let full = full.clone();
            move || Verifier::generate(&full).to_string()
        })
        .await
        .map_err(|e| KeyError::Invalid(format!("computing the SCRAM verifier failed: {e}")))?;
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
            scram_verifier: Some(verifier),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, owner, kind, groups_json, connections_json, secret_hash, created_at_ms, expires_at_ms, scram_verifier)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        .bind(&info.scram_verifier)
        .execute(self.store.pool())
        .await?;
        Ok((info, full))
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
        Self::principal(&info)
    }

    /// The key `id` and its SCRAM verifier, for a PostgreSQL client that
    /// gave the key id as its user name. Cached like every lookup.
    pub async fn scram_key(&self, id: &str) -> Result<ScramKey, AuthError> {
        let Some(info) = self.lookup(id).await? else {
            return Ok(ScramKey::Unknown);
        };
        match info.scram_verifier.as_deref().map(Verifier::parse) {
            None => Ok(ScramKey::NoVerifier(info)),
            Some(Ok(v)) => Ok(ScramKey::Found(v, info)),
            Some(Err(e)) => Err(AuthError::Store(format!("key {id}: {e}"))),
        }
    }

    /// Who a key belongs to once its holder proved it has it (the secret
    /// matched, or a SCRAM proof did): refused if revoked or expired.
    pub fn principal(info: &KeyInfo) -> Result<Principal, AuthError> {
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
            person: Some(info.owner.clone()),
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

const SELECT: &str = "SELECT id, name, owner, kind, groups_json, connections_json, secret_hash, created_at_ms, expires_at_ms, revoked_at_ms, scram_verifier FROM api_keys";

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
        scram_verifier: r.try_get("scram_verifier")?,
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

    fn new_key(name: &str) -> NewKey {
        NewKey {
            name: name.into(),
            owner: "alice@example.com".into(),
            kind: PrincipalKind::Agent,
            groups: vec!["dev".into()],
            connections: vec![],
            expires_at_ms: None,
        }
    }

    /// A store at schema version 1 with one key in it, then opened by this
    /// version: the key keeps working and has no verifier; new keys have one.
    #[tokio::test]
    async fn scram_verifiers_for_new_keys_and_none_for_old_ones() {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-keys-{}-{}.db",
            std::process::id(),
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("CREATE TABLE gatehouse_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)")
                .execute(&mut c)
                .await
                .unwrap();
            for s in crate::audit::schema::MIGRATIONS[0].statements {
                sqlx::query(s).execute(&mut c).await.unwrap();
            }
            sqlx::query("INSERT INTO gatehouse_migrations VALUES (1, 0)")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO api_keys (id, name, owner, kind, groups_json, connections_json, secret_hash, created_at_ms)
                 VALUES ('00000000000000aa', 'old', 'bob', 'agent', '[]', '[]', $1, 0)",
            )
            .bind(hash_secret(&"b".repeat(64)))
            .execute(&mut c)
            .await
            .unwrap();
        }
        let store = AuditStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let keys = ApiKeys::new(store);

        let old = format!("ghk_00000000000000aa_{}", "b".repeat(64));
        assert_eq!(keys.authenticate(&old).await.unwrap().subject, "old");
        assert!(matches!(
            keys.scram_key("00000000000000aa").await,
            Ok(ScramKey::NoVerifier(_))
        ));
        assert!(matches!(
            keys.scram_key("0123456789abcdef").await,
            Ok(ScramKey::Unknown)
        ));

        let (info, full) = keys.create(&new_key("new")).await.unwrap();
        let ScramKey::Found(verifier, found) = keys.scram_key(&info.id).await.unwrap() else {
            panic!("a new key has a verifier");
        };
        assert_eq!(found.id, info.id);
        // The verifier is of the whole key, as a client sends it.
        let text = verifier.to_string();
        let salt = text.split(['$', ':']).nth(2).unwrap();
        let salt =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, salt).unwrap();
        assert_eq!(Verifier::with_salt(&full, &salt, 4096), verifier);
        assert_eq!(ApiKeys::principal(&found).unwrap().subject, "new");

        keys.revoke(&info.id).await.unwrap();
        let ScramKey::Found(_, revoked) = keys.scram_key(&info.id).await.unwrap() else {
            panic!("a revoked key is still found");
        };
        assert_eq!(ApiKeys::principal(&revoked).err(), Some(AuthError::Revoked));
        assert_eq!(
            keys.authenticate(&full).await.err(),
            Some(AuthError::Revoked)
        );
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
    }
}
