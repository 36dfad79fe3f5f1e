//! `gatehouse policy check FILE.wasm`: load a component the way the server
//! does and print its description, or what is wrong with it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use gatehouse::config::PoliciesConfig;
use gatehouse::policy::{LoadedPolicy, PolicyEngine};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Compile and check a policy component against the contract.
    Check {
        file: PathBuf,
        /// Settings JSON to validate (defaults to FILE with a .json extension, if present).
        #[arg(long)]
        settings: Option<PathBuf>,
    },
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { file, settings } => {
            let bytes =
                std::fs::read(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let settings_path = settings.unwrap_or_else(|| file.with_extension("json"));
            let settings = match std::fs::read_to_string(&settings_path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".into(),
                Err(e) => anyhow::bail!("{}: {e}", settings_path.display()),
            };
            let name = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("policy")
                .to_string();
            let cache = std::env::temp_dir().join("gatehouse-policy-check");
            let limits = PoliciesConfig::default().limits_for(&name);
            let result = tokio::task::spawn_blocking(move || {
                let engine = PolicyEngine::new(&cache)?;
                LoadedPolicy::load(&engine, &name, &bytes, &settings, limits)
            })
            .await?;
            match result {
                Ok(p) => {
                    let out = serde_json::json!({
                        "file": file.display().to_string(),
                        "digest": &*p.digest,
                        "hooks": p.hooks.names(),
                        "description": p.description,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
