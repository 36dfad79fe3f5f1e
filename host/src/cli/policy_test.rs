//! `gatehouse policy test FILE.wasm --fixtures DIR`: runs fixture cases
//! through the component offline and reports each case, with a diff of what
//! differed; non-zero exit when any case fails. `--format json` for CI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use gatehouse::fixtures::{self, CaseReport, PolicyVariants};
use gatehouse::policy::PolicyEngine;

use super::policy_cmd::{Component, LimitArgs, OutputFormat};

#[derive(Args)]
pub struct TestArgs {
    /// The policy component (.wasm).
    pub file: PathBuf,
    /// A fixture file or a folder of them (searched recursively).
    #[arg(long)]
    pub fixtures: PathBuf,
    /// Settings JSON for files that give none (defaults to FILE with a
    /// .json extension, if present, else `{}`).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    /// Run only the cases whose name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
}

pub async fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let component = Component::read(&args.file, args.settings.as_deref(), args.limits)?;
    let cases = fixtures::load(&args.fixtures)?;
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    if cases.is_empty() {
        anyhow::bail!("no fixture case matches --filter");
    }
    let cache = std::env::temp_dir().join("gatehouse-policy-check");
    let (description, reports) = tokio::task::spawn_blocking(move || {
        let engine = PolicyEngine::new(&cache)?;
        let mut variants = PolicyVariants::new(component.settings.clone(), |settings: &str| {
            component.load(&engine, settings)
        });
        // The description comes from the default settings when they load;
        // a load failure shows up in each case that uses them.
        let description = variants
            .get(None)
            .map(|p| format!("{} {}", p.description.name, p.description.version))
            .map_err(|e| e.to_string());
        let reports: Vec<CaseReport> = cases
            .iter()
            .map(|case| fixtures::run_case(&mut variants, case))
            .collect();
        anyhow::Ok((description, reports))
    })
    .await??;
    let failed = reports.iter().filter(|r| !r.passed).count();
    match args.format {
        OutputFormat::Json => {
            let out = serde_json::json!({
                "file": args.file.display().to_string(),
                "policy": description.as_ref().ok(),
                "load_error": description.as_ref().err(),
                "passed": reports.len() - failed,
                "failed": failed,
                "cases": reports,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        OutputFormat::Text => print_text(&args, &description, &reports, failed),
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(
    args: &TestArgs,
    description: &Result<String, String>,
    reports: &[CaseReport],
    failed: usize,
) {
    let description = match description {
        Ok(d) => d.clone(),
        Err(e) => format!("did not load with the default settings: {e}"),
    };
    println!(
        "{} ({}) against {}",
        args.file.display(),
        description,
        args.fixtures.display()
    );
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in reports {
        let mark = if r.passed { "ok  " } else { "FAIL" };
        println!(
            "  {mark}  {:width$}  {:26}  {:>8.1} ms",
            r.name,
            r.hook,
            r.elapsed.as_secs_f64() * 1000.0
        );
        if r.passed {
            continue;
        }
        println!("        in {}", r.file);
        for m in &r.mismatches {
            println!("        {}:", m.field);
            for line in m.expected.lines() {
                println!("          - {line}");
            }
            for line in m.actual.lines() {
                println!("          + {line}");
            }
        }
    }
    println!(
        "{} passed, {failed} failed (- expected, + actual)",
        reports.len() - failed
    );
}
