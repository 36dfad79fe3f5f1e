//! `gatehouse policy ...`: work with policy components offline.
//!
//! - `check FILE.wasm`: load a component the way the server does and print
//!   its description, or what is wrong with it;
//! - `test FILE.wasm --fixtures DIR`: run fixture cases (`policy_test`);
//! - `bench FILE.wasm --fixture F`: decisions per second (`policy_bench`);
//! - `new NAME --lang L`: a policy project skeleton (`policy_new`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};

use gatehouse::config::{EffectiveLimits, MAX_MEMORY_MB, PoliciesConfig};
use gatehouse::policy::{LoadedPolicy, PolicyEngine, PolicyError};

use super::{policy_bench, policy_new, policy_test};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Compile and check a policy component against the contract.
    Check {
        file: PathBuf,
        /// Settings JSON to validate (defaults to FILE with a .json extension, if present).
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Run fixture cases (YAML or JSON) through a component, offline, with
    /// the serving engine's limits; exits non-zero when any case fails.
    Test(policy_test::TestArgs),
    /// Measure decisions per second and latency percentiles for a fixture.
    Bench(policy_bench::BenchArgs),
    /// Create a policy project: Rust (gatehouse-sdk), Python
    /// (componentize-py) or JavaScript (jco).
    New(policy_new::NewArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { file, settings } => check(file, settings).await,
        PolicyCommand::Test(args) => policy_test::run(args).await,
        PolicyCommand::Bench(args) => policy_bench::run(args).await,
        PolicyCommand::New(args) => policy_new::run(args),
    }
}

async fn check(file: PathBuf, settings: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let component = Component::read(&file, settings.as_deref(), LimitArgs::default())?;
    let cache = std::env::temp_dir().join("gatehouse-policy-check");
    let result = tokio::task::spawn_blocking(move || {
        let engine = PolicyEngine::new(&cache)?;
        component.load(&engine, &component.settings)
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

/// A component file with its name and default settings, loaded the way the
/// server loads it (same engine configuration and default limits).
pub struct Component {
    pub name: String,
    pub bytes: Arc<[u8]>,
    pub settings: String,
    pub limits: EffectiveLimits,
}

/// The serving defaults for a call's deadline and memory, overridable to
/// match a deployment's `[policies]` settings.
#[derive(clap::Args, Clone, Copy, Default)]
pub struct LimitArgs {
    /// Each call's deadline (default: the server's, 50 ms).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Each call's memory cap (default: the server's, 64 MiB).
    #[arg(long)]
    pub memory_mb: Option<u64>,
}

impl Component {
    /// Reads `file`, and the settings from `settings` or else from FILE with
    /// a `.json` extension when present, else `{}`.
    pub fn read(
        file: &Path,
        settings: Option<&Path>,
        limits: LimitArgs,
    ) -> anyhow::Result<Component> {
        let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let settings_path = settings
            .map(Path::to_path_buf)
            .unwrap_or_else(|| file.with_extension("json"));
        let settings = match std::fs::read_to_string(&settings_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && settings.is_none() => "{}".into(),
            Err(e) => anyhow::bail!("{}: {e}", settings_path.display()),
        };
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("policy")
            .to_string();
        let mut effective = PoliciesConfig::default().limits_for(&name);
        if let Some(ms) = limits.timeout_ms {
            if !(1..=60_000).contains(&ms) {
                anyhow::bail!("--timeout-ms must be between 1 and 60000");
            }
            effective.timeout = std::time::Duration::from_millis(ms);
        }
        if let Some(mb) = limits.memory_mb {
            if !(1..=MAX_MEMORY_MB).contains(&mb) {
                anyhow::bail!("--memory-mb must be between 1 and {MAX_MEMORY_MB}");
            }
            effective.memory_bytes = (mb * 1024 * 1024) as usize;
        }
        Ok(Component {
            name,
            bytes: bytes.into(),
            settings,
            limits: effective,
        })
    }

    /// Compiles (or takes from the engine's cache), links and checks it
    /// with `settings`. Blocking.
    pub fn load(
        &self,
        engine: &Arc<PolicyEngine>,
        settings: &str,
    ) -> Result<LoadedPolicy, PolicyError> {
        LoadedPolicy::load(engine, &self.name, &self.bytes, settings, self.limits)
    }
}
