//! `gatehouse policy new NAME --lang rust|python|js [--hook H]`: a policy
//! project that builds and passes `gatehouse policy test` as generated. The
//! contract (`wit/`) is copied in, so the project stands on its own; the
//! same policy and fixture exist for every language (`policy_new/hooks.rs`).

mod hooks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use hooks::HookTemplate;

const WIT_TYPES: &str = include_str!("../../../wit/types.wit");
const WIT_HOOKS: &str = include_str!("../../../wit/hooks.wit");

#[derive(Args)]
pub struct NewArgs {
    /// The policy's name (lower case letters, digits and `-`); also the folder.
    pub name: String,
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// The hook interface the policy implements.
    #[arg(long, default_value = "http", value_parser = ["http", "postgres", "kubernetes", "llm", "mcp", "ssh"])]
    pub hook: String,
    /// Where to create the folder (default: the current folder).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Rust: depend on the SDK at this path instead of the registry version.
    #[arg(long)]
    pub sdk_path: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let hook =
        hooks::find(&args.hook).ok_or_else(|| anyhow::anyhow!("unknown hook {:?}", args.hook))?;
    let root = args.dir.join(&args.name);
    if root.exists() {
        anyhow::bail!("{} already exists", root.display());
    }
    let files = match args.lang {
        Lang::Rust => rust(&args, hook)?,
        Lang::Python => python(&args.name, hook),
        Lang::Js => js(&args.name, hook),
    };
    let mut all = files;
    all.push(("wit/types.wit".into(), WIT_TYPES.into()));
    all.push(("wit/hooks.wit".into(), WIT_HOOKS.into()));
    all.push((
        format!("fixtures/{}.yaml", hook.hook),
        hook.fixture.to_string(),
    ));
    for (rel, text) in &all {
        write(&root.join(rel), text)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let build = root.join("build.sh");
        if build.exists() {
            std::fs::set_permissions(&build, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!("created {}", root.display());
    println!("next: cd {} && make test", root.display());
    Ok(ExitCode::SUCCESS)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        anyhow::bail!(
            "policy name {name:?}: use 1-64 lower-case letters, digits and '-', starting with a letter"
        );
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn fill(template: &str, name: &str, hook: &HookTemplate) -> String {
    template
        .replace("@NAME@", name)
        .replace("@CRATE@", &name.replace('-', "_"))
        .replace("@HOOK@", hook.hook)
        .replace("@SUMMARY@", hook.summary)
        .replace("@PROTOCOL_RUST@", hook.protocol_rust)
        .replace("@PROTOCOL_PY@", hook.protocol_py)
        .replace("@PROTOCOL_JS@", hook.protocol_js)
}

fn rust(args: &NewArgs, hook: &HookTemplate) -> anyhow::Result<Vec<(String, String)>> {
    let sdk = match &args.sdk_path {
        Some(p) => {
            let p = std::fs::canonicalize(p)
                .map_err(|e| anyhow::anyhow!("--sdk-path {}: {e}", p.display()))?;
            format!("{{ path = {:?} }}", p.display().to_string())
        }
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let name = &args.name;
    Ok(vec![
        (
            "Cargo.toml".into(),
            fill(RUST_CARGO, name, hook).replace("@SDK@", &sdk),
        ),
        (
            "src/lib.rs".into(),
            fill(RUST_LIB, name, hook) + "\n" + hook.rust_impl,
        ),
        ("Makefile".into(), fill(RUST_MAKEFILE, name, hook)),
        (
            "README.md".into(),
            fill(README, name, hook) + &fill(RUST_README, name, hook),
        ),
        (".gitignore".into(), "/target\n".into()),
    ])
}

fn python(name: &str, hook: &HookTemplate) -> Vec<(String, String)> {
    vec![
        (
            "app.py".into(),
            fill(PY_APP, name, hook) + "\n\n" + hook.python_class,
        ),
        ("Makefile".into(), fill(PY_MAKEFILE, name, hook)),
        (
            "README.md".into(),
            fill(README, name, hook) + &fill(PY_README, name, hook),
        ),
        (".gitignore".into(), "/build\n__pycache__/\n".into()),
    ]
}

fn js(name: &str, hook: &HookTemplate) -> Vec<(String, String)> {
    vec![
        (
            "policy.js".into(),
            fill(JS_POLICY, name, hook) + "\n" + hook.js_export,
        ),
        ("package.json".into(), fill(JS_PACKAGE, name, hook)),
        ("Makefile".into(), fill(JS_MAKEFILE, name, hook)),
        (
            "README.md".into(),
            fill(README, name, hook) + &fill(JS_README, name, hook),
        ),
        (".gitignore".into(), "/build\n/node_modules\n".into()),
    ]
}

const README: &str = r#"# @NAME@

A Gatehouse policy for the `@HOOK@` hooks: @SUMMARY@.

Settings (JSON object): `allow_groups`, a list of group names (default `["ops"]`).

`fixtures/@HOOK@.yaml` holds fixture cases (format version 1: hook, context,
event, expected decision); `make test` builds the component and runs them
with `gatehouse policy test`, offline, through the same engine and limits as
a running gateway. `make bench` measures decisions per second.
"#;

const RUST_CARGO: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"
publish = false

# Not part of any enclosing workspace.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
gatehouse-sdk = @SDK@
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
panic = "abort"
"#;

const RUST_LIB: &str = r##"//! `@NAME@`: @SUMMARY@.

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
#[allow(unused_imports)]
use gatehouse_sdk::{MaskRule, allow, deny, log, mask};

gatehouse_sdk::export_policy!(Policy, wit: "wit", hooks: [@HOOK@]);

use bindings::meta::Description;

/// The settings, checked at load by `validate-config`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_groups")]
    pub allow_groups: Vec<String>,
}

fn default_groups() -> Vec<String> {
    vec!["ops".into()]
}

fn parse(json: &str) -> Result<Settings, String> {
    gatehouse_sdk::parse_settings::<Settings>(json)
}

static SETTINGS: SettingsCache<Settings> = SettingsCache::new();

/// The parsed settings, or a deny if they do not parse (fail closed; the
/// gateway refuses such settings at load, so this is the last line).
fn current_settings() -> Result<Arc<Settings>, Decision> {
    SETTINGS.get_or_deny("@NAME@", parse)
}

pub struct Policy;

impl bindings::meta::Guest for Policy {
    fn describe() -> Description {
        Description {
            name: "@NAME@".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "@SUMMARY@".into(),
            protocols: vec![Protocol::@PROTOCOL_RUST@],
            settings_schema: r#"{"type":"object","properties":{"allow_groups":{"type":"array","items":{"type":"string"}}},"additionalProperties":false}"#.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        parse(&settings).map(|_| ())
    }
}
"##;

const RUST_MAKEFILE: &str = r#"# make build | make test | make bench
GATEHOUSE ?= gatehouse
WASM := target/wasm32-wasip2/release/@CRATE@.wasm

.PHONY: build test bench unit
build:
	cargo build --release --target wasm32-wasip2

# Native unit tests (gatehouse_sdk::testing), then the fixtures through the component.
test: build
	cargo test
	$(GATEHOUSE) policy test $(WASM) --fixtures fixtures

bench: build
	$(GATEHOUSE) policy bench $(WASM) --fixture fixtures/@HOOK@.yaml
"#;

const RUST_README: &str = r#"
## Build and test

Needs Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`)
and the `gatehouse` binary on `PATH` (or `make GATEHOUSE=/path/to/gatehouse`).

```sh
make test     # cargo build --release --target wasm32-wasip2, cargo test, gatehouse policy test
make bench
```

The component is `target/wasm32-wasip2/release/@CRATE@.wasm`. Unit-test the
policy natively with `gatehouse_sdk::testing` (no WASM needed) in `src/`.
"#;

const PY_APP: &str = r#""""@NAME@: @SUMMARY@.

Built into a component by componentize-py against the WIT world
`gatehouse:policy/@HOOK@-policy@0.1.0` (see the Makefile). componentize-py
looks up one class per exported interface, named after it in CamelCase.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import meta, @HOOK@
from wit_world.imports import host, types


def _settings():
    value = json.loads(host.settings())
    value.setdefault("allow_groups", ["ops"])
    return value


def _in_any(ctx, groups):
    return any(g in ctx.principal.groups for g in groups)


def _decision(verdict):
    return types.Decision(verdict=verdict, annotations=[])


def _detector(name):
    return types.MaskRule(target=types.MaskTarget_Detector(name), method=types.MaskMethod_Redact())


def _column(name):
    return types.MaskRule(target=types.MaskTarget_Column(name), method=types.MaskMethod_Redact())


class Meta(exports.Meta):
    def describe(self):
        return meta.Description(
            name="@NAME@",
            version="0.1.0",
            summary="@SUMMARY@",
            protocols=[types.Protocol.@PROTOCOL_PY@],
            settings_schema="",
        )

    def validate_config(self, settings):
        try:
            value = json.loads(settings)
        except ValueError as e:
            raise Err(f"settings are not valid JSON: {e}")
        if not isinstance(value, dict):
            raise Err("settings must be a JSON object")
        unknown = set(value) - {"allow_groups"}
        if unknown:
            raise Err(f"unknown settings key {sorted(unknown)[0]!r}")
        groups = value.get("allow_groups", [])
        if not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
            raise Err("allow_groups: must be a list of strings")
"#;

const PY_MAKEFILE: &str = r#"# make build | make test | make bench
# Needs Python 3.11+ and componentize-py (pip install componentize-py==0.25.1).
GATEHOUSE ?= gatehouse
COMPONENTIZE_PY ?= componentize-py
WASM := build/@NAME@.wasm

.PHONY: build test bench
build:
	mkdir -p build
	$(COMPONENTIZE_PY) -d wit -w gatehouse:policy/@HOOK@-policy@0.1.0 componentize app -p . -o $(WASM)
	rm -rf __pycache__

# An interpreter's fresh instance costs more than a Rust one: give calls
# the deadline your gateway gives this policy ([policies.overrides.NAME]).
test: build
	$(GATEHOUSE) policy test $(WASM) --fixtures fixtures --timeout-ms 500

bench: build
	$(GATEHOUSE) policy bench $(WASM) --fixture fixtures/@HOOK@.yaml --timeout-ms 500
"#;

const PY_README: &str = r#"
## Build and test

```sh
pip install componentize-py==0.25.1
make test
```

The component is `build/@NAME@.wasm` (about 18 MiB: it embeds the Python
interpreter; compiling it takes seconds once, then the gateway's cache makes
loads fast).
"#;

const JS_POLICY: &str = r#"// @NAME@: @SUMMARY@.
//
// Built into a component by ComponentizeJS against the
// WIT world `gatehouse:policy/@HOOK@-policy@0.1.0`: one exported object per
// interface, functions in camelCase, variants as `{ tag, val }`, and a
// `result<_, string>` export returns normally for ok and throws for err.

import { settings as hostSettings } from "gatehouse:policy/host@0.1.0";

function settings() {
  const value = JSON.parse(hostSettings());
  if (value.allow_groups === undefined) value.allow_groups = ["ops"];
  return value;
}

function inAny(ctx, groups) {
  return groups.some((g) => ctx.principal.groups.includes(g));
}

function decision(verdict) {
  return { verdict, annotations: [] };
}

function detector(name) {
  return { target: { tag: "detector", val: name }, method: { tag: "redact" } };
}

function column(name) {
  return { target: { tag: "column", val: name }, method: { tag: "redact" } };
}

export const meta = {
  describe() {
    return {
      name: "@NAME@",
      version: "0.1.0",
      summary: "@SUMMARY@",
      protocols: ["@PROTOCOL_JS@"],
      settingsSchema: "",
    };
  },
  validateConfig(text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw `settings are not valid JSON: ${e.message}`;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw "settings must be a JSON object";
    }
    for (const key of Object.keys(value)) {
      if (key !== "allow_groups") throw `unknown settings key ${JSON.stringify(key)}`;
    }
    const groups = value.allow_groups ?? [];
    if (!Array.isArray(groups) || !groups.every((g) => typeof g === "string")) {
      throw "allow_groups: must be a list of strings";
    }
  },
};
"#;

const JS_PACKAGE: &str = r#"{
  "name": "@NAME@",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {
    "build": "componentize-js policy.js --wit wit --world-name gatehouse:policy/@HOOK@-policy@0.1.0 -d stdio random clocks http fetch-event -o build/@NAME@.wasm"
  },
  "devDependencies": {
    "@bytecodealliance/componentize-js": "0.23.0",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }
}
"#;

const JS_MAKEFILE: &str = r#"# make build | make test | make bench
# Needs Node 18+ (npm installs ComponentizeJS locally).
GATEHOUSE ?= gatehouse
WASM := build/@NAME@.wasm

.PHONY: build test bench
node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error

build: node_modules/.package-lock.json
	mkdir -p build
	npm run --silent build

# An interpreter's fresh instance costs more than a Rust one: give calls
# the deadline your gateway gives this policy ([policies.overrides.NAME]).
test: build
	$(GATEHOUSE) policy test $(WASM) --fixtures fixtures --timeout-ms 500

bench: build
	$(GATEHOUSE) policy bench $(WASM) --fixture fixtures/@HOOK@.yaml --timeout-ms 500
"#;

const JS_README: &str = r#"
## Build and test

```sh
make test    # npm install (ComponentizeJS), componentize-js, gatehouse policy test
```

The component is `build/@NAME@.wasm` (about 12 MiB: it embeds the
StarlingMonkey engine). `-d stdio random clocks http fetch-event` leaves out
the WASI features a policy may not use anyway (the gateway grants none).
ComponentizeJS is called directly: `jco componentize` 1.35 fails on this
project with "failed to get path metadata" while it inspects the world.
"#;
