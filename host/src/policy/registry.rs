//! The loaded policies, swapped atomically on reload. Readers take a
//! snapshot (`Arc` of the map) and keep it for the whole event, so an
//! in-flight decision finishes on the version it started with.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;

use super::PolicyError;
use super::engine::PolicyEngine;
use super::loaded::LoadedPolicy;
use crate::config::PoliciesConfig;
use crate::metrics::Metrics;

pub type Snapshot = Arc<HashMap<String, Arc<LoadedPolicy>>>;

/// What an operator sees for one policy name.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    pub name: String,
    pub loaded: bool,
    pub version: Option<String>,
    pub digest: Option<String>,
    pub hooks: Vec<&'static str>,
    pub loaded_at_ms: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<u64>,
    pub file: PathBuf,
}

pub struct PolicyRegistry {
    engine: Arc<PolicyEngine>,
    config: PoliciesConfig,
    current: ArcSwap<HashMap<String, Arc<LoadedPolicy>>>,
    /// Counts swaps: decisions cached under one generation die with it.
    generation: std::sync::atomic::AtomicU64,
    status: Mutex<BTreeMap<String, PolicyStatus>>,
    /// Serialises loads so two events for one file cannot race.
    loading: Mutex<()>,
    metrics: Arc<Metrics>,
}

/// The result of looking at one policy name on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    Loaded { version: String, digest: String },
    Unchanged,
    Removed,
    Failed(String),
}

impl PolicyRegistry {
    pub fn new(
        engine: Arc<PolicyEngine>,
        config: PoliciesConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            engine,
            config,
            current: ArcSwap::from_pointee(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            status: Mutex::new(BTreeMap::new()),
            loading: Mutex::new(()),
            metrics,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    pub fn snapshot(&self) -> Snapshot {
        self.current.load_full()
    }

    /// Changes whenever any policy is loaded, reloaded or removed.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn status(&self) -> Vec<PolicyStatus> {
        self.status
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Loads every policy in the folder. Failures are recorded, not fatal:
    /// the connections that need a missing policy deny until it loads.
    pub fn load_all(&self) -> Vec<(String, ReloadResult)> {
        let mut names: Vec<String> = match std::fs::read_dir(&self.config.dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter_map(|e| policy_name(&e.path()))
                .collect(),
            Err(e) => {
                tracing::error!(dir = %self.config.dir.display(), error = %e, "cannot read the policy folder");
                vec![]
            }
        };
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| (n.clone(), self.reload(&n)))
            .collect()
    }

    /// Brings one policy name in line with the folder: loads a new or changed
    /// component or settings file, unloads a removed one, keeps the last good
    /// version when the new one is broken.
    pub fn reload(&self, name: &str) -> ReloadResult {
        let _guard = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let wasm = self.config.dir.join(format!("{name}.wasm"));
        let settings_path = self.config.dir.join(format!("{name}.json"));
        if !wasm.exists() {
            let removed = self.swap(|map| map.remove(name).is_some());
            if let Ok(mut s) = self.status.lock() {
                s.remove(name);
            }
            if removed {
                tracing::info!(policy = name, "policy unloaded: its file was removed");
                self.metrics
                    .policies_loaded
                    .set(self.current.load().len() as i64);
                return ReloadResult::Removed;
            }
            return ReloadResult::Unchanged;
        }
        let outcome = read_inputs(&wasm, &settings_path).and_then(|(bytes, settings)| {
            let current = self.current.load().get(name).cloned();
            if let Some(cur) = &current {
                let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                if *cur.digest == digest && *cur.settings == *settings {
                    return Ok(None);
                }
            }
            let limits = self.config.limits_for(name);
            LoadedPolicy::load(&self.engine, name, &bytes, &settings, limits).map(Some)
        });
        match outcome {
            Ok(None) => ReloadResult::Unchanged,
            Ok(Some(policy)) => {
                let policy = Arc::new(policy);
                let result = ReloadResult::Loaded {
                    version: policy.version.to_string(),
                    digest: policy.digest.to_string(),
                };
                let status = PolicyStatus {
                    name: name.to_string(),
                    loaded: true,
                    version: Some(policy.version.to_string()),
                    digest: Some(policy.digest.to_string()),
                    hooks: policy.hooks.names(),
                    loaded_at_ms: Some(ms(policy.loaded_at)),
                    last_error: None,
                    last_error_at_ms: None,
                    file: wasm.clone(),
                };
                self.swap(|map| map.insert(name.to_string(), policy.clone()));
                if let Ok(mut s) = self.status.lock() {
                    s.insert(name.to_string(), status);
                }
                let elapsed = started.elapsed();
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabel::ok())
                    .inc();
                self.metrics
                    .policies_loaded
                    .set(self.current.load().len() as i64);
                tracing::info!(
                    policy = name,
                    version = %policy.version,
                    digest = %&policy.digest[..12],
                    hooks = ?policy.hooks.names(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    "policy loaded"
                );
                result
            }
            Err(e) => {
                let message = e.to_string();
                let still_serving = self.current.load().get(name).map(|p| p.version.to_string());
                tracing::error!(
                    policy = name,
                    error = %message,
                    still_serving = still_serving.as_deref().unwrap_or("nothing"),
                    "policy failed to load; the last good version stays in place"
                );
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabel::error())
                    .inc();
                self.metrics.policy_load_failed(name);
                if let Ok(mut s) = self.status.lock() {
                    let entry = s.entry(name.to_string()).or_insert_with(|| PolicyStatus {
                        name: name.to_string(),
                        loaded: false,
                        version: None,
                        digest: None,
                        hooks: vec![],
                        loaded_at_ms: None,
                        last_error: None,
                        last_error_at_ms: None,
                        file: wasm.clone(),
                    });
                    entry.last_error = Some(message.clone());
                    entry.last_error_at_ms = Some(ms(SystemTime::now()));
                }
                ReloadResult::Failed(message)
            }
        }
    }

    fn swap<R>(&self, f: impl FnOnce(&mut HashMap<String, Arc<LoadedPolicy>>) -> R) -> R {
        let mut next = HashMap::clone(&self.current.load());
        let r = f(&mut next);
        self.current.store(Arc::new(next));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        r
    }
}

fn read_inputs(wasm: &Path, settings: &Path) -> Result<(Vec<u8>, String), PolicyError> {
    let bytes = std::fs::read(wasm).map_err(|source| PolicyError::Io {
        path: wasm.to_path_buf(),
        source,
    })?;
    let settings = match std::fs::read_to_string(settings) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_string(),
        Err(source) => {
            return Err(PolicyError::Io {
                path: settings.to_path_buf(),
                source,
            });
        }
    };
    Ok((bytes, settings))
}

/// The policy name a file in the folder belongs to: `NAME.wasm` or `NAME.json`.
pub fn policy_name(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "wasm" && ext != "json" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    if stem.starts_with('.') || stem.is_empty() {
        return None;
    }
    Some(stem.to_string())
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_come_from_wasm_and_settings_files() {
        assert_eq!(
            policy_name(Path::new("/p/http-guard.wasm")).as_deref(),
            Some("http-guard")
        );
        assert_eq!(
            policy_name(Path::new("/p/http-guard.json")).as_deref(),
            Some("http-guard")
        );
        assert_eq!(policy_name(Path::new("/p/.http-guard.wasm.swp")), None);
        assert_eq!(policy_name(Path::new("/p/readme.md")), None);
    }
}
