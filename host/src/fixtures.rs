//! Offline runs of a policy component against fixture files, for
//! `gatehouse policy test` and `gatehouse policy bench`: the file format
//! (`format`), events in the contract's types (`event`), and the comparison
//! with what was expected (`expect`). Policies run through the same engine,
//! limits and sandbox as when serving ([`crate::policy::LoadedPolicy`]).

pub mod event;
pub mod expect;
pub mod format;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::policy::bindings::types;
use crate::policy::{LoadedPolicy, PolicyError, decision};
use event::{Answer, Event};
use expect::{Mismatch, Observed};
use format::{CaseSpec, FORMAT_VERSION, FileSpec, Hook};

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}: no fixture files (*.yaml, *.yml, *.json)")]
    Empty(PathBuf),
}

fn invalid(path: &Path, message: impl Into<String>) -> FixtureError {
    FixtureError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One case, ready to run.
pub struct Case {
    pub file: PathBuf,
    pub name: String,
    pub hook: Hook,
    /// The settings JSON for this case's file, if it gives any.
    pub settings: Option<String>,
    pub context: types::Context,
    pub event: Event,
    pub expect: format::Expect,
}

/// Reads every fixture file under `path` (a file, or a folder searched
/// recursively, in name order). Any malformed file is an error naming it
/// and the problem.
pub fn load(path: &Path) -> Result<Vec<Case>, FixtureError> {
    let mut files = Vec::new();
    collect(path, &mut files)?;
    if files.is_empty() {
        return Err(FixtureError::Empty(path.to_path_buf()));
    }
    let mut cases = Vec::new();
    for file in files {
        cases.extend(load_file(&file)?);
    }
    Ok(cases)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), FixtureError> {
    let io = |source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io)?;
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if is_fixture(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn is_fixture(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Parses one file (YAML, of which JSON is a subset; `.json` files are
/// read as JSON for its sharper error messages).
pub fn load_file(path: &Path) -> Result<Vec<Case>, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| invalid(path, e.to_string()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| invalid(path, e.to_string()))?
    };
    let spec = normalise(value).map_err(|e| invalid(path, e))?;
    if spec.version != FORMAT_VERSION {
        return Err(invalid(
            path,
            format!(
                "fixture format version {} is not supported (this gatehouse reads version {FORMAT_VERSION})",
                spec.version
            ),
        ));
    }
    let settings = match &spec.settings {
        None => None,
        Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
        Some(_) => return Err(invalid(path, "settings: must be an object")),
    };
    spec.cases
        .into_iter()
        .enumerate()
        .map(|(i, case)| {
            build_case(path, &spec.context, settings.clone(), i, case)
                .map_err(|e| invalid(path, format!("cases[{i}]: {e}")))
        })
        .collect()
}

/// A single case at the top level becomes a one-case list.
fn normalise(mut value: serde_json::Value) -> Result<FileSpec, String> {
    let obj = value
        .as_object_mut()
        .ok_or("a fixture file is a mapping with `version` and `cases` (or one case)")?;
    if !obj.contains_key("cases") {
        let mut case = serde_json::Map::new();
        for key in ["name", "hook", "event", "expect"] {
            if let Some(v) = obj.remove(key) {
                case.insert(key.into(), v);
            }
        }
        obj.insert("cases".into(), serde_json::Value::Array(vec![case.into()]));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn build_case(
    path: &Path,
    file_context: &format::ContextSpec,
    settings: Option<String>,
    index: usize,
    spec: CaseSpec,
) -> Result<Case, String> {
    let event = event::parse(spec.hook, &spec.event).map_err(|e| format!("event: {e}"))?;
    expect::validate(&spec.expect, spec.hook)?;
    let context = event::context(spec.hook, file_context, &spec.context, index);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("fixture");
    Ok(Case {
        file: path.to_path_buf(),
        name: spec.name.unwrap_or_else(|| format!("{stem}[{index}]")),
        hook: spec.hook,
        settings,
        context,
        event,
        expect: spec.expect,
    })
}

/// The result of one case.
#[derive(Debug, Serialize)]
pub struct CaseReport {
    pub file: String,
    pub name: String,
    pub hook: &'static str,
    pub passed: bool,
    pub mismatches: Vec<Mismatch>,
    pub observed: Observed,
    #[serde(serialize_with = "micros")]
    pub elapsed: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// Loads a policy version for a settings text.
type LoadFn<'a> = Box<dyn Fn(&str) -> Result<LoadedPolicy, PolicyError> + 'a>;

/// Loads the policy once per distinct settings text.
pub struct PolicyVariants<'a> {
    load: LoadFn<'a>,
    default_settings: String,
    loaded: HashMap<String, Arc<LoadedPolicy>>,
}

impl<'a> PolicyVariants<'a> {
    pub fn new(
        default_settings: String,
        load: impl Fn(&str) -> Result<LoadedPolicy, PolicyError> + 'a,
    ) -> Self {
        Self {
            load: Box::new(load),
            default_settings,
            loaded: HashMap::new(),
        }
    }

    /// The policy for `settings` (or the default settings).
    pub fn get(&mut self, settings: Option<&str>) -> Result<Arc<LoadedPolicy>, PolicyError> {
        let settings = settings.unwrap_or(&self.default_settings).to_string();
        if let Some(p) = self.loaded.get(&settings) {
            return Ok(p.clone());
        }
        let p = Arc::new((self.load)(&settings)?);
        self.loaded.insert(settings, p.clone());
        Ok(p)
    }
}

/// Calls the case's hook once and converts the answer as serving does.
pub fn observe(policy: &LoadedPolicy, case: &Case) -> Observed {
    match event::call(policy, &case.context, &case.event) {
        None => Observed::Failure {
            failure: format!(
                "the policy does not export the {} interface (it exports: {})",
                case.hook.interface(),
                policy.hooks.names().join(", ")
            ),
        },
        Some(Err(f)) => Observed::Failure {
            failure: f.to_string(),
        },
        Some(Ok(Answer::HiddenTools(hidden_tools))) => Observed::HiddenTools { hidden_tools },
        Some(Ok(Answer::HiddenEntries(hidden_entries))) => {
            Observed::HiddenEntries { hidden_entries }
        }
        Some(Ok(Answer::Decision(d))) => match decision::from_wit(d) {
            Ok((outcome, annotations)) => Observed::Decision {
                outcome,
                annotations,
            },
            Err(e) => Observed::Failure {
                failure: format!("returned an invalid decision: {e}"),
            },
        },
    }
}

/// Runs one case; a policy that fails to load with the file's settings
/// fails the case with the load error.
pub fn run_case(variants: &mut PolicyVariants<'_>, case: &Case) -> CaseReport {
    let started = Instant::now();
    let observed = match variants.get(case.settings.as_deref()) {
        Ok(policy) => observe(&policy, case),
        Err(e) => Observed::Failure {
            failure: format!("the policy did not load: {e}"),
        },
    };
    let elapsed = started.elapsed();
    let mismatches = expect::compare(&case.expect, &observed);
    CaseReport {
        file: case.file.display().to_string(),
        name: case.name.clone(),
        hook: case.hook.name(),
        passed: mismatches.is_empty(),
        mismatches,
        observed,
        elapsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn one_case_files_and_case_lists_read_alike() {
        let dir = std::env::temp_dir().join(format!("gatehouse-fixtures-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        write(
            &dir,
            "a.yaml",
            "version: 1\nname: one\nhook: ssh.on-command\nevent: {command: ls}\nexpect: {verdict: allow}\n",
        );
        write(
            &dir.join("sub"),
            "b.json",
            r#"{"version": 1, "settings": {"x": 1}, "context": {"principal": {"groups": ["ops"]}},
                "cases": [{"hook": "mcp.filter-tools", "event": {"tools": []}, "expect": {"hidden_tools": []}}]}"#,
        );
        write(&dir, "notes.txt", "ignored");
        let cases = load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].name, "one");
        assert_eq!(cases[0].context.session.protocol, types::Protocol::Ssh);
        assert_eq!(cases[1].name, "b[0]");
        assert_eq!(cases[1].settings.as_deref(), Some(r#"{"x":1}"#));
        assert_eq!(cases[1].context.principal.groups, ["ops"]);
        assert_eq!(cases[1].context.request_id, "fixture-0");
    }

    #[test]
    fn settings_must_be_an_object() {
        let dir = std::env::temp_dir();
        let p = write(
            &dir,
            &format!("gatehouse-fixture-{}.yaml", uuid::Uuid::now_v7()),
            "version: 1\nsettings: [1]\nhook: ssh.on-command\nevent: {command: ls}\nexpect: {verdict: allow}\n",
        );
        let err = load_file(&p).err().unwrap().to_string();
        std::fs::remove_file(&p).unwrap();
        assert!(err.contains("settings: must be an object"), "{err}");
    }
}
