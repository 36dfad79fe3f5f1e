//! Settings parsing and validation. Every error names the offending key,
//! e.g. `groups.agents.allow[1]: expected a tool name or a pattern ending in "*"`.

use std::collections::BTreeMap;

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{
    array, check_keys, check_mask_patterns, key_path, mask_rule, object, opt_bool, opt_string,
    opt_u32, settings_object, string_list,
};
use serde_json::{Map, Value};

/// The approval timeout when `timeout_secs` is absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

/// Compiled settings.
#[derive(Debug)]
pub struct Config {
    /// Tool rules by group name.
    pub groups: BTreeMap<String, ToolRules>,
    /// For callers in none of `groups`.
    pub default: ToolRules,
    pub hide_denied_tools: bool,
    pub approve_destructive: Option<ApproveRule>,
    pub unknown_tools: Unknown,
    pub mask_results: Vec<MaskRule>,
    /// Which resources (and resource templates) each group may see and
    /// read, by URI; `None`: all of them, for everyone.
    pub resources: Option<Listing>,
    /// Which prompts each group may see and get, by name; `None`: all.
    pub prompts: Option<Listing>,
}

/// Rules for one kind of listed entry, by group, as for tools.
#[derive(Debug)]
pub struct Listing {
    pub groups: BTreeMap<String, ToolRules>,
    /// For callers in none of `groups`.
    pub default: ToolRules,
}

impl Listing {
    /// Whether a caller in `groups` may see (and read) the entry `id`.
    pub fn permits(&self, groups: &[String], id: &str) -> bool {
        permits(&self.groups, &self.default, groups, id)
    }
}

/// Which tools a group may call: allowed unless denied.
#[derive(Debug, Clone, Default)]
pub struct ToolRules {
    pub allow: Vec<NamePattern>,
    pub deny: Vec<NamePattern>,
}

/// A tool name, or a prefix ending in `*` (`*` alone matches every tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone)]
pub struct ApproveRule {
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub grant_secs: u32,
    pub unless_groups: Vec<String>,
    pub reason: Option<String>,
}

/// What happens to a call of a tool Gatehouse has not seen listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    Deny,
    Approve,
    /// Treated like a listed, non-destructive tool.
    Allow,
}

impl NamePattern {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

impl ToolRules {
    fn allows(&self, name: &str) -> bool {
        self.allow.iter().any(|p| p.matches(name))
    }

    fn denies(&self, name: &str) -> bool {
        self.deny.iter().any(|p| p.matches(name))
    }
}

impl Config {
    /// Whether a caller in `groups` may call (and see) `tool`: some rule set
    /// that applies to the caller allows it and none denies it.
    pub fn permits(&self, groups: &[String], tool: &str) -> bool {
        permits(&self.groups, &self.default, groups, tool)
    }
}

/// The rule sets that apply to a caller in `groups` (those of its listed
/// groups, else `default`): some allows `name` and none denies it.
fn permits(
    rules: &BTreeMap<String, ToolRules>,
    default: &ToolRules,
    groups: &[String],
    name: &str,
) -> bool {
    let mine: Vec<&ToolRules> = groups.iter().filter_map(|g| rules.get(g)).collect();
    let sets = if mine.is_empty() { vec![default] } else { mine };
    sets.iter().any(|r| r.allows(name)) && !sets.iter().any(|r| r.denies(name))
}

/// `parse`, plus mask patterns parsed with the host's own parser. Run once,
/// from `validate-config`.
pub fn validate(json: &str) -> Result<Config, String> {
    let config = parse(json)?;
    check_mask_patterns("mask_results", &config.mask_results)?;
    Ok(config)
}

/// Parses the settings JSON (`""` counts as `{}`).
pub fn parse(json: &str) -> Result<Config, String> {
    let top = settings_object(json)?;
    check_keys(
        "settings",
        &top,
        &[
            "groups",
            "default",
            "hide_denied_tools",
            "approve_destructive",
            "unknown_tools",
            "mask_results",
            "resources",
            "prompts",
        ],
    )?;
    let (groups, default) = rule_sets(&top, "", TOOL)?;
    let listing = |key: &str, noun: &'static str| -> Result<Option<Listing>, String> {
        match top.get(key).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => {
                let obj = object(v, key)?;
                check_keys(key, obj, &["groups", "default"])?;
                let (groups, default) = rule_sets(obj, key, noun)?;
                Ok(Some(Listing { groups, default }))
            }
        }
    };
    let resources = listing("resources", "a resource URI")?;
    let prompts = listing("prompts", "a prompt name")?;
    let approve_destructive = match top.get("approve_destructive").filter(|v| !v.is_null()) {
        Some(v) => Some(approve_rule(v, "approve_destructive")?),
        None => None,
    };
    let unknown_tools = match opt_string(&top, "unknown_tools", "")?.as_deref() {
        None | Some("deny") => Unknown::Deny,
        Some("approve") => Unknown::Approve,
        Some("allow") => Unknown::Allow,
        Some(other) => {
            return Err(format!(
                "unknown_tools: unknown value \"{other}\" (expected \"deny\", \"approve\" or \"allow\")"
            ));
        }
    };
    if unknown_tools == Unknown::Approve && approve_destructive.is_none() {
        return Err(
            "unknown_tools: \"approve\" needs approve_destructive, which names the approvers"
                .into(),
        );
    }
    Ok(Config {
        groups,
        default,
        hide_denied_tools: opt_bool(&top, "hide_denied_tools", "")?.unwrap_or(true),
        approve_destructive,
        unknown_tools,
        mask_results: array(&top, "mask_results", "")?
            .iter()
            .enumerate()
            .map(|(i, v)| mask_rule(v, &format!("mask_results[{i}]")))
            .collect::<Result<_, _>>()?,
        resources,
        prompts,
    })
}

/// What a tool pattern names, in errors.
const TOOL: &str = "a tool name";

/// `groups` and `default` of `obj` (at `path`): rule sets by group, and the
/// one for callers in none of them. With no groups listed, nobody is
/// restricted; once groups are listed, callers outside them get nothing
/// (unless `default` says otherwise).
fn rule_sets(
    obj: &Map<String, Value>,
    path: &str,
    noun: &'static str,
) -> Result<(BTreeMap<String, ToolRules>, ToolRules), String> {
    let mut groups = BTreeMap::new();
    if let Some(v) = obj.get("groups").filter(|v| !v.is_null()) {
        let at = key_path(path, "groups");
        for (name, rules) in object(v, &at)? {
            groups.insert(name.clone(), tool_rules(rules, &key_path(&at, name), noun)?);
        }
    }
    let default = match obj.get("default").filter(|v| !v.is_null()) {
        Some(v) => tool_rules(v, &key_path(path, "default"), noun)?,
        None if groups.is_empty() => ToolRules {
            allow: vec![NamePattern::Prefix(String::new())],
            deny: vec![],
        },
        None => ToolRules::default(),
    };
    Ok((groups, default))
}

fn tool_rules(v: &Value, path: &str, noun: &'static str) -> Result<ToolRules, String> {
    let obj = object(v, path)?;
    check_keys(path, obj, &["allow", "deny"])?;
    Ok(ToolRules {
        allow: patterns(obj, "allow", path, noun)?,
        deny: patterns(obj, "deny", path, noun)?,
    })
}

fn patterns(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    noun: &str,
) -> Result<Vec<NamePattern>, String> {
    string_list(obj, key, path)?
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let bad = || {
                format!(
                    "{}[{i}]: expected {noun} or a pattern ending in \"*\", got \"{p}\"",
                    key_path(path, key)
                )
            };
            match p.strip_suffix('*') {
                Some(prefix) if prefix.contains('*') => Err(bad()),
                Some(prefix) => Ok(NamePattern::Prefix(prefix.to_string())),
                None if p.is_empty() || p.contains('*') => Err(bad()),
                None => Ok(NamePattern::Exact(p)),
            }
        })
        .collect()
}

fn approve_rule(v: &Value, path: &str) -> Result<ApproveRule, String> {
    let obj = object(v, path)?;
    check_keys(
        path,
        obj,
        &[
            "approver_groups",
            "timeout_secs",
            "grant_secs",
            "unless_groups",
            "reason",
        ],
    )?;
    let approver_groups = string_list(obj, "approver_groups", path)?;
    if approver_groups.is_empty() {
        return Err(format!(
            "{}: name at least one group whose members may approve",
            key_path(path, "approver_groups")
        ));
    }
    Ok(ApproveRule {
        approver_groups,
        timeout_secs: opt_u32(obj, "timeout_secs", path)?.unwrap_or(DEFAULT_TIMEOUT_SECS),
        grant_secs: opt_u32(obj, "grant_secs", path)?.unwrap_or(0),
        unless_groups: string_list(obj, "unless_groups", path)?,
        reason: opt_string(obj, "reason", path)?,
    })
}
