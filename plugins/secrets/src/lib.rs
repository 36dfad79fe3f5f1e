//! `secrets`: masks credentials wherever text flows through Gatehouse: HTTP
//! request and response bodies and headers, LLM prompts and completions, MCP
//! requests, and PostgreSQL result values. The rules are the host's
//! credential detectors (gitleaks' families, with entropy and checksum
//! checks) and optional extra patterns; the host compiles them once and
//! masks the streams itself. See `README.md` and [`SETTINGS_SCHEMA`].

mod config;
pub mod families;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{CACHE_SCOPE_COLUMNS, CACHE_SCOPE_STATEMENT, allow, mask};

pub use config::{Config, parse};

gatehouse_sdk::export_policy!(Secrets, wit: "../../wit", hooks: [http, llm, mcp, postgres]);

use bindings::meta::Description;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

pub struct Secrets;

/// Which way the masked text flows.
#[derive(Clone, Copy)]
pub enum Direction {
    Request,
    Response,
}

/// The decision for a caller and a direction, under parsed settings.
pub fn decide(config: &Config, ctx: &Context, direction: Direction) -> Decision {
    let wanted = match direction {
        Direction::Request => config.mask_requests,
        Direction::Response => config.mask_responses,
    };
    if !wanted || config.rules.is_empty() || ctx.in_any_group(&config.unless_groups) {
        return allow().annotate("rule", "secrets");
    }
    mask(config.rules.iter().cloned()).annotate("rule", "secrets")
}

static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse.
pub fn config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("secrets", config::parse)
}

fn current(ctx: &Context, direction: Direction) -> Decision {
    match config() {
        Ok(config) => decide(&config, ctx, direction),
        Err(d) => d,
    }
}

impl bindings::meta::Guest for Secrets {
    fn describe() -> Description {
        Description {
            name: "secrets".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Masks credentials (cloud keys, tokens, private keys, passwords, high-entropy secrets) in every text stream".into(),
            protocols: vec![Protocol::Http, Protocol::Llm, Protocol::Mcp, Protocol::Postgres],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::parse(&settings).map(|_| ())
    }
}

impl bindings::http::Guest for Secrets {
    fn on_request(ctx: Context, _request: bindings::http::HttpRequest) -> Decision {
        current(&ctx, Direction::Request)
    }

    fn on_response(
        ctx: Context,
        _request: bindings::http::HttpRequest,
        _response: bindings::http::HttpResponse,
    ) -> Decision {
        current(&ctx, Direction::Response)
    }
}

impl bindings::llm::Guest for Secrets {
    fn on_request(ctx: Context, _request: bindings::llm::LlmRequest) -> Decision {
        current(&ctx, Direction::Request)
    }

    fn on_response(
        ctx: Context,
        _request: bindings::llm::LlmRequest,
        _response: bindings::llm::LlmResponse,
    ) -> Decision {
        current(&ctx, Direction::Response)
    }
}

impl bindings::mcp::Guest for Secrets {
    fn on_request(ctx: Context, _request: bindings::mcp::McpRequest) -> Decision {
        current(&ctx, Direction::Request)
    }

    fn on_result(ctx: Context, _request: bindings::mcp::McpRequest, _result: String) -> Decision {
        current(&ctx, Direction::Response)
    }

    fn filter_tools(_ctx: Context, _tools: Vec<bindings::mcp::ToolInfo>) -> Vec<String> {
        vec![]
    }
}

impl bindings::postgres::Guest for Secrets {
    /// Statements are not refused; their results are masked.
    fn on_query(_ctx: Context, _query: bindings::postgres::Query) -> Decision {
        match config() {
            Ok(_) => allow().cacheable(CACHE_SCOPE_STATEMENT),
            Err(d) => d,
        }
    }

    /// Depends only on the caller's groups and the settings.
    fn on_result_columns(
        ctx: Context,
        _query: bindings::postgres::Query,
        _columns: Vec<bindings::postgres::Column>,
    ) -> Decision {
        current(&ctx, Direction::Response).cacheable(CACHE_SCOPE_COLUMNS)
    }
}

#[cfg(test)]
mod tests;
