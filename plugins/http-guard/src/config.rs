//! Settings parsing and validation. Every error names the offending key,
//! e.g. `deny[1].methods: unknown method "GTE"`.

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{
    array, check_keys, key_path, mask_rule, object, opt_string, opt_u32, string_list,
};
use regex_lite::Regex;
use serde_json::{Map, Value};

/// Methods accepted in `methods` lists (compared case-insensitively).
pub const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];

/// The approval timeout when `timeout_secs` is absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

/// Compiled settings.
#[derive(Debug, Default)]
pub struct Config {
    pub deny: Vec<DenyRule>,
    pub approve: Vec<ApproveRule>,
    pub mask_response: Vec<MaskRule>,
    pub mask_request: Vec<MaskRule>,
}

/// What a deny or approve rule matches.
#[derive(Debug, Default)]
pub struct Matcher {
    /// Upper-case; empty matches every method.
    pub methods: Vec<String>,
    pub path_prefix: Option<String>,
    pub path_regex: Option<Regex>,
    /// The rule is skipped for callers in any of these groups.
    pub unless_groups: Vec<String>,
}

#[derive(Debug)]
pub struct DenyRule {
    pub matcher: Matcher,
    pub reason: String,
}

#[derive(Debug)]
pub struct ApproveRule {
    pub matcher: Matcher,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub grant_secs: u32,
    pub reason: String,
}

impl Matcher {
    /// True if `method` and `path` match (groups are checked by the caller).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok =
            self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
        let prefix_ok = self
            .path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p));
        let regex_ok = self.path_regex.as_ref().is_none_or(|r| r.is_match(path));
        method_ok && prefix_ok && regex_ok
    }

    /// What a grant covers: the prefix, else the regex, else `*`.
    pub fn grant_path(&self) -> String {
        match (&self.path_prefix, &self.path_regex) {
            (Some(p), _) => p.clone(),
            (None, Some(r)) => r.as_str().to_owned(),
            (None, None) => "*".to_owned(),
        }
    }
}

/// Everything `parse` checks, plus mask patterns parsed with the same
/// parser the host compiles them with. Run once, from `validate-config`.
pub fn validate(json: &str) -> Result<Config, String> {
    let config = parse(json)?;
    for (name, list) in [
        ("mask_response", &config.mask_response),
        ("mask_request", &config.mask_request),
    ] {
        for (i, rule) in list.iter().enumerate() {
            if let gatehouse_sdk::types::MaskTarget::Pattern(p) = &rule.target {
                regex_syntax::parse(p)
                    .map_err(|e| format!("{name}[{i}].pattern: invalid regex: {e}"))?;
            }
        }
    }
    Ok(config)
}

/// Parses the settings JSON (`""` counts as `{}`). Cheap enough to run in
/// every fresh instance.
pub fn parse(json: &str) -> Result<Config, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("settings are not valid JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err("settings: expected a JSON object".into());
    };
    check_keys(
        "settings",
        &top,
        &["deny", "approve", "mask_response", "mask_request"],
    )?;
    let mut config = Config::default();
    for (i, v) in array(&top, "deny", "")?.iter().enumerate() {
        let path = format!("deny[{i}]");
        let obj = object(v, &path)?;
        check_keys(
            &path,
            obj,
            &[
                "methods",
                "path_prefix",
                "path_regex",
                "unless_groups",
                "reason",
            ],
        )?;
        config.deny.push(DenyRule {
            matcher: matcher(obj, &path)?,
            reason: opt_string(obj, "reason", &path)?
                .unwrap_or_else(|| format!("denied by http-guard rule {path}")),
        });
    }
    for (i, v) in array(&top, "approve", "")?.iter().enumerate() {
        let path = format!("approve[{i}]");
        let obj = object(v, &path)?;
        check_keys(
            &path,
            obj,
            &[
                "methods",
                "path_prefix",
                "path_regex",
                "unless_groups",
                "approver_groups",
                "timeout_secs",
                "grant_secs",
                "reason",
            ],
        )?;
        config.approve.push(ApproveRule {
            matcher: matcher(obj, &path)?,
            approver_groups: string_list(obj, "approver_groups", &path)?,
            timeout_secs: opt_u32(obj, "timeout_secs", &path)?.unwrap_or(DEFAULT_TIMEOUT_SECS),
            grant_secs: opt_u32(obj, "grant_secs", &path)?.unwrap_or(0),
            reason: opt_string(obj, "reason", &path)?
                .unwrap_or_else(|| format!("approval required by http-guard rule {path}")),
        });
    }
    config.mask_response = mask_rules(&top, "mask_response")?;
    config.mask_request = mask_rules(&top, "mask_request")?;
    Ok(config)
}

fn matcher(obj: &Map<String, Value>, path: &str) -> Result<Matcher, String> {
    let methods_path = key_path(path, "methods");
    let methods = string_list(obj, "methods", path)?
        .into_iter()
        .map(|m| {
            let upper = m.to_ascii_uppercase();
            if KNOWN_METHODS.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(format!("{methods_path}: unknown method \"{m}\""))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let path_regex = match opt_string(obj, "path_regex", path)? {
        None => None,
        Some(r) => Some(
            Regex::new(&r)
                .map_err(|e| format!("{}: invalid regex: {e}", key_path(path, "path_regex")))?,
        ),
    };
    Ok(Matcher {
        methods,
        path_prefix: opt_string(obj, "path_prefix", path)?,
        path_regex,
        unless_groups: string_list(obj, "unless_groups", path)?,
    })
}

fn mask_rules(top: &Map<String, Value>, key: &str) -> Result<Vec<MaskRule>, String> {
    array(top, key, "")?
        .iter()
        .enumerate()
        .map(|(i, v)| mask_rule(v, &format!("{key}[{i}]")))
        .collect()
}
