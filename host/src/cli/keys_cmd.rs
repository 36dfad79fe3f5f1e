//! `gatehouse keys create|list|revoke`, two ways:
//! - with `--gateway URL`, through a running gateway's admin API (`/v1/keys`)
//!   as the caller: a `gatehouse login` token, or an admin API key from
//!   `GATEHOUSE_TOKEN` / `--token-env VAR`. The gateway checks the caller is
//!   an administrator and logs who did what.
//! - without it, straight into the store named by `--config`. That needs the
//!   store's credentials and no identity: it is the bootstrap path for the
//!   first admin key, run by whoever operates the gateway.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use gatehouse::audit::AuditStore;
use gatehouse::config::Config;
use gatehouse::identity::{ApiKeys, NewKey, PrincipalKind};

use super::gateway::Gateway;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key. It is printed once; only its hash is stored.
    Create {
        #[arg(long)]
        name: String,
        /// The person responsible for the key (the human an agent acts for).
        #[arg(long)]
        owner: String,
        #[arg(long, default_value = "agent", value_parser = ["agent", "service", "human"])]
        kind: String,
        /// Groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Connections the key may use, comma-separated; all when omitted.
        #[arg(long, value_delimiter = ',')]
        connections: Vec<String>,
        /// Lifetime, e.g. `30d`, `12h`, `90m`.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke { id: String },
}

pub async fn run(config: &Config, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let store = AuditStore::connect(&config.audit.database).await?;
    let keys = ApiKeys::new(store);
    match command {
        KeysCommand::Create {
            name,
            owner,
            kind,
            groups,
            connections,
            expires_in,
        } => {
            let expires_at_ms = match expires_in {
                Some(d) => Some(gatehouse::audit::record::now_ms() + parse_duration_ms(&d)?),
                None => None,
            };
            let (info, secret) = keys
                .create(&NewKey {
                    name,
                    owner,
                    kind: PrincipalKind::parse(&kind).unwrap_or(PrincipalKind::Agent),
                    groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
                    connections: connections.into_iter().filter(|c| !c.is_empty()).collect(),
                    expires_at_ms,
                })
                .await?;
            eprintln!(
                "created key {} ({}); store it now, it is not shown again:",
                info.id, info.name
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            for k in keys.list().await? {
                println!("{}", serde_json::to_string(&k)?);
            }
        }
        KeysCommand::Revoke { id } => {
            keys.revoke(&id).await?;
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `keys --gateway` finds its credential.
pub struct RemoteAuth<'a> {
    pub token_env: Option<&'a str>,
    pub issuer: Option<&'a str>,
}

pub async fn run_remote(
    gateway: &str,
    auth: RemoteAuth<'_>,
    command: KeysCommand,
) -> anyhow::Result<ExitCode> {
    let gateway = Gateway::new(gateway)?;
    let token = super::gateway::credential(&gateway, auth.token_env, auth.issuer).await?;
    match command {
        KeysCommand::Create {
            name,
            owner,
            kind,
            groups,
            connections,
            expires_in,
        } => {
            let expires_in_secs = match expires_in {
                Some(d) => Some(parse_duration_ms(&d)? / 1000),
                None => None,
            };
            let body = json!({
                "name": name,
                "owner": owner,
                "kind": kind,
                "groups": groups.into_iter().filter(|g| !g.is_empty()).collect::<Vec<_>>(),
                "connections": connections.into_iter().filter(|c| !c.is_empty()).collect::<Vec<_>>(),
                "expires_in_secs": expires_in_secs,
            });
            let created = gateway
                .call(
                    Method::POST,
                    "/v1/keys",
                    &token,
                    Some(&body),
                    "creating the key",
                )
                .await?;
            let secret = created["key"]
                .as_str()
                .ok_or_else(|| anyhow!("the gateway created a key but did not return it"))?;
            eprintln!(
                "created key {} ({}); store it now, it is not shown again:",
                created["info"]["id"].as_str().unwrap_or("?"),
                created["info"]["name"].as_str().unwrap_or("?")
            );
            println!("{secret}");
        }
        KeysCommand::List => {
            let listed = gateway
                .call(Method::GET, "/v1/keys", &token, None, "listing keys")
                .await?;
            for k in listed["keys"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                println!("{k}");
            }
        }
        KeysCommand::Revoke { id } => {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                bail!("{id:?} is not a key id (`keys list` shows them)");
            }
            gateway
                .call(
                    Method::DELETE,
                    &format!("/v1/keys/{id}"),
                    &token,
                    None::<&Value>,
                    &format!("revoking {id}"),
                )
                .await?;
            eprintln!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--expires-in: expected e.g. 30d, 12h, 90m, got {s:?}"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => anyhow::bail!("--expires-in: unknown unit {unit:?} (use d, h, m or s)"),
    };
    Ok(n * unit_ms)
}
