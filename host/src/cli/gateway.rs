//! The CLI's client for a running gateway's admin API: the `/v1/login`
//! discovery document, and the endpoints called with the caller's own
//! identity (keys, approvals, sessions). Every failure says what to do next.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use gatehouse::admin::login::{LoginConnection, LoginDirectory, LoginIssuer};

use super::login_cmd;

/// Where a command that talks to a gateway finds it and the caller's credential.
#[derive(clap::Args)]
pub struct RemoteArgs {
    /// The gateway's admin listener (`[admin].listen`), e.g. http://127.0.0.1:9090.
    #[arg(long, env = "GATEHOUSE_GATEWAY", global = true)]
    pub gateway: Option<String>,
    /// The environment variable holding your credential (default:
    /// GATEHOUSE_TOKEN if set, else your `gatehouse login` token).
    #[arg(long, global = true)]
    pub token_env: Option<String>,
    /// Which issuer's `gatehouse login` token to use.
    #[arg(long, global = true)]
    pub issuer: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl RemoteArgs {
    /// The gateway and the caller's credential.
    pub async fn connect(&self) -> anyhow::Result<(Gateway, String)> {
        let Some(url) = &self.gateway else {
            bail!(
                "which gateway? Pass --gateway URL (the admin listener, [admin].listen) or set GATEHOUSE_GATEWAY"
            );
        };
        let gateway = Gateway::new(url)?;
        let token = credential(&gateway, self.token_env.as_deref(), self.issuer.as_deref()).await?;
        Ok((gateway, token))
    }
}

/// `--token-env VAR`, else `GATEHOUSE_TOKEN`, else the `gatehouse login` token.
pub async fn credential(
    gateway: &Gateway,
    token_env: Option<&str>,
    issuer: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(var) = token_env {
        return match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
            _ => bail!("--token-env {var}: the environment variable {var} is not set"),
        };
    }
    if let Ok(t) = std::env::var("GATEHOUSE_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    login_cmd::cached_token(gateway, issuer).await
}

/// The admin listener of one gateway, e.g. `http://127.0.0.1:9090`.
pub struct Gateway {
    base: String,
    http: reqwest::Client,
}

impl Gateway {
    /// `url` is the admin listener (`[admin].listen`); `http://` is assumed
    /// when no scheme is given.
    pub fn new(url: &str) -> anyhow::Result<Gateway> {
        let url = url.trim().trim_end_matches('/');
        if url.is_empty() {
            bail!("--gateway: give the admin listener's URL, e.g. http://127.0.0.1:9090");
        }
        let base = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let parsed = reqwest::Url::parse(&base).map_err(|e| {
            anyhow!("--gateway {url:?} is not a URL ({e}); e.g. http://127.0.0.1:9090")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--gateway {url:?}: use an http:// or https:// URL");
        }
        // No limit on the whole exchange (an export streams as long as the
        // session is big); a gateway that stops answering still ends it.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Gateway { base, http })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Reads `/v1/login`.
    pub async fn directory(&self) -> anyhow::Result<LoginDirectory> {
        let resp = self.send(Method::GET, "/v1/login", None, None).await?;
        let status = resp.status();
        let not_admin = || {
            format!(
                "point --gateway at the admin listener ([admin].listen) of a Gatehouse that supports `gatehouse login`, not at {}",
                self.base
            )
        };
        if !status.is_success() {
            bail!(
                "{}/v1/login answered {} instead of the login directory: {}",
                self.base,
                status.as_u16(),
                not_admin()
            );
        }
        resp.json().await.with_context(|| {
            format!(
                "{}/v1/login did not return a login directory: {}",
                self.base,
                not_admin()
            )
        })
    }

    /// Calls an admin endpoint with a bearer credential; returns the JSON body
    /// of a success, or an error that says what to do.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
        action: &str,
    ) -> anyhow::Result<Value> {
        let resp = self.send(method, path, Some(token), body).await?;
        let resp = self.check(resp, path, action).await?;
        resp.json()
            .await
            .with_context(|| format!("{action}: the gateway's answer was not JSON"))
    }

    /// GETs an admin endpoint as `accept`; the caller reads the body (a
    /// transcript as text, an export as it streams).
    pub async fn get_raw(
        &self,
        path: &str,
        token: &str,
        accept: &str,
        action: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.check(resp, path, action).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.map_err(|e| self.unreachable(&e))
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        anyhow!(
            "cannot reach the gateway at {}: {}. Check --gateway (the admin listener, [admin].listen) and that `gatehouse serve` is running there",
            self.base,
            root_cause(e)
        )
    }

    async fn check(
        &self,
        resp: reqwest::Response,
        path: &str,
        action: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                "\nYour credential was not accepted. Sign in again with `gatehouse login --gateway {} --force`, or set GATEHOUSE_TOKEN (or --token-env VAR) to a valid API key.",
                self.base
            ),
            StatusCode::FORBIDDEN => format!(
                "\nYou are signed in, but not allowed to do this: {}.",
                forbidden_hint(path)
            ),
            _ => String::new(),
        };
        bail!(
            "{action}: the gateway answered {}: {message}{hint}",
            status.as_u16()
        )
    }
}

/// Which group a refused call needs, by endpoint.
fn forbidden_hint(path: &str) -> &'static str {
    if path.starts_with("/v1/approvals") {
        "deciding needs membership in one of the approval's approver groups (`gatehouse approvals show ID` lists them), and nobody decides their own request"
    } else if ["/v1/sessions", "/v1/events", "/v1/connections"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        "reading the audit trail needs one of the gateway's admin or auditor groups (admin.admin_groups, admin.auditor_groups); ask an administrator to add you"
    } else {
        "an administrator must add you to one of the gateway's admin groups (admin.admin_groups)"
    }
}

/// The connection named `name` in the directory, or an error listing the names.
pub fn find_connection(
    gateway: &Gateway,
    directory: &LoginDirectory,
    name: &str,
) -> anyhow::Result<LoginConnection> {
    if let Some(c) = directory.connections.iter().find(|c| c.name == name) {
        return Ok(c.clone());
    }
    let known: Vec<&str> = directory
        .connections
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if known.is_empty() {
        bail!(
            "the gateway at {} has no connection {name:?} (it has no connections)",
            gateway.url()
        );
    }
    bail!(
        "the gateway at {} has no connection {name:?}; its connections are: {}",
        gateway.url(),
        known.join(", ")
    )
}

/// The issuer to sign in at: the one named by `--issuer`, else the only one
/// the gateway offers.
pub fn pick_issuer(
    gateway: &Gateway,
    directory: &LoginDirectory,
    wanted: Option<&str>,
) -> anyhow::Result<LoginIssuer> {
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match wanted {
        Some(w) => directory
            .issuers
            .iter()
            .find(|i| same(&i.issuer, w))
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "the gateway at {} offers no CLI login at issuer {w}; it offers: {}. Pass --client-id to use another client at that issuer",
                    gateway.url(),
                    list_issuers(directory)
                )
            }),
        None => match directory.issuers.as_slice() {
            [] => bail!(
                "the gateway at {} offers no CLI login: no [[identity.oidc]] entry has a cli_client_id. Ask its operator to set one, or pass --issuer and --client-id",
                gateway.url()
            ),
            [one] => Ok(one.clone()),
            _ => bail!(
                "the gateway at {} trusts several issuers; choose one with --issuer: {}",
                gateway.url(),
                list_issuers(directory)
            ),
        },
    }
}

fn list_issuers(directory: &LoginDirectory) -> String {
    if directory.issuers.is_empty() {
        return "none".into();
    }
    directory
        .issuers
        .iter()
        .map(|i| i.issuer.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The innermost cause of a request error ("connection refused"), which is
/// what a person needs, rather than reqwest's outer wrapper.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
