//! `rust-sql`: Denies DROP TABLE unless the caller is in an allowed group; masks the email column.

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
#[allow(unused_imports)]
use gatehouse_sdk::{MaskRule, allow, deny, log, mask};

gatehouse_sdk::export_policy!(Policy, wit: "../../wit", hooks: [postgres]);

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
    SETTINGS.get_or_deny("rust-sql", parse)
}

pub struct Policy;

impl bindings::meta::Guest for Policy {
    fn describe() -> Description {
        Description {
            name: "rust-sql".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Denies DROP TABLE unless the caller is in an allowed group; masks the email column".into(),
            protocols: vec![Protocol::Postgres],
            settings_schema: r#"{"type":"object","properties":{"allow_groups":{"type":"array","items":{"type":"string"}}},"additionalProperties":false}"#.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        parse(&settings).map(|_| ())
    }
}

use bindings::postgres::{Column, Query, StatementKind};

impl bindings::postgres::Guest for Policy {
    fn on_query(ctx: Context, query: Query) -> Decision {
        let settings = match current_settings() {
            Ok(s) => s,
            Err(d) => return d,
        };
        let drops = query
            .statements
            .iter()
            .any(|s| s.kind == StatementKind::Drop);
        if drops && !ctx.in_any_group(&settings.allow_groups) {
            return deny("DROP needs one of the allowed groups");
        }
        allow()
    }

    fn on_result_columns(_ctx: Context, _query: Query, _columns: Vec<Column>) -> Decision {
        mask([MaskRule::column("email").redact()])
    }
}
