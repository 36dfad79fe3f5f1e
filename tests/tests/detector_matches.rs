//! How often the built-in detectors fire on ordinary text: the
//! false-positive rate the `secrets` and `pii` READMEs report, kept as a
//! regression bound.
//!
//! ```sh
//! cargo test -p gatehouse-tests --test detector_matches -- --nocapture
//! DETECTOR_CORPUS="$HOME/.cargo/registry/src:README.md" MAX_MB=64 cargo test ... -- --nocapture
//! ```
//!
//! The corpus (default: this repository's Rust sources and documents, then
//! the crates in `~/.cargo/registry/src`, in path order, up to `MAX_MB`,
//! default 16) is read for `.rs`, `.md`, `.toml`, `.txt` files; fixture
//! folders with deliberate fake secrets are skipped. The text runs through
//! the same compiled masks and stream masker as a response body. Per
//! detector it prints the matches and matches per MB, then a few samples
//! (clipped) so a person can judge them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse::mask::compile::MaskCompiler;
use gatehouse::mask::detectors;
use gatehouse::mask::{MaskMethod, MaskRule, MaskTarget};

const EXTENSIONS: &[&str] = &["rs", "md", "toml", "txt"];

fn corpus() -> Vec<PathBuf> {
    let roots: Vec<PathBuf> = match std::env::var("DETECTOR_CORPUS") {
        Ok(v) => v.split(':').map(PathBuf::from).collect(),
        Err(_) => {
            let root = gatehouse_tests::root();
            let mut r: Vec<PathBuf> =
                ["README.md", "ARCHITECTURE.md", "host/src", "sdk/src", "wit"]
                    .iter()
                    .map(|p| root.join(p))
                    .collect();
            if let Some(home) = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            {
                r.push(home.join("registry/src"));
            }
            r
        }
    };
    let mut files = Vec::new();
    for r in roots {
        let mut found = Vec::new();
        collect(&r, &mut found);
        found.sort();
        files.extend(found);
    }
    files
}

struct Measured {
    mb: f64,
    total: usize,
}

#[test]
fn secrets_false_positive_rate() {
    let m = measure("secrets", detectors::secret_names());
    // Measured here: see plugins/secrets/README.md. The bound catches a
    // detector that starts firing on ordinary code.
    assert!(
        m.total as f64 / m.mb < 2.0,
        "{} matches in {:.1} MB",
        m.total,
        m.mb
    );
}

#[test]
fn pii_false_positive_rate() {
    let m = measure("pii", detectors::pii_names());
    assert!(m.mb > 0.0);
}

fn measure(set: &str, names: Vec<&'static str>) -> Measured {
    let max_bytes: usize = std::env::var("MAX_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16usize)
        * 1024
        * 1024;
    let files = corpus();
    // Redact marks each match with its detector's name: count the marks.
    let rules: Vec<MaskRule> = names
        .iter()
        .map(|n| MaskRule {
            target: MaskTarget::Detector(n.to_string()),
            method: MaskMethod::Redact,
        })
        .collect();
    let compiled = MaskCompiler::new(b"k".to_vec())
        .compile(&rules, &[])
        .unwrap();
    let matcher = compiled.text.clone().expect("text rules");
    let key: Arc<[u8]> = compiled.hash_key.clone();
    let mut scanned = 0usize;
    let mut file_count = 0usize;
    let mut counts: BTreeMap<&str, usize> = names.iter().map(|n| (*n, 0)).collect();
    let mut samples: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &files {
        if scanned >= max_bytes {
            break;
        }
        let Ok(text) = std::fs::read(f) else { continue };
        scanned += text.len();
        file_count += 1;
        let masked = gatehouse::mask::stream::mask_all(&matcher, &key, &text);
        if masked == text {
            continue;
        }
        let masked = String::from_utf8_lossy(&masked);
        for name in &names {
            let marker = format!("[MASKED:{name}]");
            let n = masked.matches(&marker).count();
            if n == 0 {
                continue;
            }
            *counts.entry(name).or_default() += n;
            let s = samples.entry(name).or_default();
            if s.len() < 3 {
                for line in masked
                    .lines()
                    .filter(|l| l.contains(&marker))
                    .take(3 - s.len())
                {
                    let line: String = line.trim().chars().take(110).collect();
                    s.push(format!("{}: {line}", f.display()));
                }
            }
        }
    }
    let mb = scanned as f64 / (1024.0 * 1024.0);
    let total: usize = counts.values().sum();
    println!(
        "{set}: {file_count} files, {mb:.1} MB, {total} matches, {:.2} per MB",
        total as f64 / mb.max(1e-9)
    );
    for (name, n) in counts.iter().filter(|(_, n)| **n > 0) {
        println!("  {name:32} {n:6}  {:8.3} per MB", *n as f64 / mb.max(1e-9));
    }
    for (name, s) in &samples {
        println!("samples of {name}:");
        for line in s {
            println!("    {line}");
        }
    }
    Measured { mb, total }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.components().any(|c| c.as_os_str() == "fixtures") {
        return;
    }
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for e in entries.flatten() {
            collect(&e.path(), out);
        }
    } else if path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
    {
        out.push(path.to_path_buf());
    }
}
