//! `gatehouse policy bench FILE.wasm --fixture F`: the cost of a policy as
//! the server pays it: compile (cold, then from the precompile cache),
//! instantiate, and whole decisions (fresh instance + call + output checks)
//! per second with latency percentiles, on one thread.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use gatehouse::fixtures::{self, expect::Observed};
use gatehouse::policy::PolicyEngine;

use super::policy_cmd::{Component, LimitArgs, OutputFormat};

#[derive(Args)]
pub struct BenchArgs {
    /// The policy component (.wasm).
    pub file: PathBuf,
    /// The fixture file whose case is decided over and over.
    #[arg(long)]
    pub fixture: PathBuf,
    /// Which case of the file (by name; default: the first).
    #[arg(long)]
    pub case: Option<String>,
    /// How long to measure decisions, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Settings JSON when the fixture gives none (as for `policy test`).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Serialize)]
struct BenchReport {
    policy: String,
    case: String,
    hook: &'static str,
    bytes: usize,
    compile_ms: f64,
    cached_load_ms: f64,
    instantiate_us: f64,
    decisions: u64,
    decisions_per_sec: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    failures: u64,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        anyhow::bail!("--duration must be between 0 and 3600 seconds");
    }
    let component = Component::read(&args.file, args.settings.as_deref(), args.limits)?;
    let mut cases = fixtures::load_file(&args.fixture)?;
    let index = match &args.case {
        None => 0,
        Some(name) => cases
            .iter()
            .position(|c| &c.name == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no case named {name:?}", args.fixture.display()))?,
    };
    let case = cases.swap_remove(index);
    let duration = Duration::from_secs_f64(args.duration);
    let report = tokio::task::spawn_blocking(move || bench(&component, &case, duration)).await??;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => {
            println!(
                "{} — case {:?} ({})",
                report.policy, report.case, report.hook
            );
            println!(
                "  size            {:>10.1} KiB",
                report.bytes as f64 / 1024.0
            );
            println!("  compile (cold)  {:>10.1} ms", report.compile_ms);
            println!("  load (cached)   {:>10.1} ms", report.cached_load_ms);
            println!("  instantiate     {:>10.1} µs", report.instantiate_us);
            println!(
                "  decisions       {:>10.0} /s  ({} in {:.1} s, one thread)",
                report.decisions_per_sec, report.decisions, args.duration
            );
            println!(
                "  latency         p50 {:.1} µs  p90 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
                report.p50_us, report.p90_us, report.p99_us, report.max_us
            );
            if report.failures > 0 {
                println!("  failed calls    {}", report.failures);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(
    component: &Component,
    case: &fixtures::Case,
    duration: Duration,
) -> anyhow::Result<BenchReport> {
    // A private, empty precompile cache: the first load is a real compile.
    let cache = tempfile_dir()?;
    let engine = PolicyEngine::new(&cache.0)?;
    let settings = case.settings.as_deref().unwrap_or(&component.settings);
    let started = Instant::now();
    let policy = component.load(&engine, settings)?;
    let compile = started.elapsed();
    let started = Instant::now();
    let policy_again = component.load(&engine, settings)?;
    let cached_load = started.elapsed();
    drop(policy_again);

    const INSTANTIATIONS: u32 = 200;
    let started = Instant::now();
    for _ in 0..INSTANTIATIONS {
        policy
            .call("bench", |_, _| Ok(()))
            .map_err(|f| anyhow::anyhow!("instantiate: {f}"))?;
    }
    let instantiate = started.elapsed() / INSTANTIATIONS;

    // Warm up, then measure whole decisions as the chain makes them.
    for _ in 0..50 {
        fixtures::observe(&policy, case);
    }
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut failures = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        let t = Instant::now();
        let observed = fixtures::observe(&policy, case);
        latencies.push(t.elapsed());
        if matches!(observed, Observed::Failure { .. }) {
            failures += 1;
        }
    }
    let total = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: f64| -> f64 {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(BenchReport {
        policy: format!("{} {}", policy.description.name, policy.description.version),
        case: case.name.clone(),
        hook: case.hook.name(),
        bytes: component.bytes.len(),
        compile_ms: compile.as_secs_f64() * 1e3,
        cached_load_ms: cached_load.as_secs_f64() * 1e3,
        instantiate_us: instantiate.as_secs_f64() * 1e6,
        decisions: latencies.len() as u64,
        decisions_per_sec: latencies.len() as f64 / total.as_secs_f64(),
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: pct(1.0),
        failures,
    })
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

fn tempfile_dir() -> anyhow::Result<TempDir> {
    let dir = std::env::temp_dir().join(format!(
        "gatehouse-policy-bench-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(TempDir(dir))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
