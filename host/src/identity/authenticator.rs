//! One entry point for every adapter: a presented credential in, a
//! [`Principal`] out. Gatehouse API keys (`ghk_…`) go to the key store; a
//! JWT goes to the trusted OIDC issuers.

use std::sync::Arc;

use super::keys::ApiKeys;
use super::oidc::{OidcVerifier, Unverified};
use super::principal::{AuthError, Principal};

pub struct Authenticator {
    keys: Arc<ApiKeys>,
    oidc: Arc<OidcVerifier>,
}

impl Authenticator {
    pub fn new(keys: Arc<ApiKeys>, oidc: Arc<OidcVerifier>) -> Self {
        Self { keys, oidc }
    }

    /// The key store, for logins that prove a key without presenting it
    /// (PostgreSQL SCRAM).
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        if presented.starts_with("ghk_") {
            return self.keys.authenticate(presented).await;
        }
        if !self.oidc.is_empty() && presented.matches('.').count() == 2 {
            return self.oidc.authenticate(presented).await;
        }
        Err(AuthError::Malformed)
    }

    /// Which credential was presented, for the audit record: the key id or
    /// the token's claimed issuer and subject. Never a secret.
    pub fn describe(presented: &str) -> String {
        if let Some((id, _)) = presented
            .strip_prefix("ghk_")
            .and_then(|r| r.split_once('_'))
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return format!("key:{id}");
        }
        match Unverified::parse(presented) {
            Some(u) => u.describe(),
            None => "unrecognised credential".into(),
        }
    }
}
