//! Tokens from `gatehouse login`, cached per issuer, client and scopes under
//! the user's configuration folder (`$XDG_CONFIG_HOME/gatehouse/tokens/`, or
//! `~/.config/gatehouse/tokens/`). Each file is written whole to a private
//! temporary file (mode 0600, in a 0700 folder) and renamed into place, so a
//! reader never sees half a token and no other user can read one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use etcetera::BaseStrategy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A token is reused only while it has at least this long to live, so it does
/// not expire on its way to the gateway.
const MIN_REMAINING_SECS: i64 = 60;

/// Which sign-in a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

/// What is cached for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds; unknown when the provider said nothing.
    pub expires_at: Option<i64>,
}

impl CachedToken {
    pub fn is_fresh(&self) -> bool {
        self.expires_at
            .is_some_and(|at| at - now_secs() >= MIN_REMAINING_SECS)
    }
}

pub struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    /// The cache in the user's configuration folder.
    pub fn open() -> anyhow::Result<TokenCache> {
        let base = etcetera::choose_base_strategy().map_err(|e| {
            anyhow!("cannot find your configuration folder ({e}); set HOME or XDG_CONFIG_HOME")
        })?;
        Ok(TokenCache {
            dir: base.config_dir().join("gatehouse").join("tokens"),
        })
    }

    pub fn path(&self, key: &CacheKey) -> PathBuf {
        let mut h = Sha256::new();
        for part in [&key.issuer, &key.client_id, &key.scopes.join(" ")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let digest = hex::encode(h.finalize());
        self.dir.join(format!("{}.json", &digest[..24]))
    }

    /// The cached token for `key`, if there is a readable one.
    pub fn load(&self, key: &CacheKey) -> Option<CachedToken> {
        let path = self.path(key);
        let text = std::fs::read_to_string(&path).ok()?;
        match serde_json::from_str::<CachedToken>(&text) {
            Ok(t) if t.issuer == key.issuer && t.client_id == key.client_id => Some(t),
            Ok(_) => None,
            Err(e) => {
                eprintln!(
                    "ignoring the unreadable token cache {}: {e}",
                    path.display()
                );
                None
            }
        }
    }

    pub fn store(&self, token: &CachedToken) -> anyhow::Result<PathBuf> {
        let key = CacheKey {
            issuer: token.issuer.clone(),
            client_id: token.client_id.clone(),
            scopes: token.scopes.clone(),
        };
        let path = self.path(&key);
        create_private_dir(&self.dir)?;
        let tmp = self.dir.join(format!(".{}.tmp", std::process::id()));
        let body = serde_json::to_vec_pretty(token).context("cannot encode the token cache")?;
        write_private(&tmp, &body)
            .with_context(|| format!("cannot write the token cache {}", tmp.display()))?;
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e)
                .with_context(|| format!("cannot write the token cache {}", path.display()));
        }
        Ok(path)
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(body)?;
    file.sync_all()
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: i64) -> CachedToken {
        CachedToken {
            issuer: "https://idp.example.com".into(),
            client_id: "gatehouse-cli".into(),
            scopes: vec!["openid".into()],
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            expires_at: Some(now_secs() + expires_in),
        }
    }

    #[test]
    fn a_stored_token_is_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("gatehouse-cache-test-{}", std::process::id()));
        let cache = TokenCache {
            dir: dir.join("tokens"),
        };
        let t = token(600);
        let path = cache.store(&t).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = CacheKey {
            issuer: t.issuer.clone(),
            client_id: t.client_id.clone(),
            scopes: t.scopes.clone(),
        };
        assert_eq!(cache.load(&key).unwrap().access_token, "at");
        let other = CacheKey {
            client_id: "other".into(),
            ..key
        };
        assert!(cache.load(&other).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_token_near_its_expiry_is_not_fresh() {
        assert!(token(600).is_fresh());
        assert!(!token(30).is_fresh());
        assert!(
            !CachedToken {
                expires_at: None,
                ..token(600)
            }
            .is_fresh()
        );
    }
}
