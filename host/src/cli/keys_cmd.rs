//! `gatehouse keys create|list|revoke`.

use std::process::ExitCode;

use clap::Subcommand;

use gatehouse::audit::AuditStore;
use gatehouse::config::Config;
use gatehouse::identity::{ApiKeys, NewKey, PrincipalKind};

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
