//! Settings parsing and validation. Every error names the offending key,
//! e.g. `deny_prompts[1].pattern: invalid regex: ...`.

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{
    array, check_keys, key_path, mask_rule, object, opt_bool, opt_string, opt_u32, string_list,
};
use regex_lite::Regex;
use serde_json::Value;

/// The approval timeout when `timeout_secs` is absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

/// Prompts asking a model to print or send credentials, on unless
/// `builtin_prompt_rules` is false. Case-insensitive, over each message.
pub const BUILTIN_PROMPT_RULES: &[(&str, &str)] = &[
    (
        r"(?i)\b(print|show|reveal|dump|output|display|list|echo|return|repeat|give me|tell me|send|post|upload|exfiltrate|leak|copy)\b[^.\n]{0,80}\b(api[ _-]?keys?|secret[ _-]?keys?|secrets|credentials?|passwords?|passphrases?|private[ _-]?keys?|access[ _-]?tokens?|auth(entication)?[ _-]?tokens?|bearer tokens?|session cookies?)\b",
        "the prompt asks the model to reveal or send credentials",
    ),
    (
        r"(?i)\b(cat|type|print|read|open|show)\b[^\n]{0,20}(~/|\$HOME/|/root/)?\.(env|netrc|pgpass|npmrc|pypirc|git-credentials|aws/credentials|ssh/id_[a-z0-9]+|kube/config|docker/config\.json)\b",
        "the prompt asks for a credentials file",
    ),
    (
        r"(?i)\b(ignore|disregard|forget)\b[^\n]{0,40}\b(previous|prior|above|system)\b[^\n]{0,40}\b(instructions|prompt|rules)\b[^\n]{0,120}\b(secret|key|password|token|credential)s?\b",
        "the prompt tries to override instructions to obtain secrets",
    ),
];

/// Compiled settings.
#[derive(Debug, Default)]
pub struct Config {
    pub deny_prompts: Vec<PromptRule>,
    pub mask: Vec<MaskRule>,
    /// Empty: every model for everyone.
    pub model_access: Vec<ModelAccess>,
    pub approve_models: Vec<ApproveModels>,
    /// Completions whose text matches are refused (`on-response`).
    pub deny_completions: Vec<PromptRule>,
    /// Tool calls a completion may not make (`on-response`).
    pub deny_tool_calls: Vec<ToolCallRule>,
}

/// A tool the model may not call (with arguments matching, when given).
#[derive(Debug)]
pub struct ToolCallRule {
    /// Tool names, with `*` matching any run of characters.
    pub tools: Vec<String>,
    /// Over the call's arguments (JSON text); `None`: any arguments.
    pub arguments: Option<Regex>,
    pub reason: String,
    pub unless_groups: Vec<String>,
    /// Where the rule came from (`deny_tool_calls[0]`).
    pub name: String,
}

#[derive(Debug)]
pub struct PromptRule {
    pub pattern: Regex,
    pub reason: String,
    /// Roles whose messages are checked; empty: all.
    pub roles: Vec<String>,
    pub unless_groups: Vec<String>,
    /// Where the rule came from (`deny_prompts[0]`, `builtin[1]`).
    pub name: String,
}

#[derive(Debug)]
pub struct ModelAccess {
    /// Empty: everyone.
    pub groups: Vec<String>,
    /// Names, with `*` matching any run of characters.
    pub models: Vec<String>,
}

#[derive(Debug)]
pub struct ApproveModels {
    pub models: Vec<String>,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub grant_secs: u32,
    pub unless_groups: Vec<String>,
    pub reason: Option<String>,
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Everything `parse` checks, plus mask patterns parsed with the host's
/// parser. Run once, from `validate-config`.
pub fn validate(json: &str) -> Result<Config, String> {
    let config = parse(json)?;
    for (i, rule) in config.mask.iter().enumerate() {
        if let gatehouse_sdk::types::MaskTarget::Pattern(p) = &rule.target {
            regex_syntax::parse(p).map_err(|e| format!("mask[{i}].pattern: invalid regex: {e}"))?;
        }
    }
    Ok(config)
}

/// Parses the settings JSON (`""` counts as `{}`).
pub fn parse(json: &str) -> Result<Config, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("settings are not valid JSON: {e}"))?;
    let top = object(&value, "settings")?;
    check_keys(
        "settings",
        top,
        &[
            "deny_prompts",
            "builtin_prompt_rules",
            "mask",
            "model_access",
            "approve_models",
            "deny_completions",
            "deny_tool_calls",
        ],
    )?;
    let mut config = Config::default();
    if opt_bool(top, "builtin_prompt_rules", "")?.unwrap_or(true) {
        for (i, (pattern, reason)) in BUILTIN_PROMPT_RULES.iter().enumerate() {
            config.deny_prompts.push(PromptRule {
                pattern: Regex::new(pattern).map_err(|e| format!("builtin[{i}]: {e}"))?,
                reason: (*reason).into(),
                roles: vec![],
                unless_groups: vec![],
                name: format!("builtin[{i}]"),
            });
        }
    }
    for (i, v) in array(top, "deny_prompts", "")?.iter().enumerate() {
        let path = format!("deny_prompts[{i}]");
        let obj = object(v, &path)?;
        check_keys(&path, obj, &["pattern", "reason", "roles", "unless_groups"])?;
        let pattern = opt_string(obj, "pattern", &path)?
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("{path}.pattern: expected a non-empty string"))?;
        config.deny_prompts.push(PromptRule {
            pattern: Regex::new(&pattern)
                .map_err(|e| format!("{}: invalid regex: {e}", key_path(&path, "pattern")))?,
            reason: opt_string(obj, "reason", &path)?
                .unwrap_or_else(|| format!("the prompt matches llm-guard rule {path}")),
            roles: string_list(obj, "roles", &path)?,
            unless_groups: string_list(obj, "unless_groups", &path)?,
            name: path,
        });
    }
    for (i, v) in array(top, "mask", "")?.iter().enumerate() {
        config.mask.push(mask_rule(v, &format!("mask[{i}]"))?);
    }
    for (i, v) in array(top, "model_access", "")?.iter().enumerate() {
        let path = format!("model_access[{i}]");
        let obj = object(v, &path)?;
        check_keys(&path, obj, &["groups", "models"])?;
        let models = string_list(obj, "models", &path)?;
        if models.is_empty() {
            return Err(format!(
                "{path}.models: list at least one model (\"*\" for any)"
            ));
        }
        config.model_access.push(ModelAccess {
            groups: string_list(obj, "groups", &path)?,
            models,
        });
    }
    for (i, v) in array(top, "approve_models", "")?.iter().enumerate() {
        let path = format!("approve_models[{i}]");
        let obj = object(v, &path)?;
        check_keys(
            &path,
            obj,
            &[
                "models",
                "approver_groups",
                "timeout_secs",
                "grant_secs",
                "unless_groups",
                "reason",
            ],
        )?;
        let models = string_list(obj, "models", &path)?;
        if models.is_empty() {
            return Err(format!("{path}.models: list at least one model"));
        }
        let approver_groups = string_list(obj, "approver_groups", &path)?;
        if approver_groups.is_empty() {
            return Err(format!(
                "{path}.approver_groups: name at least one group whose members may approve"
            ));
        }
        config.approve_models.push(ApproveModels {
            models,
            approver_groups,
            timeout_secs: opt_u32(obj, "timeout_secs", &path)?.unwrap_or(DEFAULT_TIMEOUT_SECS),
            grant_secs: opt_u32(obj, "grant_secs", &path)?.unwrap_or(0),
            unless_groups: string_list(obj, "unless_groups", &path)?,
            reason: opt_string(obj, "reason", &path)?,
        });
    }
    for (i, v) in array(top, "deny_completions", "")?.iter().enumerate() {
        let path = format!("deny_completions[{i}]");
        let obj = object(v, &path)?;
        check_keys(&path, obj, &["pattern", "reason", "unless_groups"])?;
        config.deny_completions.push(PromptRule {
            pattern: required_regex(obj, "pattern", &path)?,
            reason: opt_string(obj, "reason", &path)?
                .unwrap_or_else(|| format!("the completion matches llm-guard rule {path}")),
            roles: vec![],
            unless_groups: string_list(obj, "unless_groups", &path)?,
            name: path,
        });
    }
    for (i, v) in array(top, "deny_tool_calls", "")?.iter().enumerate() {
        let path = format!("deny_tool_calls[{i}]");
        let obj = object(v, &path)?;
        check_keys(
            &path,
            obj,
            &["tools", "arguments", "reason", "unless_groups"],
        )?;
        let tools = string_list(obj, "tools", &path)?;
        if tools.is_empty() {
            return Err(format!(
                "{path}.tools: list at least one tool name (\"*\" for any)"
            ));
        }
        let arguments = match obj.get("arguments").filter(|v| !v.is_null()) {
            Some(_) => Some(required_regex(obj, "arguments", &path)?),
            None => None,
        };
        config.deny_tool_calls.push(ToolCallRule {
            tools,
            arguments,
            reason: opt_string(obj, "reason", &path)?
                .unwrap_or_else(|| format!("the model's tool call matches llm-guard rule {path}")),
            unless_groups: string_list(obj, "unless_groups", &path)?,
            name: path,
        });
    }
    Ok(config)
}

/// A non-empty regex-lite expression at `key`.
fn required_regex(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Regex, String> {
    let pattern = opt_string(obj, key, path)?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{}: expected a non-empty string", key_path(path, key)))?;
    Regex::new(&pattern).map_err(|e| format!("{}: invalid regex: {e}", key_path(path, key)))
}
