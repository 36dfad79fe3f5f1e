//! `llm-guard`: the shipped LLM policy; see `plugins/README.md` and
//! [`SETTINGS_SCHEMA`].
//!
//! - `on-request`: a message matching a prompt rule (built-in credential
//!   extraction rules unless `builtin_prompt_rules` is false, then
//!   `deny_prompts`) denies; a model outside the caller's `model_access`
//!   denies; a model listed in `approve_models` asks for approval; else
//!   `mask` masks (prompts before they leave, and, carried by the host,
//!   the streamed completion); else allow.
//! - `on-response`: a completion whose text matches a `deny_completions`
//!   rule, or that calls a tool a `deny_tool_calls` rule lists, denies (a
//!   streamed one ends with an error event instead of its final event, so
//!   an agent never gets a finished tool call to run); else `mask` masks
//!   the completion; else allow.
//!
//! Decisions carry `rule` (`builtin[0]`, `deny_prompts[1]`, `model_access`,
//! `approve_models[0]`, `mask`, `deny_completions[0]`, `deny_tool_calls[1]`),
//! and a denied tool call its `tool`.

mod config;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{allow, deny, mask, require_approval};

pub use config::{BUILTIN_PROMPT_RULES, Config, glob_match};

gatehouse_sdk::export_policy!(LlmGuard, wit: "../../wit", hooks: [llm]);

use bindings::llm::{LlmRequest, LlmResponse};
use bindings::meta::Description;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

/// The policy.
pub struct LlmGuard;

impl bindings::meta::Guest for LlmGuard {
    fn describe() -> Description {
        Description {
            name: "llm-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Blocks credential-extraction prompts, masks secrets in prompts and completions, limits models per group, holds listed models for approval".into(),
            protocols: vec![Protocol::Llm],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::validate(&settings).map(|_| ())
    }
}

impl bindings::llm::Guest for LlmGuard {
    fn on_request(ctx: Context, request: LlmRequest) -> Decision {
        match current_config() {
            Ok(c) => decide_request(&c, &ctx, &request),
            Err(d) => d,
        }
    }

    fn on_response(ctx: Context, _request: LlmRequest, response: LlmResponse) -> Decision {
        match current_config() {
            Ok(c) => decide_response(&c, &ctx, &response),
            Err(d) => d,
        }
    }
}

/// The response decision for already-parsed settings.
pub fn decide_response(config: &Config, ctx: &Context, response: &LlmResponse) -> Decision {
    for rule in &config.deny_completions {
        if !ctx.in_any_group(&rule.unless_groups) && rule.pattern.is_match(&response.text) {
            return deny(rule.reason.clone()).annotate("rule", rule.name.clone());
        }
    }
    for rule in &config.deny_tool_calls {
        if ctx.in_any_group(&rule.unless_groups) {
            continue;
        }
        let call = response.tool_calls.iter().find(|c| {
            rule.tools.iter().any(|t| glob_match(t, &c.name))
                && rule
                    .arguments
                    .as_ref()
                    .is_none_or(|a| a.is_match(&c.arguments))
        });
        if let Some(call) = call {
            return deny(format!("{} (tool {})", rule.reason, call.name))
                .annotate("rule", rule.name.clone())
                .annotate("tool", call.name.clone());
        }
    }
    if config.mask.is_empty() {
        return allow();
    }
    mask(config.mask.iter().cloned()).annotate("rule", "mask")
}

/// The request decision for already-parsed settings.
pub fn decide_request(config: &Config, ctx: &Context, request: &LlmRequest) -> Decision {
    for rule in &config.deny_prompts {
        if ctx.in_any_group(&rule.unless_groups) {
            continue;
        }
        let hit = request.messages.iter().any(|m| {
            (rule.roles.is_empty() || rule.roles.iter().any(|r| r == &m.role))
                && (rule.pattern.is_match(&m.text)
                    || m.tool_calls
                        .iter()
                        .any(|c| rule.pattern.is_match(&c.arguments)))
        });
        if hit {
            return deny(rule.reason.clone()).annotate("rule", rule.name.clone());
        }
    }
    if !config.model_access.is_empty() {
        let allowed = config.model_access.iter().any(|a| {
            (a.groups.is_empty() || ctx.in_any_group(&a.groups))
                && a.models.iter().any(|m| glob_match(m, &request.model))
        });
        if !allowed {
            return deny(format!(
                "model {} is not allowed for your groups",
                request.model
            ))
            .annotate("rule", "model_access");
        }
    }
    if let Some((i, rule)) = config.approve_models.iter().enumerate().find(|(_, r)| {
        !ctx.in_any_group(&r.unless_groups)
            && r.models.iter().any(|m| glob_match(m, &request.model))
    }) {
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("prompts to model {} need approval", request.model));
        // One decision has one verdict: a held prompt is not masked by this
        // policy (see the README for pairing it with a masking instance).
        return require_approval(reason)
            .approvers(rule.approver_groups.iter().cloned())
            .timeout_secs(rule.timeout_secs)
            .grant_or_once(format!("model {}", request.model), rule.grant_secs)
            .annotate("rule", format!("approve_models[{i}]"))
            .build();
    }
    if !config.mask.is_empty() {
        return mask(config.mask.iter().cloned()).annotate("rule", "mask");
    }
    allow()
}

/// Settings parsed once per distinct settings string (regexes compile once).
static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse (the host
/// validates at load, so this only happens if it skipped `validate-config`).
fn current_config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("llm-guard", config::parse)
}

#[cfg(test)]
mod tests;
