//! # gatehouse-sdk
//!
//! Write Gatehouse policies in Rust. A policy is a plain struct that
//! implements the `Guest` traits generated for the `gatehouse:policy@0.1.0`
//! contract (`wit/`); built for `wasm32-wasip2` it becomes a component that
//! exports `meta` and the hooks it implements, and nothing else. The
//! gateway calls a hook for each event (an HTTP request, a SQL statement, a
//! result set, an LLM prompt, ...) and acts on the [`Decision`](types::Decision)
//! it returns: allow, deny, mask, or hold for a person's approval. The
//! policy does no I/O: it sees the event and the caller, reads its settings
//! and the frozen clock, and logs.
//!
//! ## Layout
//!
//! - [`export_policy!`]: generates the hook bindings and exports the policy;
//! - [`decision`]: [`allow`], [`deny`], [`mask`], [`require_approval`]
//!   (with [`ApprovalBuilder::grant_or_once`]), annotations,
//!   [`Decision::cacheable`](types::Decision::cacheable),
//!   [`clip_reason`](decision::clip_reason);
//! - [`MaskRule`] builders: `MaskRule::column("email")`,
//!   `MaskRule::header("x-token").hash()`, `MaskRule::detector("jwt")`, ...;
//! - [`Context`](types::Context) questions: `ctx.in_any_group(&["ops"])`,
//!   `ctx.is_agent()`, `ctx.label("env")`, ...;
//! - [`settings`]: the settings JSON into a typed struct
//!   ([`parse_settings`]), parsed once per text and failing closed
//!   ([`SettingsCache::get_or_deny`](settings::SettingsCache::get_or_deny)),
//!   and hand-validated readers that name the key in errors
//!   ([`settings::fields`]); [`now_ms`] reads the frozen clock;
//! - [`log`]: structured log lines through the host;
//! - [`testing`]: all of the above natively in `cargo test`, without WASM:
//!   fixture contexts, requests, settings, a clock, captured logs;
//! - [`prelude`]: the usual imports.
//!
//! ## Writing a policy, step by step
//!
//! 1. **The crate.** `Cargo.toml` with `crate-type = ["cdylib", "rlib"]`
//!    (`cdylib` is the component; `rlib` lets native tests link) and
//!    `gatehouse-sdk` and `serde` as dependencies. `gatehouse policy new
//!    NAME --lang rust --hook HOOK` writes such a project, with the
//!    contract copied into `wit/`, a fixture file and a Makefile.
//! 2. **Export it.** `gatehouse_sdk::export_policy!(MyPolicy, wit: "wit",
//!    hooks: [http, postgres]);` at the crate root names the struct, the
//!    folder holding the contract (relative to `Cargo.toml`) and the hooks.
//!    It defines `mod bindings` with `bindings::meta` and one module per
//!    hook (`bindings::http::{Guest, HttpRequest, ...}`).
//! 3. **Describe it.** `bindings::meta::Guest` has `describe` (name,
//!    version, protocols, a JSON Schema of the settings) and
//!    `validate_config`, which the gateway calls when it loads the policy:
//!    refuse bad settings there, with a message that names the key, and the
//!    policy never runs with them.
//! 4. **Read the settings** into a struct with `#[serde(deny_unknown_fields)]`
//!    through a `static` [`SettingsCache`](settings::SettingsCache); start
//!    each hook with `get_or_deny`, which turns settings that do not parse
//!    into a deny (fail closed) and logs why.
//! 5. **Decide.** Each hook returns a decision built with [`allow`],
//!    [`deny`], [`mask`] or [`require_approval`]. Annotate it
//!    (`.annotate("rule", "deny[0]")`) so the audit trail says why. Masks
//!    are data: the host applies them to headers, JSON, columns and text
//!    streams itself, so a policy is never called per row or per chunk.
//!    Promise reuse with `.cacheable(scope)` only when the decision depends
//!    on nothing but the event's shape, the caller and the settings (never
//!    the clock, literals or labels).
//! 6. **Test it natively** with [`testing`]: build a context, set the
//!    settings and the clock, call the hook, assert on the decision and the
//!    logs. Then build the component and run the same cases through the
//!    real engine with `gatehouse policy test FILE.wasm --fixtures DIR`.
//! 7. **Build and deploy**: `cargo build --release --target wasm32-wasip2`,
//!    check the exports with `gatehouse policy check FILE.wasm`, copy the
//!    file (and its `NAME.json` settings) into the gateway's policy folder,
//!    and name the policy in a connection's `policies`.
//!
//! ## Example
//!
//! A policy that refuses `DELETE` unless the caller is in one of the
//! settings' groups, holds `POST /deploy` for approval, and masks e-mail
//! addresses in responses, with its native tests:
//!
//! ```
//! use gatehouse_sdk::prelude::*;
//! use gatehouse_sdk::settings::SettingsCache;
//!
//! // `wit` is the folder holding the gatehouse:policy package, relative to the
//! // crate's Cargo.toml (here the SDK's own, in this repository).
//! gatehouse_sdk::export_policy!(NoDeletes, wit: "../wit", hooks: [http]);
//!
//! use bindings::http::{HttpRequest, HttpResponse};
//! use bindings::meta::Description;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     #[serde(default)]
//!     allow_groups: Vec<String>,
//!     #[serde(default)]
//!     deploy_approvers: Vec<String>,
//! }
//!
//! static SETTINGS: SettingsCache<Settings> = SettingsCache::new();
//!
//! struct NoDeletes;
//!
//! impl bindings::meta::Guest for NoDeletes {
//!     fn describe() -> Description {
//!         Description {
//!             name: "no-deletes".into(),
//!             version: "1.0.0".into(),
//!             summary: "Refuses DELETE unless the caller is in allow_groups".into(),
//!             protocols: vec![Protocol::Http],
//!             settings_schema: String::new(),
//!         }
//!     }
//!     fn validate_config(settings: String) -> Result<(), String> {
//!         parse_settings::<Settings>(&settings).map(|_| ())
//!     }
//! }
//!
//! impl bindings::http::Guest for NoDeletes {
//!     fn on_request(ctx: Context, req: HttpRequest) -> Decision {
//!         let settings = match SETTINGS.get_or_deny("no-deletes", parse_settings) {
//!             Ok(s) => s,
//!             Err(refusal) => return refusal,
//!         };
//!         if req.method.eq_ignore_ascii_case("DELETE") && !ctx.in_any_group(&settings.allow_groups) {
//!             log::info("refused delete", &[("path", &req.path)]);
//!             return deny("deletes are not allowed").annotate("rule", "deletes");
//!         }
//!         if req.method == "POST" && req.path == "/deploy" {
//!             return require_approval("deploys need approval")
//!                 .approvers(settings.deploy_approvers.iter().cloned())
//!                 .grant_or_once("POST /deploy", 600)
//!                 .build();
//!         }
//!         allow()
//!     }
//!     fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
//!         mask([MaskRule::detector("email")])
//!     }
//! }
//!
//! // Native tests: no WASM, no gateway.
//! # fn main() {
//! use gatehouse_sdk::testing;
//! use bindings::http::Guest as _;
//!
//! testing::with_settings(r#"{"allow_groups": ["ops"], "deploy_approvers": ["release"]}"#, || {
//!     let delete = testing::http_request("DELETE", "/items/1");
//!     let d = NoDeletes::on_request(testing::context().build(), delete.clone().into());
//!     assert_eq!(d.deny_reason(), Some("deletes are not allowed"));
//!     let ops = testing::context().groups(["ops"]).build();
//!     assert!(NoDeletes::on_request(ops, delete.into()).is_allow());
//!
//!     let deploy = testing::http_request("POST", "/deploy").into();
//!     let held = NoDeletes::on_request(testing::context().build(), deploy);
//!     assert_eq!(held.approval().map(|a| a.approver_groups.clone()), Some(vec!["release".to_string()]));
//! });
//! assert_eq!(testing::take_logs()[0].message, "refused delete");
//! # }
//! ```
//!
//! `examples/change_freeze.rs` is a longer one: two protocols (HTTP and
//! PostgreSQL), the clock, grants, column masks, a decision the host may
//! reuse, and settings refused at load. `cargo test -p gatehouse-sdk` runs
//! its tests and every example in these docs.
//!
//! ## Building
//!
//! `cargo build --release --target wasm32-wasip2` (or a profile with
//! `opt-level = "s"`, `lto`, `strip`, `panic = "abort"`, as the shipped
//! policies use), then `gatehouse policy check target/wasm32-wasip2/release/my_policy.wasm`
//! prints the description and the hooks the gateway will call.

mod bindings;
mod context;
pub mod decision;
mod export;
pub mod log;
mod mask;
pub mod settings;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use bindings::gatehouse::policy::{host, types};
pub use decision::{
    ApprovalBuilder, CACHE_ANNOTATION, CACHE_SCOPE_COLUMNS, CACHE_SCOPE_STATEMENT, allow, deny,
    mask, require_approval,
};
pub use settings::{now_ms, parse_settings, settings, settings_json};
pub use types::MaskRule;
pub use wit_bindgen;

/// The usual imports for a policy.
pub mod prelude {
    pub use crate::decision::{ApprovalBuilder, allow, deny, mask, require_approval};
    pub use crate::log;
    pub use crate::settings::{now_ms, parse_settings, settings, settings_json};
    pub use crate::types::{
        Context, Decision, MaskMethod, MaskRule, MaskTarget, PrincipalKind, Protocol, Verdict,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ApprovalScope, MaskMethod, MaskTarget, PartialKeep, Verdict};

    #[test]
    fn approval_builder() {
        let d = require_approval("r")
            .approver("ops")
            .approvers(vec![String::from("sec")])
            .timeout_secs(60)
            .grant("POST /deploy", 600)
            .annotate("rule", "approve[0]")
            .build();
        let a = d.approval().expect("approval");
        assert_eq!(a.approver_groups, ["ops", "sec"]);
        assert_eq!(a.timeout_secs, 60);
        assert_eq!(
            a.scope,
            ApprovalScope::Grant(types::Grant {
                key: "POST /deploy".into(),
                duration_secs: 600
            })
        );
        assert_eq!(d.annotation("rule"), Some("approve[0]"));
        let d: types::Decision = require_approval("r").once().into();
        assert_eq!(d.approval().map(|a| a.timeout_secs), Some(300));
    }

    #[test]
    fn mask_rules() {
        let d = mask([
            MaskRule::header("x").redact(),
            MaskRule::column("users.ssn").partial(0, 4),
            MaskRule::pattern("sk-.*").hash(),
        ]);
        let rules = d.mask_rules().expect("mask");
        assert_eq!(rules[1].target, MaskTarget::Column("users.ssn".into()));
        assert_eq!(
            rules[1].method,
            MaskMethod::Partial(PartialKeep {
                prefix: 0,
                suffix: 4
            })
        );
        assert_eq!(rules[2].method, MaskMethod::Hash);
        assert!(matches!(deny("x").verdict, Verdict::Deny(_)));
    }

    #[test]
    fn settings_nesting_and_errors() {
        #[derive(serde::Deserialize)]
        struct S {
            n: u32,
        }
        testing::with_settings(r#"{"n": 1}"#, || {
            testing::with_settings(r#"{"n": 2}"#, || {
                assert_eq!(settings::<S>().map(|s| s.n), Ok(2));
            });
            assert_eq!(settings::<S>().map(|s| s.n), Ok(1));
        });
        assert_eq!(settings_json(), "{}");
        assert!(parse_settings::<S>("{").is_err());
        assert!(parse_settings::<S>(r#"{"n": "x"}"#).is_err());
    }

    #[test]
    fn log_levels_captured() {
        log::trace("t", &[]);
        log::error("e", &[("a", "b")]);
        let logs = testing::take_logs();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[1].level, host::LogLevel::Error);
        assert!(testing::logs().is_empty());
    }

    #[test]
    fn context_helpers() {
        let ctx = testing::context()
            .groups(["a", "b"])
            .connection("db")
            .protocol(types::Protocol::Postgres)
            .build();
        assert!(ctx.in_all_groups(&["a", "b"]));
        assert!(!ctx.in_any_group(&["c"]));
        assert!(!ctx.in_any_group::<&str>(&[]));
        assert!(ctx.is_human());
        assert_eq!(ctx.connection(), "db");
        assert_eq!(ctx.protocol(), types::Protocol::Postgres);
        assert!(ctx.acting_for().is_none());
    }
}
