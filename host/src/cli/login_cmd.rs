//! `gatehouse login`: a person signs in at the gateway's identity provider
//! and gets a token for a connection, printed in the form that connection's
//! clients take (a `PGPASSWORD` line, an `Authorization` header, a kubeconfig
//! user). The gateway's `/v1/login` says which connections exist and where to
//! sign in; tokens are cached (see `token_cache`) and refreshed when they can be.
//!
//! Only the credential goes to stdout, so `eval "$(gatehouse login ...)"` and
//! `curl -H "$(gatehouse login ...)"` work; everything for the person goes to stderr.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::gateway::{Gateway, find_connection, pick_issuer};
use super::oauth::{Provider, Tokens};
use super::token_cache::{CacheKey, CachedToken, TokenCache, now_secs};

#[derive(Args)]
pub struct LoginArgs {
    /// The gateway's admin listener (`[admin].listen`), e.g.
    /// `http://gatehouse.internal:9090`. It names the connections and the
    /// identity provider to sign in at.
    #[arg(long)]
    gateway: Option<String>,
    /// The connection the token is for; its protocol decides the output form.
    #[arg(long)]
    connection: Option<String>,
    /// Sign in at this issuer: one of the gateway's, or, with --client-id, any.
    #[arg(long)]
    issuer: Option<String>,
    /// The public OAuth client to sign in with (default: the gateway's `cli_client_id`).
    #[arg(long)]
    client_id: Option<String>,
    /// Scopes, comma-separated (default: the gateway's `cli_scopes`, else
    /// `openid,offline_access`).
    #[arg(long, value_delimiter = ',')]
    scopes: Vec<String>,
    /// How to print the credential (default: by the connection's protocol).
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// Sign in again even if a cached token is still valid.
    #[arg(long)]
    force: bool,
    /// Sign in in a browser on this machine (authorization code with PKCE on
    /// a 127.0.0.1 redirect) instead of the device flow.
    #[arg(long)]
    browser: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The bare token.
    Token,
    /// A shell `export` line: `PGPASSWORD` for postgres, else `GATEHOUSE_TOKEN`.
    Env,
    /// An `Authorization: Bearer ...` header line.
    Header,
    /// A kubeconfig `users:` entry (YAML).
    Kubeconfig,
    /// A JSON object with the token, its expiry, issuer and connection.
    Json,
}

/// Where and as whom to sign in, and for which connection.
struct Target {
    key: CacheKey,
    connection: Option<String>,
    protocol: Option<String>,
}

pub async fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let target = resolve(&args).await?;
    let cache = TokenCache::open()?;
    let token = obtain(&cache, &target.key, args.force, args.browser).await?;
    let format = args.format.unwrap_or(match target.protocol.as_deref() {
        Some("postgres") => OutputFormat::Env,
        Some("http") => OutputFormat::Header,
        Some("kubernetes") => OutputFormat::Kubeconfig,
        _ => OutputFormat::Token,
    });
    println!("{}", render(format, &target, &token));
    Ok(ExitCode::SUCCESS)
}

async fn resolve(args: &LoginArgs) -> anyhow::Result<Target> {
    let Some(url) = &args.gateway else {
        let (Some(issuer), Some(client_id)) = (&args.issuer, &args.client_id) else {
            bail!(
                "give --gateway URL (the gateway's admin listener), or both --issuer and --client-id"
            );
        };
        return Ok(Target {
            key: CacheKey {
                issuer: issuer.clone(),
                client_id: client_id.clone(),
                scopes: scopes_or_default(&args.scopes, &[]),
            },
            connection: args.connection.clone(),
            protocol: None,
        });
    };
    let gateway = Gateway::new(url)?;
    let directory = gateway.directory().await?;
    let connection = match &args.connection {
        Some(name) => Some(find_connection(&gateway, &directory, name)?),
        None => None,
    };
    let (issuer, client_id, offered_scopes) = match (&args.issuer, &args.client_id) {
        (Some(issuer), Some(client_id)) => (issuer.clone(), client_id.clone(), vec![]),
        _ => {
            let i = pick_issuer(&gateway, &directory, args.issuer.as_deref())?;
            let client_id = args.client_id.clone().unwrap_or(i.client_id);
            (i.issuer, client_id, i.scopes)
        }
    };
    Ok(Target {
        key: CacheKey {
            issuer,
            client_id,
            scopes: scopes_or_default(&args.scopes, &offered_scopes),
        },
        protocol: connection.as_ref().map(|c| c.protocol.clone()),
        connection: connection.map(|c| c.name),
    })
}

fn scopes_or_default(given: &[String], offered: &[String]) -> Vec<String> {
    let given: Vec<String> = given.iter().filter(|s| !s.is_empty()).cloned().collect();
    if !given.is_empty() {
        given
    } else if !offered.is_empty() {
        offered.to_vec()
    } else {
        vec!["openid".into(), "offline_access".into()]
    }
}

/// A valid token for `key`: the cached one while it is fresh, else a
/// refreshed one, else from a new sign-in.
async fn obtain(
    cache: &TokenCache,
    key: &CacheKey,
    force: bool,
    browser: bool,
) -> anyhow::Result<CachedToken> {
    let cached = if force { None } else { cache.load(key) };
    if let Some(t) = &cached
        && t.is_fresh()
    {
        eprintln!(
            "Using the cached sign-in at {} ({}); --force signs in again.",
            key.issuer,
            expires_in(t.expires_at)
        );
        return Ok(t.clone());
    }
    let provider = Provider::discover(&key.issuer, &key.client_id, &key.scopes).await?;
    if let Some(rt) = cached.as_ref().and_then(|t| t.refresh_token.as_deref()) {
        match provider.refresh(rt).await {
            Ok(tokens) => {
                let t = save(cache, key, tokens)?;
                eprintln!(
                    "Refreshed the sign-in at {} ({}).",
                    key.issuer,
                    expires_in(t.expires_at)
                );
                return Ok(t);
            }
            Err(e) => {
                eprintln!("The cached sign-in could not be refreshed ({e:#}); signing in again.")
            }
        }
    }
    let tokens = if browser {
        provider.browser_login().await?
    } else {
        provider.device_login().await?
    };
    let t = save(cache, key, tokens)?;
    eprintln!(
        "Signed in at {} ({}).",
        key.issuer,
        expires_in(t.expires_at)
    );
    Ok(t)
}

fn save(cache: &TokenCache, key: &CacheKey, tokens: Tokens) -> anyhow::Result<CachedToken> {
    let t = CachedToken {
        issuer: key.issuer.clone(),
        client_id: key.client_id.clone(),
        scopes: key.scopes.clone(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        expires_at: tokens.expires_at,
    };
    cache.store(&t)?;
    Ok(t)
}

fn expires_in(at: Option<i64>) -> String {
    match at {
        Some(at) => format!("the token expires in {} min", (at - now_secs()).max(0) / 60),
        None => "the provider did not say when the token expires".into(),
    }
}

/// The token for a gateway's admin API from the login cache, refreshed if
/// needed; never starts an interactive sign-in.
pub async fn cached_token(gateway: &Gateway, issuer: Option<&str>) -> anyhow::Result<String> {
    let directory = gateway.directory().await?;
    let i = pick_issuer(gateway, &directory, issuer)?;
    let key = CacheKey {
        issuer: i.issuer,
        client_id: i.client_id,
        scopes: scopes_or_default(&[], &i.scopes),
    };
    let cache = TokenCache::open()?;
    let not_signed_in = || {
        anyhow::anyhow!(
            "you are not signed in at {}: run `gatehouse login --gateway {}` first, or set GATEHOUSE_TOKEN (or --token-env VAR) to an admin API key",
            key.issuer,
            gateway.url()
        )
    };
    let cached = cache.load(&key).ok_or_else(not_signed_in)?;
    if cached.is_fresh() {
        return Ok(cached.access_token);
    }
    let Some(rt) = &cached.refresh_token else {
        return Err(not_signed_in());
    };
    let provider = Provider::discover(&key.issuer, &key.client_id, &key.scopes).await?;
    let tokens = provider.refresh(rt).await.map_err(|e| {
        anyhow::anyhow!(
            "your sign-in at {} has expired and could not be renewed ({e:#}): run `gatehouse login --gateway {}` again",
            key.issuer,
            gateway.url()
        )
    })?;
    Ok(save(&cache, &key, tokens)?.access_token)
}

fn render(format: OutputFormat, target: &Target, token: &CachedToken) -> String {
    let secret = &token.access_token;
    match format {
        OutputFormat::Token => secret.clone(),
        OutputFormat::Header => format!("Authorization: Bearer {secret}"),
        OutputFormat::Env => {
            let var = if target.protocol.as_deref() == Some("postgres") {
                "PGPASSWORD"
            } else {
                "GATEHOUSE_TOKEN"
            };
            format!("export {var}={}", shell_quote(secret))
        }
        OutputFormat::Kubeconfig => {
            let name = match &target.connection {
                Some(c) => format!("gatehouse-{c}"),
                None => "gatehouse".into(),
            };
            // A JSON string is a valid YAML double-quoted scalar.
            format!(
                "users:\n- name: {}\n  user:\n    token: {}",
                json!(name),
                json!(secret)
            )
        }
        OutputFormat::Json => json!({
            "connection": target.connection,
            "protocol": target.protocol,
            "issuer": token.issuer,
            "token": secret,
            "expires_at": token.expires_at,
        })
        .to_string(),
    }
}

/// Single-quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(protocol: Option<&str>) -> Target {
        Target {
            key: CacheKey {
                issuer: "https://idp.example.com".into(),
                client_id: "gatehouse-cli".into(),
                scopes: vec![],
            },
            connection: Some("db".into()),
            protocol: protocol.map(str::to_string),
        }
    }

    fn token() -> CachedToken {
        CachedToken {
            issuer: "https://idp.example.com".into(),
            client_id: "gatehouse-cli".into(),
            scopes: vec![],
            access_token: "a.b'c".into(),
            refresh_token: None,
            expires_at: Some(1_900_000_000),
        }
    }

    #[test]
    fn each_form_prints_what_its_client_takes() {
        let t = token();
        assert_eq!(
            render(OutputFormat::Env, &target(Some("postgres")), &t),
            r"export PGPASSWORD='a.b'\''c'"
        );
        assert_eq!(
            render(OutputFormat::Header, &target(Some("http")), &t),
            "Authorization: Bearer a.b'c"
        );
        assert_eq!(
            render(OutputFormat::Kubeconfig, &target(Some("kubernetes")), &t),
            "users:\n- name: \"gatehouse-db\"\n  user:\n    token: \"a.b'c\""
        );
        let j: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &target(None), &t)).unwrap();
        assert_eq!(j["token"], "a.b'c");
        assert_eq!(j["expires_at"], 1_900_000_000);
    }
}
