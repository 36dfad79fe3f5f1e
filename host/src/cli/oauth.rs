//! Signing a person in at an OpenID provider from the command line, with the
//! `openidconnect` crate and a public client (no secret):
//! - the device authorization grant (RFC 8628): the CLI prints a URL and a
//!   code, the person signs in in any browser, the CLI polls for the token;
//! - the authorization code grant with PKCE (RFC 7636) on a loopback
//!   redirect (RFC 8252), for `--browser`;
//! - the refresh token grant, when the provider gave a refresh token.
//!
//! Messages for the person go to stderr; nothing here writes to stdout.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClient, CoreClientAuthMethod, CoreDeviceAuthorizationResponse, CoreErrorResponseType,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
    CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, ProviderMetadata, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::gateway::root_cause;
use super::token_cache::now_secs;

/// How long `--browser` waits for the provider to redirect back.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(300);

/// The discovery fields `openidconnect` does not model by default.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}

type Metadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery: the authorization endpoint is known, the
/// token and userinfo endpoints may be, the device endpoint is added per flow.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a sign-in or a refresh produced.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// One issuer and the public client the CLI uses there.
pub struct Provider {
    issuer: String,
    metadata: Metadata,
    client_id: String,
    scopes: Vec<String>,
    http: reqwest::Client,
}

impl Provider {
    /// Reads the issuer's discovery document.
    pub async fn discover(
        issuer: &str,
        client_id: &str,
        scopes: &[String],
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Following redirects from a token endpoint opens the way to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build an HTTP client")?;
        let url = IssuerUrl::new(issuer.to_string())
            .map_err(|e| anyhow!("the issuer {issuer:?} is not a URL: {e}"))?;
        let metadata = Metadata::discover_async(url, &http).await.map_err(|e| {
            anyhow!(
                "cannot read the identity provider's configuration at {issuer}/.well-known/openid-configuration: {}",
                root_cause(&e)
            )
        })?;
        Ok(Provider {
            issuer: issuer.to_string(),
            metadata,
            client_id: client_id.to_string(),
            scopes: scopes.to_vec(),
            http,
        })
    }

    fn client(&self) -> Client {
        // The scopes are sent as configured: `openid` only when asked for.
        CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.client_id.clone()),
            None,
        )
        .disable_openid_scope()
    }

    fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().map(|s| Scope::new(s.clone()))
    }

    /// The device authorization grant. Prints the URL and the code on stderr
    /// and waits until the person has finished (or refused, or run out of time).
    pub async fn device_login(&self) -> anyhow::Result<Tokens> {
        let endpoint = self
            .metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone()
            .ok_or_else(|| {
                anyhow!(
                    "{} does not offer the device flow (no device_authorization_endpoint); sign in with --browser instead",
                    self.issuer
                )
            })?;
        let client = self.client().set_device_authorization_url(endpoint);
        let details: CoreDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(self.scopes())
            .request_async(&self.http)
            .await
            .map_err(|e| {
                request_error(
                    &self.issuer,
                    "the device authorization request",
                    &self.client_id,
                    e,
                )
            })?;

        let uri = details.verification_uri().as_str();
        let code = details.user_code().secret();
        eprintln!("To sign in, open {uri} and enter the code {code}");
        if let Some(complete) = details.verification_uri_complete() {
            eprintln!("(or open {})", complete.secret());
        }
        eprintln!(
            "Waiting for you to finish signing in (the code expires in {} minutes)...",
            details.expires_in().as_secs().div_ceil(60)
        );

        let response = client
            .exchange_device_access_token(&details)
            .map_err(|e| anyhow!("{}: {e}", self.issuer))?
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => match r.error() {
                    DeviceCodeErrorResponseType::AccessDenied => anyhow!(
                        "the sign-in was refused at {} (access_denied{}). Run `gatehouse login` again to retry",
                        self.issuer,
                        describe(r.error_description())
                    ),
                    DeviceCodeErrorResponseType::ExpiredToken => anyhow!(
                        "the code expired before the sign-in was finished. Run `gatehouse login` again and finish within the time shown"
                    ),
                    other => anyhow!(
                        "{} refused the token request: {}{}",
                        self.issuer,
                        other.as_ref(),
                        describe(r.error_description())
                    ),
                },
                other => anyhow!("the token request to {} failed: {}", self.issuer, root_cause(&other)),
            })?;
        Ok(tokens(&response))
    }

    /// The authorization code grant with PKCE, redirected to a one-shot
    /// listener on 127.0.0.1.
    pub async fn browser_login(&self) -> anyhow::Result<Tokens> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1 for the sign-in redirect")?;
        let port = listener.local_addr()?.port();
        let redirect = format!("http://127.0.0.1:{port}/callback");
        let client = self
            .client()
            .set_redirect_uri(RedirectUrl::new(redirect).map_err(|e| anyhow!("{e}"))?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge);
        if self.scopes.iter().any(|s| s == "offline_access") {
            // OpenID Connect Core 11: a refresh token is issued with consent.
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, state, _nonce) = request.url();
        eprintln!("To sign in, open this URL in a browser:\n{url}");
        open_browser(url.as_str());
        eprintln!("Waiting for the browser to come back to {}...", port);

        let code = tokio::time::timeout(BROWSER_TIMEOUT, receive_code(&listener, state.secret()))
            .await
            .map_err(|_| {
                anyhow!(
                    "no sign-in came back within {} minutes. Run `gatehouse login --browser` again, or use the device flow (without --browser)",
                    BROWSER_TIMEOUT.as_secs() / 60
                )
            })??;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| anyhow!("{}: {e}", self.issuer))?
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| request_error(&self.issuer, "the code exchange", &self.client_id, e))?;
        Ok(tokens(&response))
    }

    /// A new access token from a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Tokens> {
        let client = self.client();
        let rt = RefreshToken::new(refresh_token.to_string());
        let response = client
            .exchange_refresh_token(&rt)
            .map_err(|e| anyhow!("{}: {e}", self.issuer))?
            .request_async(&self.http)
            .await
            .map_err(|e| request_error(&self.issuer, "the refresh", &self.client_id, e))?;
        let mut t = tokens(&response);
        // A provider that does not rotate refresh tokens sends none back.
        if t.refresh_token.is_none() {
            t.refresh_token = Some(refresh_token.to_string());
        }
        Ok(t)
    }
}

fn tokens(response: &CoreTokenResponse) -> Tokens {
    let access_token = response.access_token().secret().clone();
    let expires_at = response
        .expires_in()
        .map(|d| now_secs() + d.as_secs() as i64)
        .or_else(|| jwt_expiry(&access_token));
    Tokens {
        access_token,
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_at,
    }
}

/// The `exp` of a JWT access token, read without verification: only to know
/// how long to cache it. Gatehouse verifies the token itself.
fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

fn describe(description: Option<&String>) -> String {
    description.map(|d| format!(": {d}")).unwrap_or_default()
}

fn request_error<RE: std::error::Error + 'static>(
    issuer: &str,
    what: &str,
    client_id: &str,
    e: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> anyhow::Error {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let hint = match r.error() {
                CoreErrorResponseType::InvalidClient
                | CoreErrorResponseType::UnauthorizedClient => {
                    format!(
                        ". The client {client_id:?} may not be registered there as a public client for this flow; check the issuer's cli_client_id"
                    )
                }
                CoreErrorResponseType::InvalidGrant => {
                    ". Sign in again with `gatehouse login --force`".to_string()
                }
                _ => String::new(),
            };
            anyhow!(
                "{issuer} refused {what}: {}{}{hint}",
                r.error().as_ref(),
                describe(r.error_description())
            )
        }
        other => anyhow!("{what} at {issuer} failed: {}", root_cause(&other)),
    }
}

/// Tries to open a browser; the URL is printed anyway. `$BROWSER` wins: its
/// first command, with `%s` replaced by the URL or the URL appended
/// (`BROWSER=none` opens nothing).
fn open_browser(url: &str) {
    let command = match std::env::var("BROWSER") {
        Ok(b) => b.split(':').next().unwrap_or_default().trim().to_string(),
        Err(_) if cfg!(target_os = "macos") => "open".into(),
        Err(_) => "xdg-open".into(),
    };
    let mut words = command.split_whitespace();
    let Some(program) = words.next().filter(|p| *p != "none") else {
        return;
    };
    let mut args: Vec<String> = words.map(|w| w.replace("%s", url)).collect();
    if !command.contains("%s") {
        args.push(url.to_string());
    }
    let _ = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// Serves the loopback redirect until one arrives with our `state`; returns
/// the authorization code. Other requests (a favicon, a stale tab) get a 404.
async fn receive_code(listener: &TcpListener, state: &str) -> anyhow::Result<String> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{target}")) else {
            respond(&mut stream, 400, "Bad request").await;
            continue;
        };
        if url.path() != "/callback" {
            respond(&mut stream, 404, "Not found").await;
            continue;
        }
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if param("state").as_deref() != Some(state) {
            respond(
                &mut stream,
                400,
                "This sign-in does not belong to the waiting `gatehouse login`.",
            )
            .await;
            continue;
        }
        if let Some(error) = param("error") {
            respond(&mut stream, 200, "Sign-in refused. You can close this tab.").await;
            let description = param("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            bail!(
                "the sign-in was refused ({error}{description}). Run `gatehouse login` again to retry"
            );
        }
        let Some(code) = param("code") else {
            respond(&mut stream, 400, "No authorization code.").await;
            bail!("the identity provider came back without an authorization code");
        };
        respond(
            &mut stream,
            200,
            "Signed in to Gatehouse. You can close this tab and return to the terminal.",
        )
        .await;
        return Ok(code);
    }
}

async fn respond(stream: &mut tokio::net::TcpStream, status: u16, text: &str) {
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Gatehouse</title></head><body><p>{text}</p></body></html>"
    );
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_expiry_is_read_for_caching_only() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.sig",
            b64.encode(r#"{"alg":"RS256"}"#),
            b64.encode(r#"{"exp":1900000000}"#)
        );
        assert_eq!(jwt_expiry(&token), Some(1_900_000_000));
        assert_eq!(jwt_expiry("opaque-token"), None);
    }
}
