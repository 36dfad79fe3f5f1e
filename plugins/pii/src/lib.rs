//! `pii`: masks personal data. In PostgreSQL results, columns named like
//! e-mails, phones, cards, IBANs, national ids or IPs are masked whole; in
//! every text (other columns, HTTP bodies, LLM prompts and completions, MCP
//! requests) the host's detectors find the same kinds, with their checks
//! (Luhn, mod-97, national-id keys). See `README.md` and [`SETTINGS_SCHEMA`].

mod config;
pub mod kinds;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{CACHE_SCOPE_COLUMNS, CACHE_SCOPE_STATEMENT, MaskRule, allow, mask};

pub use config::{Config, parse};

gatehouse_sdk::export_policy!(Pii, wit: "../../wit", hooks: [http, llm, mcp, postgres]);

use bindings::meta::Description;
use bindings::postgres::Column;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

pub struct Pii;

#[derive(Clone, Copy)]
pub enum Direction {
    Request,
    Response,
}

/// The free-text decision for a caller and a direction.
pub fn decide_text(config: &Config, ctx: &Context, direction: Direction) -> Decision {
    let wanted = match direction {
        Direction::Request => config.mask_requests,
        Direction::Response => config.mask_responses,
    };
    if !wanted || config.text_rules.is_empty() || ctx.in_any_group(&config.unless_groups) {
        return allow().annotate("rule", "pii");
    }
    mask(config.text_rules.iter().cloned()).annotate("rule", "pii")
}

/// The decision for a result set: whole columns by name, plus free text.
pub fn decide_columns(config: &Config, ctx: &Context, columns: &[Column]) -> Decision {
    if !config.mask_responses || ctx.in_any_group(&config.unless_groups) {
        return allow().annotate("rule", "pii");
    }
    let mut rules: Vec<MaskRule> = Vec::new();
    let mut masked = Vec::new();
    if config.columns {
        for c in columns {
            if let Some(kind) = config
                .kinds
                .iter()
                .find(|k| kinds::column_matches(&c.name, &k.column_hints))
            {
                rules.push(MaskRule::column(c.name.clone()).with_method(kind.method));
                masked.push(format!("{}={}", c.name, kind.name));
            }
        }
    }
    rules.extend(config.text_rules.iter().cloned());
    if rules.is_empty() {
        return allow().annotate("rule", "pii");
    }
    let d = mask(rules).annotate("rule", "pii");
    if masked.is_empty() {
        d
    } else {
        d.annotate("columns", masked.join(","))
    }
}

static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse.
pub fn config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("pii", config::parse)
}

fn text(ctx: &Context, direction: Direction) -> Decision {
    match config() {
        Ok(c) => decide_text(&c, ctx, direction),
        Err(d) => d,
    }
}

impl bindings::meta::Guest for Pii {
    fn describe() -> Description {
        Description {
            name: "pii".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Masks e-mails, phone numbers, payment cards, IBANs, national ids and IP addresses, by column and in free text".into(),
            protocols: vec![Protocol::Http, Protocol::Llm, Protocol::Mcp, Protocol::Postgres],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::parse(&settings).map(|_| ())
    }
}

impl bindings::http::Guest for Pii {
    fn on_request(ctx: Context, _request: bindings::http::HttpRequest) -> Decision {
        text(&ctx, Direction::Request)
    }

    fn on_response(
        ctx: Context,
        _request: bindings::http::HttpRequest,
        _response: bindings::http::HttpResponse,
    ) -> Decision {
        text(&ctx, Direction::Response)
    }
}

impl bindings::llm::Guest for Pii {
    fn on_request(ctx: Context, _request: bindings::llm::LlmRequest) -> Decision {
        text(&ctx, Direction::Request)
    }

    fn on_response(
        ctx: Context,
        _request: bindings::llm::LlmRequest,
        _response: bindings::llm::LlmResponse,
    ) -> Decision {
        text(&ctx, Direction::Response)
    }
}

impl bindings::mcp::Guest for Pii {
    fn on_request(ctx: Context, _request: bindings::mcp::McpRequest) -> Decision {
        text(&ctx, Direction::Request)
    }

    fn on_result(ctx: Context, _request: bindings::mcp::McpRequest, _result: String) -> Decision {
        text(&ctx, Direction::Response)
    }

    fn filter_tools(_ctx: Context, _tools: Vec<bindings::mcp::ToolInfo>) -> Vec<String> {
        vec![]
    }
}

impl bindings::postgres::Guest for Pii {
    fn on_query(_ctx: Context, _query: bindings::postgres::Query) -> Decision {
        match config() {
            Ok(_) => allow().cacheable(CACHE_SCOPE_STATEMENT),
            Err(d) => d,
        }
    }

    /// Depends only on the columns, the caller's groups and the settings.
    fn on_result_columns(
        ctx: Context,
        _query: bindings::postgres::Query,
        columns: Vec<Column>,
    ) -> Decision {
        match config() {
            Ok(c) => decide_columns(&c, &ctx, &columns).cacheable(CACHE_SCOPE_COLUMNS),
            Err(d) => d,
        }
    }
}

#[cfg(test)]
mod tests;
