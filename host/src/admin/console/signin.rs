//! Signing a person in to the web console at an OpenID provider: the
//! authorization code grant with PKCE, run by the admin listener itself (a
//! "backend for frontend"), so tokens never reach page scripts.
//!
//! Nothing is kept between the two legs on the server: the state, the PKCE
//! verifier and the issuer travel in a short-lived, HttpOnly cookie scoped to
//! the callback path, so the callback may land on any replica. The state in
//! the query must equal the one in that cookie (login CSRF); the verifier
//! binds the code to this browser (code interception).

use std::sync::Arc;

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::config::OidcIssuerConfig;

/// How long a person has to finish signing in at the provider.
pub const FLOW_TTL_SECS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("no console sign-in is configured at issuer #{0}")]
    UnknownIssuer(usize),
    #[error("cannot reach the identity provider {issuer}: {message}")]
    Provider { issuer: String, message: String },
    #[error(
        "the sign-in could not be matched to this browser (it expired after {FLOW_TTL_SECS} s, or came from elsewhere); start again"
    )]
    StateMismatch,
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
}

/// What travels in the flow cookie between `/console/login` and the callback.
#[derive(Serialize, Deserialize)]
pub struct Flow {
    pub issuer: usize,
    pub state: String,
    pub verifier: String,
}

impl Flow {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(cookie: &str) -> Option<Flow> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// One issuer that offers console sign-in.
pub struct ConsoleIssuer {
    pub issuer: String,
    client_id: String,
    client_secret: Option<String>,
    scopes: Vec<String>,
    http: reqwest::Client,
    /// Discovery, read on first use and kept (again after a failure).
    metadata: Mutex<Option<CoreProviderMetadata>>,
}

/// A finished sign-in.
pub struct SignedIn {
    pub access_token: String,
    pub expires_in_secs: Option<u64>,
}

impl ConsoleIssuer {
    /// The issuers with a `console_client_id`, in configuration order (their
    /// index is what the login link names). Secrets were checked at load.
    pub fn from_config(configs: &[OidcIssuerConfig]) -> Result<Vec<Arc<ConsoleIssuer>>, String> {
        let mut out = Vec::new();
        for c in configs {
            let Some(client_id) = &c.console_client_id else {
                continue;
            };
            let client_secret = match &c.console_client_secret {
                Some(s) => Some(s.resolve()?),
                None => None,
            };
            out.push(Arc::new(ConsoleIssuer {
                issuer: c.issuer.clone(),
                client_id: client_id.clone(),
                client_secret,
                scopes: c.console_scopes.clone(),
                http: crate::identity::oidc::issuer_http_client(c)?,
                metadata: Mutex::new(None),
            }));
        }
        Ok(out)
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, SignInError> {
        let mut m = self.metadata.lock().await;
        if let Some(m) = &*m {
            return Ok(m.clone());
        }
        let err = |message: String| SignInError::Provider {
            issuer: self.issuer.clone(),
            message,
        };
        let url = IssuerUrl::new(self.issuer.clone()).map_err(|e| err(e.to_string()))?;
        let found = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| err(format!("discovery failed: {e}")))?;
        *m = Some(found.clone());
        Ok(found)
    }

    async fn client(
        &self,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SignInError,
    > {
        let metadata = self.metadata().await?;
        let redirect =
            RedirectUrl::new(redirect_uri.to_string()).map_err(|e| SignInError::Provider {
                issuer: self.issuer.clone(),
                message: format!("the redirect URI {redirect_uri:?} is not a URL: {e}"),
            })?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
        .disable_openid_scope()
        .set_redirect_uri(redirect))
    }

    /// Where to send the browser, and the flow to keep in its cookie.
    pub async fn start(
        &self,
        index: usize,
        redirect_uri: &str,
    ) -> Result<(String, Flow), SignInError> {
        let client = self.client(redirect_uri).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, _nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes.iter().map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .url();
        let flow = Flow {
            issuer: index,
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
        };
        Ok((url.to_string(), flow))
    }

    /// Trades the code for tokens. The caller has already matched the state.
    pub async fn finish(
        &self,
        flow: Flow,
        code: &str,
        redirect_uri: &str,
    ) -> Result<SignedIn, SignInError> {
        let client = self.client(redirect_uri).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Provider {
                issuer: self.issuer.clone(),
                message: e.to_string(),
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| SignInError::Refused(token_error(&e)))?;
        Ok(SignedIn {
            access_token: response.access_token().secret().clone(),
            expires_in_secs: response.expires_in().map(|d| d.as_secs()),
        })
    }
}

/// The provider's own words when it answered, else the transport error.
fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    e: &openidconnect::RequestTokenError<RE, T>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.to_string(),
        other => {
            let mut s = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(inner) = source {
                s = format!("{s}: {inner}");
                source = inner.source();
            }
            s
        }
    }
}

/// Constant-time comparison for the state.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_survives_its_cookie_and_garbage_does_not_parse() {
        let f = Flow {
            issuer: 1,
            state: "s".into(),
            verifier: "v".into(),
        };
        let back = Flow::decode(&f.encode()).expect("round trip");
        assert_eq!(
            (back.issuer, back.state.as_str(), back.verifier.as_str()),
            (1, "s", "v")
        );
        assert!(Flow::decode("not base64 !").is_none());
        assert!(Flow::decode("e30").is_none(), "{{}} lacks the fields");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
