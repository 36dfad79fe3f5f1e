//! `change-freeze`: a complete policy for two protocols, written with the
//! SDK and tested natively (`cargo test -p gatehouse-sdk --example
//! change_freeze`).
//!
//! Until `freeze_until_ms` (milliseconds since the epoch, the host's frozen
//! clock), writes wait for a person in `approvers`:
//!
//! - HTTP: any method but `GET`, `HEAD` and `OPTIONS`;
//! - PostgreSQL: any statement that writes (INSERT, UPDATE, DELETE, MERGE,
//!   COPY, DDL, TRUNCATE, GRANT, REVOKE).
//!
//! One approval covers the caller's writes on that protocol for
//! `grant_secs` (0: each write is approved on its own). Callers in
//! `exempt_groups` are never held. Whatever the date, result columns named
//! in `mask_columns` are masked.
//!
//! As a component (what the gateway loads), through the real engine with the
//! fixtures beside this file (`tests/tests/policy_cli.rs` does the same):
//!
//! ```sh
//! cargo build -p gatehouse-sdk --example change_freeze --profile wasm --target wasm32-wasip2
//! gatehouse policy test target/wasm32-wasip2/wasm/examples/change_freeze.wasm \
//!     --fixtures sdk/examples/change_freeze.yaml
//! ```

use gatehouse_sdk::prelude::*;
use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::{CACHE_SCOPE_COLUMNS, parse_settings};

gatehouse_sdk::export_policy!(ChangeFreeze, wit: "../wit", hooks: [http, postgres]);

use bindings::http::{HttpRequest, HttpResponse};
use bindings::meta::Description;
use bindings::postgres::{Column, Query, StatementKind};

/// The settings, checked by `validate-config` when the gateway loads the
/// policy: unknown keys and wrong types are refused there, naming the key.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    freeze_until_ms: u64,
    approvers: Vec<String>,
    #[serde(default)]
    grant_secs: u32,
    #[serde(default)]
    exempt_groups: Vec<String>,
    #[serde(default)]
    mask_columns: Vec<String>,
}

impl Settings {
    /// Whether `ctx`'s writes wait for approval now.
    fn holds(&self, ctx: &Context) -> bool {
        now_ms() < self.freeze_until_ms && !ctx.in_any_group(&self.exempt_groups)
    }

    fn hold(&self, what: &str, grant_key: String) -> Decision {
        require_approval(format!("{what} during the change freeze need approval"))
            .approvers(self.approvers.iter().cloned())
            .grant_or_once(grant_key, self.grant_secs)
            .annotate("rule", "freeze")
            .build()
    }
}

/// Parsed once per settings text (a reused instance does not parse again).
static SETTINGS: SettingsCache<Settings> = SettingsCache::new();

fn settings() -> Result<std::sync::Arc<Settings>, Decision> {
    SETTINGS.get_or_deny("change-freeze", parse_settings)
}

struct ChangeFreeze;

impl bindings::meta::Guest for ChangeFreeze {
    fn describe() -> Description {
        Description {
            name: "change-freeze".into(),
            version: "1.0.0".into(),
            summary: "Holds writes for approval until the freeze ends; masks listed columns".into(),
            protocols: vec![Protocol::Http, Protocol::Postgres],
            settings_schema: String::new(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        let s: Settings = parse_settings(&settings)?;
        if s.approvers.is_empty() {
            return Err("approvers: name at least one group, or nobody can approve".into());
        }
        Ok(())
    }
}

impl bindings::http::Guest for ChangeFreeze {
    fn on_request(ctx: Context, request: HttpRequest) -> Decision {
        let s = match settings() {
            Ok(s) => s,
            Err(refusal) => return refusal,
        };
        let reads = ["GET", "HEAD", "OPTIONS"]
            .iter()
            .any(|m| request.method.eq_ignore_ascii_case(m));
        if reads || !s.holds(&ctx) {
            return allow();
        }
        log::info("write held for the freeze", &[("path", &request.path)]);
        s.hold("HTTP writes", format!("http {}", ctx.connection()))
    }

    fn on_response(_: Context, _: HttpRequest, _: HttpResponse) -> Decision {
        allow()
    }
}

impl bindings::postgres::Guest for ChangeFreeze {
    /// Not `cacheable`: the decision depends on the clock, and a cached
    /// decision would outlive the freeze.
    fn on_query(ctx: Context, query: Query) -> Decision {
        let s = match settings() {
            Ok(s) => s,
            Err(refusal) => return refusal,
        };
        let writes = query.statements.iter().any(|st| {
            !matches!(
                st.kind,
                StatementKind::Select
                    | StatementKind::Show
                    | StatementKind::Explain
                    | StatementKind::Set
                    | StatementKind::Transaction
            )
        });
        if writes && s.holds(&ctx) {
            s.hold("SQL writes", format!("sql {}", ctx.connection()))
        } else {
            allow()
        }
    }

    /// Depends only on the columns and the settings: the host may reuse it
    /// for the next result of the same shape.
    fn on_result_columns(_: Context, _: Query, columns: Vec<Column>) -> Decision {
        let s = match settings() {
            Ok(s) => s,
            Err(refusal) => return refusal,
        };
        let rules: Vec<MaskRule> = columns
            .iter()
            .filter(|c| s.mask_columns.contains(&c.name))
            .map(|c| MaskRule::column(c.name.clone()))
            .collect();
        let d = if rules.is_empty() {
            allow()
        } else {
            mask(rules)
        };
        d.cacheable(CACHE_SCOPE_COLUMNS)
    }
}

#[cfg(test)]
mod tests {
    use super::bindings::http::Guest as _;
    use super::bindings::meta::Guest as _;
    use super::bindings::postgres::{Guest as _, Statement};
    use super::*;
    use gatehouse_sdk::testing;
    use gatehouse_sdk::types::ApprovalScope;

    const SETTINGS: &str = r#"{"freeze_until_ms": 2000, "approvers": ["release"],
        "grant_secs": 600, "exempt_groups": ["sre"], "mask_columns": ["email"]}"#;

    fn query(kind: StatementKind) -> Query {
        Query {
            sql: String::new(),
            parameters: vec![],
            statements: vec![Statement {
                kind,
                tables_read: vec![],
                tables_written: vec![],
                has_where: true,
                functions: vec![],
            }],
            parse_error: None,
        }
    }

    #[test]
    fn writes_wait_during_the_freeze_and_pass_after_it() {
        testing::with_settings(SETTINGS, || {
            let ctx = || testing::context().connection("shop").build();
            let post = || testing::http_request("POST", "/orders").into();
            let held = testing::with_now(1000, || ChangeFreeze::on_request(ctx(), post()));
            let approval = held.approval().expect("held for approval");
            assert_eq!(approval.approver_groups, ["release"]);
            assert!(matches!(&approval.scope, ApprovalScope::Grant(g) if g.key == "http shop"));
            assert_eq!(testing::take_logs()[0].field("path"), Some("/orders"));
            // Reads pass; after the freeze, writes too.
            let get = testing::http_request("GET", "/orders").into();
            assert!(testing::with_now(1000, || ChangeFreeze::on_request(ctx(), get)).is_allow());
            assert!(testing::with_now(2000, || ChangeFreeze::on_request(ctx(), post())).is_allow());
        });
    }

    #[test]
    fn sql_writes_are_held_reads_pass_and_sre_is_exempt() {
        testing::with_settings(SETTINGS, || {
            testing::with_now(1000, || {
                let dev = testing::context().groups(["dev"]).build();
                let sre = testing::context().groups(["sre"]).build();
                let update = query(StatementKind::Update);
                assert!(
                    ChangeFreeze::on_query(dev.clone(), update.clone())
                        .approval()
                        .is_some()
                );
                assert!(ChangeFreeze::on_query(sre, update).is_allow());
                assert!(ChangeFreeze::on_query(dev, query(StatementKind::Select)).is_allow());
            });
        });
    }

    #[test]
    fn listed_columns_are_masked_and_the_decision_may_be_reused() {
        testing::with_settings(SETTINGS, || {
            let column = |name: &str| Column {
                name: name.into(),
                table: None,
                type_name: "text".into(),
            };
            let d = ChangeFreeze::on_result_columns(
                testing::context().build(),
                query(StatementKind::Select),
                vec![column("id"), column("email")],
            );
            assert_eq!(d.mask_rules(), Some(&[MaskRule::column("email")][..]));
            assert_eq!(
                d.annotation(gatehouse_sdk::CACHE_ANNOTATION),
                Some("columns")
            );
        });
    }

    #[test]
    fn settings_are_checked_at_load_and_fail_closed_after() {
        assert!(ChangeFreeze::validate_config(SETTINGS.into()).is_ok());
        let err = ChangeFreeze::validate_config(r#"{"approvers": []}"#.into()).unwrap_err();
        assert!(err.starts_with("approvers:"), "{err}");
        let err = ChangeFreeze::validate_config(r#"{"aprovers": ["x"]}"#.into()).unwrap_err();
        assert!(err.contains("unknown field `aprovers`"), "{err}");
        // A host that skipped validate-config: every write is refused.
        testing::with_settings("[]", || {
            let d = ChangeFreeze::on_request(
                testing::context().build(),
                testing::http_request("POST", "/").into(),
            );
            assert!(
                d.deny_reason()
                    .unwrap()
                    .starts_with("change-freeze is misconfigured")
            );
        });
    }
}
