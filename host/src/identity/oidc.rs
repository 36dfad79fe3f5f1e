//! OpenID Connect bearer tokens. Each configured issuer is discovered with
//! the `openidconnect` crate; its signing keys (JWKS) are cached, refreshed
//! on a schedule and, rate-limited, when a token names an unknown key. Tokens
//! are verified with `jsonwebtoken`: only asymmetric algorithms the issuer
//! advertises, its own keys, `iss`, `aud`, `exp` and `nbf` with a small skew.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::IssuerUrl;
use openidconnect::core::CoreProviderMetadata;
use serde_json::Value;
use tokio::sync::RwLock;

use super::principal::{AuthError, Principal, PrincipalKind};
use crate::config::OidcIssuerConfig;

/// Algorithms Gatehouse ever accepts. Symmetric ones (HS*) and `none` are
/// refused outright: a bearer token must be signed with the issuer's private key.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What discovery found, and the current keys.
struct Keys {
    jwks_uri: String,
    algorithms: Vec<Algorithm>,
    set: JwkSet,
    fetched_at: Instant,
    last_unknown_kid_fetch: Option<Instant>,
}

pub struct OidcIssuer {
    config: OidcIssuerConfig,
    http: reqwest::Client,
    keys: RwLock<Option<Keys>>,
}

/// All configured issuers.
pub struct OidcVerifier {
    issuers: Vec<Arc<OidcIssuer>>,
}

impl OidcVerifier {
    /// Builds the verifier and starts discovery and key refresh in the
    /// background, so an issuer that is down at start does not stop Gatehouse;
    /// its tokens are refused until it answers.
    pub fn start(configs: &[OidcIssuerConfig]) -> Result<Arc<Self>, String> {
        let mut issuers = Vec::new();
        for c in configs {
            let http = issuer_http_client(c)?;
            let issuer = Arc::new(OidcIssuer {
                config: c.clone(),
                http,
                keys: RwLock::new(None),
            });
            tokio::spawn(refresh_loop(issuer.clone()));
            issuers.push(issuer);
        }
        Ok(Arc::new(Self { issuers }))
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Verifies a bearer token and returns its principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let unverified = Unverified::parse(token).ok_or(AuthError::Malformed)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.config.issuer.trim_end_matches('/') == unverified.iss.trim_end_matches('/'))
            .ok_or_else(|| {
                AuthError::InvalidToken("the token's issuer is not trusted here".into())
            })?;
        issuer.verify(token, &unverified).await
    }
}

/// The parts of a token read before verification, only to route it.
pub struct Unverified {
    pub iss: String,
    pub sub: String,
    pub kid: Option<String>,
    pub alg: String,
}

impl Unverified {
    pub fn parse(token: &str) -> Option<Unverified> {
        let mut parts = token.split('.');
        let (header, payload) = (parts.next()?, parts.next()?);
        parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
        let payload: Value = serde_json::from_slice(&b64.decode(payload).ok()?).ok()?;
        Some(Unverified {
            iss: payload.get("iss")?.as_str()?.to_string(),
            sub: payload
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kid: header
                .get("kid")
                .and_then(Value::as_str)
                .map(str::to_string),
            alg: header
                .get("alg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// How a refused token is recorded: who it claimed to be, never the token.
    pub fn describe(&self) -> String {
        let clip = |s: &str| s.chars().take(128).collect::<String>();
        format!(
            "jwt iss={} sub={} (unverified)",
            clip(&self.iss),
            clip(&self.sub)
        )
    }
}

impl OidcIssuer {
    async fn verify(&self, token: &str, unverified: &Unverified) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::InvalidToken(format!(
                "unsupported token algorithm {:?}",
                clip(&unverified.alg)
            ))
        })?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.clone().ok_or_else(|| {
            AuthError::InvalidToken("the token names no signing key (kid)".into())
        })?;
        let (jwk, algorithms) = self.key_for(&kid).await?;
        if !algorithms.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "the issuer does not sign with {:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| {
            AuthError::InvalidToken(format!("the issuer's key {kid} is unusable: {e}"))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[
            self.config.issuer.as_str(),
            self.config.issuer.trim_end_matches('/'),
        ]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            AuthError::InvalidToken(
                match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet (nbf)",
                    K::InvalidAudience => "the token is not meant for this gateway (aud)",
                    K::InvalidIssuer => "the token's issuer does not match",
                    K::InvalidSignature => "the token's signature does not verify",
                    K::InvalidAlgorithm => "the token's algorithm does not match the key",
                    K::MissingRequiredClaim(_) => {
                        "the token lacks a required claim (exp, iss, aud, sub)"
                    }
                    _ => "the token is malformed",
                }
                .into(),
            )
        })?;
        Ok(self.principal(&data.claims))
    }

    fn principal(&self, claims: &Value) -> Principal {
        let c = &self.config;
        let mut groups: Vec<String> = match claims.get(&c.groups_claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => s
                .split(c.groups_separator.as_str())
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => vec![],
        };
        for m in &c.claim_groups {
            let matches = match claims.get(&m.claim) {
                Some(Value::String(s)) => *s == m.value,
                Some(Value::Array(items)) => {
                    items.iter().any(|v| v.as_str() == Some(m.value.as_str()))
                }
                Some(Value::Bool(b)) => b.to_string() == m.value,
                Some(Value::Number(n)) => n.to_string() == m.value,
                Some(_) => false,
                None => false,
            };
            if matches {
                groups.extend(m.groups.iter().cloned());
            }
        }
        let mut seen = HashSet::new();
        groups.retain(|g| seen.insert(g.clone()));
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // RFC 8693: `act` names the party acting (the agent); `sub` is who it
        // acts for. A delegation claim, when configured, names the person instead.
        let act = claims
            .get("act")
            .and_then(|a| a.get("sub"))
            .and_then(Value::as_str);
        let delegated = c
            .delegation_claim
            .as_deref()
            .and_then(|d| claims.get(d))
            .and_then(Value::as_str);
        let (subject, acting_for, kind) = match (act, delegated) {
            (_, Some(person)) => (subject, Some(person.to_string()), PrincipalKind::Agent),
            (Some(actor), None) if actor != subject => {
                (actor.to_string(), Some(subject), PrincipalKind::Agent)
            }
            _ => (subject, None, PrincipalKind::Human),
        };
        // The token's `email` is the person's only when the token is theirs
        // (not an agent's) and the provider did not say it is unverified.
        let person = (kind == PrincipalKind::Human)
            .then(|| claims.get("email").and_then(Value::as_str))
            .flatten()
            .filter(|_| claims.get("email_verified").and_then(Value::as_bool) != Some(false))
            .map(str::to_string);
        Principal {
            subject,
            issuer: c.issuer.clone(),
            kind,
            groups,
            acting_for,
            person,
            allowed_connections: vec![],
        }
    }

    /// The key named `kid`, fetching the key set again (rate-limited) when it
    /// is not known yet.
    async fn key_for(
        &self,
        kid: &str,
    ) -> Result<(jsonwebtoken::jwk::Jwk, Vec<Algorithm>), AuthError> {
        {
            let keys = self.keys.read().await;
            let Some(k) = keys.as_ref() else {
                return Err(AuthError::InvalidToken(
                    "the issuer has not been reached yet; try again shortly".into(),
                ));
            };
            if let Some(jwk) = k.set.find(kid) {
                return Ok((jwk.clone(), k.algorithms.clone()));
            }
        }
        let mut keys = self.keys.write().await;
        let Some(k) = keys.as_mut() else {
            return Err(AuthError::InvalidToken(
                "the issuer has not been reached yet".into(),
            ));
        };
        if let Some(jwk) = k.set.find(kid) {
            return Ok((jwk.clone(), k.algorithms.clone()));
        }
        let interval = Duration::from_secs(self.config.unknown_kid_refresh_secs);
        if k.last_unknown_kid_fetch
            .is_none_or(|t| t.elapsed() >= interval)
        {
            k.last_unknown_kid_fetch = Some(Instant::now());
            match fetch_jwks(&self.http, &k.jwks_uri).await {
                Ok(set) => {
                    tracing::info!(issuer = %self.config.issuer, "signing keys fetched again for an unknown key id");
                    k.set = set;
                    k.fetched_at = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot fetch the issuer's keys")
                }
            }
            if let Some(jwk) = k.set.find(kid) {
                return Ok((jwk.clone(), k.algorithms.clone()));
            }
        }
        Err(AuthError::InvalidToken(format!(
            "the token is signed with an unknown key {:?}",
            clip(kid)
        )))
    }

    async fn discover(&self) -> Result<Keys, String> {
        let url = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| e.to_string())?;
        let metadata = CoreProviderMetadata::discover_async(url, &self.http)
            .await
            .map_err(|e| format!("discovery failed: {e}"))?;
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let advertised: Vec<Algorithm> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .filter_map(|v| v.as_str().and_then(|s| s.parse::<Algorithm>().ok()))
            .filter(|a| ASYMMETRIC.contains(a))
            .collect();
        let set = fetch_jwks(&self.http, &jwks_uri).await?;
        // Keys may name their algorithm; those count as advertised too.
        let mut algorithms = advertised;
        for k in &set.keys {
            if let Some(alg) = k
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                && ASYMMETRIC.contains(&alg)
                && !algorithms.contains(&alg)
            {
                algorithms.push(alg);
            }
        }
        Ok(Keys {
            jwks_uri,
            algorithms,
            set,
            fetched_at: Instant::now(),
            last_unknown_kid_fetch: None,
        })
    }
}

/// An HTTP client for talking to one issuer: its extra CA trusted, no
/// redirects followed (a redirect from a token or key endpoint opens the way
/// to SSRF), bounded time.
pub fn issuer_http_client(c: &OidcIssuerConfig) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(ca) = &c.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

async fn fetch_jwks(http: &reqwest::Client, uri: &str) -> Result<JwkSet, String> {
    let resp = http
        .get(uri)
        .send()
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{uri}: HTTP {}", resp.status()));
    }
    resp.json::<JwkSet>()
        .await
        .map_err(|e| format!("{uri}: not a JWK set: {e}"))
}

/// Discovers the issuer (retrying until it answers), then refreshes its keys
/// every `jwks_refresh_secs`.
async fn refresh_loop(issuer: Arc<OidcIssuer>) {
    let mut delay = Duration::from_millis(200);
    loop {
        match issuer.discover().await {
            Ok(keys) => {
                tracing::info!(issuer = %issuer.config.issuer, keys = keys.set.keys.len(), "OIDC issuer discovered");
                *issuer.keys.write().await = Some(keys);
                break;
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "OIDC issuer not reachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
    let every = Duration::from_secs(issuer.config.jwks_refresh_secs);
    loop {
        tokio::time::sleep(every).await;
        let uri = match issuer.keys.read().await.as_ref() {
            Some(k) if k.fetched_at.elapsed() >= every / 2 => k.jwks_uri.clone(),
            _ => continue,
        };
        match fetch_jwks(&issuer.http, &uri).await {
            Ok(set) => {
                if let Some(k) = issuer.keys.write().await.as_mut() {
                    k.set = set;
                    k.fetched_at = Instant::now();
                }
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "scheduled key refresh failed")
            }
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClaimGroups;
    use serde_json::json;

    fn issuer(delegation: Option<&str>, groups_claim: &str) -> OidcIssuer {
        OidcIssuer {
            config: OidcIssuerConfig {
                issuer: "https://idp.example.com".into(),
                audience: "gatehouse".into(),
                groups_claim: groups_claim.into(),
                groups_separator: ",".into(),
                claim_groups: vec![ClaimGroups {
                    claim: "email_verified".into(),
                    value: "true".into(),
                    groups: vec!["verified".into()],
                }],
                delegation_claim: delegation.map(str::to_string),
                leeway_secs: 30,
                jwks_refresh_secs: 3600,
                unknown_kid_refresh_secs: 10,
                ca_file: None,
                cli_client_id: None,
                cli_scopes: vec![],
                console_client_id: None,
                console_client_secret: None,
                console_scopes: vec![],
            },
            http: reqwest::Client::new(),
            keys: RwLock::new(None),
        }
    }

    #[test]
    fn groups_come_from_a_list_a_string_or_a_mapping() {
        let p = issuer(None, "groups")
            .principal(&json!({"sub": "u", "groups": ["a", "b", "a"], "email_verified": true}));
        assert_eq!(p.groups, ["a", "b", "verified"]);
        let p = issuer(None, "roles").principal(&json!({"sub": "u", "roles": "x,y,,z"}));
        assert_eq!(p.groups, ["x", "y", "z"]);
        assert_eq!(p.kind, PrincipalKind::Human);
    }

    #[test]
    fn an_actor_claim_makes_the_actor_the_subject_acting_for_the_person() {
        let p =
            issuer(None, "groups").principal(&json!({"sub": "alice", "act": {"sub": "ci-agent"}}));
        assert_eq!(
            (p.subject.as_str(), p.acting_for.as_deref(), p.kind),
            ("ci-agent", Some("alice"), PrincipalKind::Agent)
        );
        let p = issuer(Some("on_behalf_of"), "groups")
            .principal(&json!({"sub": "bot", "on_behalf_of": "bob"}));
        assert_eq!(
            (p.subject.as_str(), p.acting_for.as_deref()),
            ("bot", Some("bob"))
        );
    }

    #[test]
    fn a_person_is_known_by_a_verified_email_of_their_own_token() {
        let i = issuer(None, "groups");
        let p = i.principal(&json!({"sub": "00u1", "email": "alice@example.com"}));
        assert_eq!(p.person.as_deref(), Some("alice@example.com"));
        let p = i.principal(
            &json!({"sub": "00u1", "email": "alice@example.com", "email_verified": false}),
        );
        assert_eq!(p.person, None);
        // An agent's token: the email is not the agent's person.
        let p = i.principal(
            &json!({"sub": "alice", "act": {"sub": "ci"}, "email": "alice@example.com"}),
        );
        assert_eq!(p.person, None);
    }

    #[test]
    fn unverified_parsing_reads_only_what_routing_needs() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256","kid":"k1"}"#),
            b64.encode(r#"{"iss":"https://i","sub":"s"}"#)
        );
        let u = Unverified::parse(&t).unwrap();
        assert_eq!(
            (u.iss.as_str(), u.kid.as_deref(), u.alg.as_str()),
            ("https://i", Some("k1"), "RS256")
        );
        assert_eq!(u.describe(), "jwt iss=https://i sub=s (unverified)");
        assert!(Unverified::parse("a.b").is_none());
        assert!(Unverified::parse("a.b.c.d").is_none());
    }
}
