//! Command-line parsing and dispatch. Each subcommand lives in its own module.

mod approvals_cmd;
mod audit_cmd;
mod gateway;
mod keys_cmd;
mod login_cmd;
mod oauth;
mod policy_bench;
mod policy_cmd;
mod policy_new;
mod policy_test;
mod sessions_cmd;
mod table;
mod terminal;
mod token_cache;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use gatehouse::config::Config;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Identity-aware policy gateway for agents and people"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "gatehouse.toml")]
        config: PathBuf,
    },
    /// Sign in at the identity provider and print a token for a connection.
    Login(login_cmd::LoginArgs),
    /// Manage API keys for agents and services.
    Keys {
        /// Without --gateway: write to this configuration's store directly
        /// (the bootstrap path for the first admin key).
        #[arg(long, short, default_value = "gatehouse.toml", global = true)]
        config: PathBuf,
        /// Go through this gateway's admin API (`[admin].listen`) as yourself.
        #[arg(long, global = true)]
        gateway: Option<String>,
        /// With --gateway: the environment variable holding your credential
        /// (default: GATEHOUSE_TOKEN if set, else your `gatehouse login` token).
        #[arg(long, global = true)]
        token_env: Option<String>,
        /// With --gateway: which issuer's `gatehouse login` token to use.
        #[arg(long, global = true)]
        issuer: Option<String>,
        #[command(subcommand)]
        command: keys_cmd::KeysCommand,
    },
    /// Requests held for a person: list, show, approve, deny (through a
    /// gateway's admin API, as yourself).
    Approvals {
        #[command(flatten)]
        remote: gateway::RemoteArgs,
        #[command(subcommand)]
        command: approvals_cmd::ApprovalsCommand,
    },
    /// Search, show, replay and export audit sessions (through a gateway's
    /// admin API, as an admin or auditor).
    Sessions {
        #[command(flatten)]
        remote: gateway::RemoteArgs,
        #[command(subcommand)]
        command: sessions_cmd::SessionsCommand,
    },
    /// Read and check the audit trail straight from the store.
    Audit {
        #[arg(long, short, default_value = "gatehouse.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Work with policy components.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
}

pub fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn,sqlx=warn")
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

impl Cli {
    /// The configuration `serve` runs with, loaded and validated; `None`
    /// for other commands.
    pub fn serve_config(&self) -> anyhow::Result<Option<Config>> {
        match &self.command {
            Command::Serve { config } => Ok(Some(Config::load(config)?)),
            _ => Ok(None),
        }
    }
}

/// Runs the command; `serve_config` is what [`Cli::serve_config`] loaded.
pub async fn run(cli: Cli, serve_config: Option<Config>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let config = match serve_config {
                Some(c) => c,
                None => Config::load(&config)?,
            };
            let (tx, rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                let _ = tx.send(true);
            });
            gatehouse::server::run(config, rx).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Login(args) => login_cmd::run(args).await,
        Command::Keys {
            gateway: Some(gateway),
            token_env,
            issuer,
            command,
            ..
        } => {
            let auth = keys_cmd::RemoteAuth {
                token_env: token_env.as_deref(),
                issuer: issuer.as_deref(),
            };
            keys_cmd::run_remote(&gateway, auth, command).await
        }
        Command::Keys {
            config,
            gateway: None,
            token_env,
            issuer,
            command,
        } => {
            if token_env.is_some() || issuer.is_some() {
                anyhow::bail!("--token-env and --issuer apply only with --gateway URL");
            }
            keys_cmd::run(&Config::load(&config)?, command).await
        }
        Command::Approvals { remote, command } => approvals_cmd::run(remote, command).await,
        Command::Sessions { remote, command } => sessions_cmd::run(remote, command).await,
        Command::Audit { config, command } => {
            audit_cmd::run(&Config::load(&config)?, command).await
        }
        Command::Policy { command } => policy_cmd::run(command).await,
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
