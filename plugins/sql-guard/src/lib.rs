//! `sql-guard`: the shipped PostgreSQL policy. Deny, approval and mask rules
//! come from settings; see `plugins/README.md` and [`SETTINGS_SCHEMA`].
//!
//! - `on-query`: SQL the host could not parse gets `unparsable` (deny by
//!   default); else the first matching `deny` rule denies (skipped for
//!   callers in its `unless_groups`); else the first matching `approve` rule
//!   asks for approval; else the `mask` entries that apply to the caller
//!   mask; else allow. A rule matches when any statement meets all of its
//!   conditions.
//! - `on-result-columns`: the caller's masks again. A statement held for
//!   approval carries no masks from `on-query` (one verdict per decision);
//!   this is where its results get them once approved.
//!
//! Decisions carry `rule` (`rules[3]`, `unparsable`, `mask`).

mod config;
mod matching;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;

use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{
    CACHE_SCOPE_COLUMNS, CACHE_SCOPE_STATEMENT, allow, deny, mask, require_approval,
};

pub use config::{Config, KINDS};
pub use matching::name_matches;

gatehouse_sdk::export_policy!(SqlGuard, wit: "../../wit", hooks: [postgres]);

use bindings::meta::Description;
use bindings::postgres::{Column, Query, Statement};
use config::{Action, Approval, Rule, Unparsable};
use gatehouse_sdk::decision::clip_reason;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

/// The policy.
pub struct SqlGuard;

impl bindings::meta::Guest for SqlGuard {
    fn describe() -> Description {
        Description {
            name: "sql-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Denies or holds PostgreSQL statements for approval by kind, table and function, and masks result columns".into(),
            protocols: vec![Protocol::Postgres],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::validate(&settings).map(|_| ())
    }
}

impl bindings::postgres::Guest for SqlGuard {
    /// Depends only on the analysis, the caller's groups and the settings,
    /// so the host may reuse it for statements of the same shape.
    fn on_query(ctx: Context, query: Query) -> Decision {
        match current_config() {
            Ok(config) => decide_query(&config, &ctx, &query).cacheable(CACHE_SCOPE_STATEMENT),
            Err(d) => d,
        }
    }

    /// The caller's masks again, for every result: a statement held for
    /// approval carries no masks from `on-query` (a decision has one
    /// verdict), and its results must be masked all the same once approved.
    fn on_result_columns(ctx: Context, _query: Query, _columns: Vec<Column>) -> Decision {
        match current_config() {
            Ok(config) => masks(&config, &ctx)
                .unwrap_or_else(allow)
                .cacheable(CACHE_SCOPE_COLUMNS),
            Err(d) => d,
        }
    }
}

/// The `on-query` decision for already-parsed settings.
pub fn decide_query(config: &Config, ctx: &Context, query: &Query) -> Decision {
    if let Some(error) = &query.parse_error {
        match &config.unparsable {
            Unparsable::Deny => {
                return deny(clip_reason(format!(
                    "the query could not be parsed, so sql-guard cannot check it: {error}"
                )))
                .annotate("rule", "unparsable");
            }
            Unparsable::Approve(approval) => {
                let reason = clip_reason(format!(
                    "the query could not be parsed, so it needs approval: {error}"
                ));
                // Its approval has no `grant_secs` (refused at load): once.
                return approval_decision(reason, approval, String::new(), "unparsable");
            }
            // Masks still apply: unparsable SQL must not be a way around them.
            Unparsable::Allow => {
                return masks(config, ctx)
                    .map(|d| d.annotate("unparsable", "allow"))
                    .unwrap_or_else(|| allow().annotate("rule", "unparsable"));
            }
        }
    }
    let applies = |rule: &Rule| !ctx.in_any_group(&rule.unless_groups);
    let first = |want_deny: bool| {
        config
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.action, Action::Deny) == want_deny && applies(r))
            .find_map(|(i, r)| {
                query
                    .statements
                    .iter()
                    .find(|s| r.matches(s))
                    .map(|s| (i, r, s))
            })
    };
    if let Some((i, rule, statement)) = first(true) {
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| clip_reason(format!("{} is not allowed", rule.describe(statement))));
        return deny(reason).annotate("rule", format!("rules[{i}]"));
    }
    if let Some((i, rule, statement)) = first(false)
        && let Action::Approve(approval) = &rule.action
    {
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| clip_reason(format!("{} needs approval", rule.describe(statement))));
        let key = grant_key(i, rule, &query.statements);
        return approval_decision(reason, approval, key, &format!("rules[{i}]"));
    }
    masks(config, ctx).unwrap_or_else(allow)
}

/// The mask entries that apply to the caller, as one decision, if any.
fn masks(config: &Config, ctx: &Context) -> Option<Decision> {
    let rules: Vec<_> = config
        .mask
        .iter()
        .filter(|m| !ctx.in_any_group(&m.unless_groups))
        .map(|m| m.rule.clone())
        .collect();
    (!rules.is_empty()).then(|| mask(rules).annotate("rule", "mask"))
}

/// A hold for `approval`: a grant keyed `grant_key` when the approval has
/// `grant_secs`, else for this statement only.
fn approval_decision(
    reason: String,
    approval: &Approval,
    grant_key: String,
    rule: &str,
) -> Decision {
    require_approval(reason)
        .approvers(approval.approvers.iter().cloned())
        .timeout_secs(approval.timeout_secs)
        .grant_or_once(grant_key, approval.grant_secs)
        .annotate("rule", rule)
        .build()
}

/// `rules[N] t1,t2`: the rule and the tables (lower-case, sorted, without
/// repeats) of every statement it matched, or `*` when they name none. An
/// approval then covers the same rule on the same tables.
fn grant_key(index: usize, rule: &Rule, statements: &[Statement]) -> String {
    let mut tables: Vec<String> = statements
        .iter()
        .filter(|s| rule.matches(s))
        .flat_map(|s| s.tables_written.iter().chain(&s.tables_read))
        .map(|t| t.to_lowercase())
        .collect();
    tables.sort();
    tables.dedup();
    let tables = if tables.is_empty() {
        "*".to_owned()
    } else {
        tables.join(",")
    };
    format!("rules[{index}] {tables}")
}

/// Settings parsed once per distinct settings string.
static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse (the host
/// validates at load, so this only happens if it skipped `validate-config`).
fn current_config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("sql-guard", config::parse)
}

#[cfg(test)]
mod tests;
