//! # gatehouse-sdk
//!
//! Write Gatehouse policies in Rust. A policy is a plain struct that
//! implements the `Guest` traits generated for the `gatehouse:policy@0.1.0`
//! contract; it is built for `wasm32-wasip2` into a component that exports
//! `meta` and the hooks it implements, and nothing else.
//!
//! - [`export_policy!`] generates the bindings and exports the policy;
//! - [`allow`], [`deny`], [`mask`], [`require_approval`] and
//!   [`Decision::annotate`](types::Decision::annotate) build decisions;
//! - [`MaskRule`] builders: `MaskRule::header("x").hash()`, ...;
//! - [`Context`](types::Context) helpers: `ctx.in_any_group(&["ops"])`, ...;
//! - [`settings`] parses the host's settings JSON, [`log`] logs, [`now_ms`]
//!   reads the frozen clock;
//! - [`testing`] runs all of it natively in `cargo test`, without WASM.
//!
//! ## Example
//!
//! `Cargo.toml`: `crate-type = ["cdylib", "rlib"]` (the `rlib` lets native
//! tests link), and `gatehouse-sdk` and `serde` as dependencies.
//!
//! ```
//! use gatehouse_sdk::types::{Context, Decision, Protocol};
//! use gatehouse_sdk::{allow, deny, log};
//!
//! // `wit` is the folder holding the gatehouse:policy package, relative to the
//! // plugin's Cargo.toml (here the SDK's own, in this repository).
//! gatehouse_sdk::export_policy!(NoDeletes, wit: "../wit", hooks: [http]);
//!
//! use bindings::http::{HttpRequest, HttpResponse};
//! use bindings::meta::Description;
//!
//! #[derive(serde::Deserialize, Default)]
//! struct Settings {
//!     #[serde(default)]
//!     allow_groups: Vec<String>,
//! }
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
//!         gatehouse_sdk::parse_settings::<Settings>(&settings).map(|_| ())
//!     }
//! }
//!
//! impl bindings::http::Guest for NoDeletes {
//!     fn on_request(ctx: Context, req: HttpRequest) -> Decision {
//!         let settings: Settings = match gatehouse_sdk::settings() {
//!             Ok(s) => s,
//!             Err(e) => return deny(format!("policy misconfigured: {e}")),
//!         };
//!         if req.method.eq_ignore_ascii_case("DELETE") && !ctx.in_any_group(&settings.allow_groups) {
//!             log::info("refused delete", &[("path", &req.path)]);
//!             return deny("deletes are not allowed").annotate("policy", "no-deletes");
//!         }
//!         allow()
//!     }
//!     fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
//!         allow()
//!     }
//! }
//!
//! // A native unit test:
//! # fn main() {
//! use gatehouse_sdk::testing;
//! use bindings::http::Guest as _;
//!
//! testing::with_settings(r#"{"allow_groups": ["ops"]}"#, || {
//!     let req = testing::http_request("DELETE", "/items/1");
//!     let d = NoDeletes::on_request(testing::context().build(), req.clone().into());
//!     assert_eq!(d.deny_reason(), Some("deletes are not allowed"));
//!     let ops = testing::context().groups(["ops"]).build();
//!     assert!(NoDeletes::on_request(ops, req.into()).is_allow());
//! });
//! assert_eq!(testing::take_logs()[0].message, "refused delete");
//! # }
//! ```
//!
//! Build: `cargo build --profile wasm --target wasm32-wasip2 -p my-policy`;
//! check: `wasm-tools component wit target/wasm32-wasip2/wasm/my_policy.wasm`.

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
