//! `http-guard`: the shipped HTTP policy. Deny, approval and mask rules come
//! from settings; see `plugins/README.md` and [`SETTINGS_SCHEMA`].
//!
//! - `on-request`: the first matching `deny` rule denies (skipped for callers
//!   in its `unless_groups`); else the first matching `approve` rule asks for
//!   approval (a grant keyed `"METHOD path_prefix"` when `grant_secs > 0`);
//!   else `mask_request` masks if non-empty; else allow.
//! - `on-response`: `mask_response` masks if non-empty; else allow.
//!
//! Decisions carry `rule` (`deny[0]`, `approve[2]`, `mask_request`, ...).

mod config;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;

use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{allow, deny, mask, require_approval};

pub use config::{Config, KNOWN_METHODS};

gatehouse_sdk::export_policy!(HttpGuard, wit: "../../wit", hooks: [http]);

use bindings::http::{HttpRequest, HttpResponse};
use bindings::meta::Description;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

/// The policy.
pub struct HttpGuard;

impl bindings::meta::Guest for HttpGuard {
    fn describe() -> Description {
        Description {
            name: "http-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Denies, holds for approval, or masks HTTP requests and responses by method and path".into(),
            protocols: vec![Protocol::Http],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::validate(&settings).map(|_| ())
    }
}

impl bindings::http::Guest for HttpGuard {
    fn on_request(ctx: Context, request: HttpRequest) -> Decision {
        let config = match current_config() {
            Ok(c) => c,
            Err(d) => return d,
        };
        decide_request(&config, &ctx, &request.method, &request.path)
    }

    fn on_response(_ctx: Context, _request: HttpRequest, _response: HttpResponse) -> Decision {
        let config = match current_config() {
            Ok(c) => c,
            Err(d) => return d,
        };
        if config.mask_response.is_empty() {
            allow()
        } else {
            mask(config.mask_response.iter().cloned()).annotate("rule", "mask_response")
        }
    }
}

/// The request decision for already-parsed settings.
pub fn decide_request(config: &Config, ctx: &Context, method: &str, path: &str) -> Decision {
    let exempt = |groups: &[String]| ctx.in_any_group(groups);
    if let Some((i, rule)) = config
        .deny
        .iter()
        .enumerate()
        .find(|(_, r)| r.matcher.matches(method, path) && !exempt(&r.matcher.unless_groups))
    {
        return deny(rule.reason.clone()).annotate("rule", format!("deny[{i}]"));
    }
    if let Some((i, rule)) = config
        .approve
        .iter()
        .enumerate()
        .find(|(_, r)| r.matcher.matches(method, path) && !exempt(&r.matcher.unless_groups))
    {
        let key = format!(
            "{} {}",
            method.to_ascii_uppercase(),
            rule.matcher.grant_path()
        );
        return require_approval(rule.reason.clone())
            .approvers(rule.approver_groups.iter().cloned())
            .timeout_secs(rule.timeout_secs)
            .grant_or_once(key, rule.grant_secs)
            .annotate("rule", format!("approve[{i}]"))
            .build();
    }
    if !config.mask_request.is_empty() {
        return mask(config.mask_request.iter().cloned()).annotate("rule", "mask_request");
    }
    allow()
}

/// Settings parsed once per distinct settings string (regexes compile once).
static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse (the host
/// validates at load, so this only happens if it skipped `validate-config`).
fn current_config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("http-guard", config::parse)
}

#[cfg(test)]
mod tests;
