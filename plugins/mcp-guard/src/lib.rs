//! `mcp-guard`: the shipped MCP policy. From settings (see
//! `plugins/README.md` and [`SETTINGS_SCHEMA`]):
//!
//! - `on-request`: a `tools/call` of a tool the caller's groups may not call
//!   is denied; a call of a tool the server marks destructive
//!   (`destructiveHint`) is held for approval when `approve_destructive` is
//!   set; a tool Gatehouse has not seen listed follows `unknown_tools`.
//!   Other requests are allowed.
//! - `on-result`: results of `tools/call`, `resources/read` and
//!   `prompts/get` are masked with `mask_results`.
//! - `filter-tools`: hides the tools the caller may not call (unless
//!   `hide_denied_tools` is false).
//! - `mcp-listing.filter`: hides the resources (and resource templates, by
//!   their URI template) and prompts the caller's groups may not see under
//!   `resources` and `prompts`; the host then also refuses a
//!   `resources/read` or `prompts/get` of what it hides.
//!
//! Decisions carry `rule` (`groups`, `approve_destructive`, `unknown_tools`,
//! `mask_results`).

mod config;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{allow, deny, mask, require_approval};

pub use config::{Config, Listing, NamePattern, Unknown};

gatehouse_sdk::export_policy!(McpGuard, wit: "../../wit", hooks: [mcp, mcp_listing]);

use bindings::mcp::{McpRequest, ToolInfo};
use bindings::mcp_listing::{Entry, EntryKind};
use bindings::meta::Description;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

/// The methods whose results `mask_results` applies to.
const MASKED_RESULTS: &[&str] = &["tools/call", "resources/read", "prompts/get"];

/// The policy.
pub struct McpGuard;

impl bindings::meta::Guest for McpGuard {
    fn describe() -> Description {
        Description {
            name: "mcp-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Limits which MCP tools each group may call and see (and which resources and prompts), holds destructive tools for approval, masks results".into(),
            protocols: vec![Protocol::Mcp],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::validate(&settings).map(|_| ())
    }
}

impl bindings::mcp::Guest for McpGuard {
    fn on_request(ctx: Context, request: McpRequest) -> Decision {
        match current_config() {
            Ok(config) => decide_request(&config, &ctx, &request),
            Err(d) => d,
        }
    }

    fn on_result(_ctx: Context, request: McpRequest, _result: String) -> Decision {
        match current_config() {
            Ok(config) => decide_result(&config, &request),
            Err(d) => d,
        }
    }

    fn filter_tools(ctx: Context, tools: Vec<ToolInfo>) -> Vec<String> {
        let config = match current_config() {
            Ok(c) => c,
            // Misconfigured: show nothing rather than everything.
            Err(_) => return tools.into_iter().map(|t| t.name).collect(),
        };
        hidden_tools(&config, &ctx, &tools)
    }
}

impl bindings::mcp_listing::Guest for McpGuard {
    fn filter(ctx: Context, entries: Vec<Entry>) -> Vec<String> {
        match current_config() {
            Ok(config) => hidden_entries(&config, &ctx, &entries),
            // Misconfigured: show nothing rather than everything.
            Err(_) => entries.into_iter().map(|e| e.id).collect(),
        }
    }
}

/// The ids `mcp-listing.filter` hides: entries whose kind has rules
/// (`resources` covers templates too) that do not permit the caller.
pub fn hidden_entries(config: &Config, ctx: &Context, entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| {
            let rules = match e.kind {
                EntryKind::Resource | EntryKind::ResourceTemplate => &config.resources,
                EntryKind::Prompt => &config.prompts,
            };
            rules
                .as_ref()
                .is_some_and(|r| !r.permits(&ctx.principal.groups, &e.id))
        })
        .map(|e| e.id.clone())
        .collect()
}

/// The request decision for already-parsed settings.
pub fn decide_request(config: &Config, ctx: &Context, request: &McpRequest) -> Decision {
    if request.method != "tools/call" {
        return allow();
    }
    let Some(tool) = request.tool.as_deref() else {
        return deny("a tools/call request must name its tool").annotate("rule", "request");
    };
    if !config.permits(&ctx.principal.groups, tool) {
        return deny(format!("tool {tool} is not allowed for your groups"))
            .annotate("rule", "groups")
            .annotate("tool", tool);
    }
    let destructive = match &request.tool_info {
        Some(info) => info.destructive,
        None => match config.unknown_tools {
            Unknown::Deny => {
                return deny(format!(
                    "tool {tool} has not been listed through Gatehouse on this connection; list the tools (tools/list) first"
                ))
                .annotate("rule", "unknown_tools")
                .annotate("tool", tool);
            }
            Unknown::Approve => true,
            Unknown::Allow => false,
        },
    };
    if destructive
        && let Some(rule) = &config.approve_destructive
        && !ctx.in_any_group(&rule.unless_groups)
    {
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("tool {tool} may make destructive changes"));
        return require_approval(reason)
            .approvers(rule.approver_groups.iter().cloned())
            .timeout_secs(rule.timeout_secs)
            .grant_or_once(format!("tools/call {tool}"), rule.grant_secs)
            .annotate("rule", "approve_destructive")
            .annotate("tool", tool)
            .build();
    }
    allow()
}

/// The result decision for already-parsed settings.
pub fn decide_result(config: &Config, request: &McpRequest) -> Decision {
    if config.mask_results.is_empty() || !MASKED_RESULTS.contains(&request.method.as_str()) {
        return allow();
    }
    mask(config.mask_results.iter().cloned()).annotate("rule", "mask_results")
}

/// The names `filter-tools` hides.
pub fn hidden_tools(config: &Config, ctx: &Context, tools: &[ToolInfo]) -> Vec<String> {
    if !config.hide_denied_tools {
        return vec![];
    }
    tools
        .iter()
        .filter(|t| !config.permits(&ctx.principal.groups, &t.name))
        .map(|t| t.name.clone())
        .collect()
}

/// Settings parsed once per distinct settings string.
static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse (the host
/// validates at load, so this only happens if it skipped `validate-config`).
fn current_config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("mcp-guard", config::parse)
}

#[cfg(test)]
mod tests;
