//! Settings parsing and validation. Every error names the offending key,
//! e.g. `rules[1].kinds[0]: unknown statement kind "dorp"`.
//!
//! Parsing is cheap (no regex is compiled) because every decision runs in a
//! fresh instance; `validate` adds the one expensive check, mask patterns,
//! and runs once at load.

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{
    array, check_keys, key_path, object, opt_bool, opt_string, opt_u32, string_list, u8_field,
};
use gatehouse_sdk::types::{MaskMethod, PartialKeep};
use serde_json::{Map, Value};

use crate::bindings::postgres::StatementKind;

/// Statement kinds by their WIT names, as `kinds` lists spell them.
pub const KINDS: &[(&str, StatementKind)] = &[
    ("select", StatementKind::Select),
    ("insert", StatementKind::Insert),
    ("update", StatementKind::Update),
    ("delete", StatementKind::Delete),
    ("merge", StatementKind::Merge),
    ("copy", StatementKind::Copy),
    ("create", StatementKind::Create),
    ("alter", StatementKind::Alter),
    ("drop", StatementKind::Drop),
    ("truncate", StatementKind::Truncate),
    ("grant", StatementKind::Grant),
    ("revoke", StatementKind::Revoke),
    ("transaction", StatementKind::Transaction),
    ("set", StatementKind::Set),
    ("show", StatementKind::Show),
    ("explain", StatementKind::Explain),
    ("call", StatementKind::Call),
    ("other", StatementKind::Other),
];

/// The approval timeout when `timeout_secs` is absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

// Limits the host enforces on every decision (`host/src/policy/decision.rs`).
// Checked here too, so a setting that would break every decision fails at
// load instead.
/// Longest approval wait the host accepts.
pub const MAX_TIMEOUT_SECS: u32 = 24 * 3600;
/// Longest reason the host accepts, in bytes.
pub use gatehouse_sdk::decision::MAX_REASON_BYTES;
/// Most mask rules in one decision.
pub const MAX_MASK_RULES: usize = 128;
/// Longest mask pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Parsed settings.
#[derive(Debug, Default)]
pub struct Config {
    pub rules: Vec<Rule>,
    pub unparsable: Unparsable,
    pub mask: Vec<MaskEntry>,
}

/// One entry of `rules`. Absent conditions match every statement.
#[derive(Debug)]
pub struct Rule {
    pub action: Action,
    /// Empty matches every kind.
    pub kinds: Vec<StatementKind>,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
    pub functions: Vec<String>,
    pub without_where: bool,
    /// The rule is skipped for callers in any of these groups.
    pub unless_groups: Vec<String>,
    pub reason: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Deny,
    Approve(Approval),
}

/// Who approves, how long they have, and how long an approval lasts.
#[derive(Debug, PartialEq, Eq)]
pub struct Approval {
    pub approvers: Vec<String>,
    pub timeout_secs: u32,
    /// 0: this query only.
    pub grant_secs: u32,
}

/// What to do with SQL the host could not parse.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum Unparsable {
    #[default]
    Deny,
    Allow,
    Approve(Approval),
}

/// One entry of `mask`.
#[derive(Debug)]
pub struct MaskEntry {
    pub rule: MaskRule,
    /// The entry does not apply to callers in any of these groups.
    pub unless_groups: Vec<String>,
}

/// Everything `parse` checks, plus mask patterns parsed with the same
/// parser the host compiles them with. Run once, from `validate-config`.
pub fn validate(json: &str) -> Result<Config, String> {
    let config = parse(json)?;
    for (i, entry) in config.mask.iter().enumerate() {
        if let gatehouse_sdk::types::MaskTarget::Pattern(p) = &entry.rule.target {
            regex_syntax::parse(p).map_err(|e| format!("mask[{i}].pattern: invalid regex: {e}"))?;
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
    check_keys("settings", &top, &["rules", "unparsable", "mask"])?;
    let rules = array(&top, "rules", "")?
        .iter()
        .enumerate()
        .map(|(i, v)| rule(v, &format!("rules[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mask = array(&top, "mask", "")?;
    if mask.len() > MAX_MASK_RULES {
        return Err(format!(
            "mask: {} entries (at most {MAX_MASK_RULES})",
            mask.len()
        ));
    }
    let mask = mask
        .iter()
        .enumerate()
        .map(|(i, v)| mask_entry(v, &format!("mask[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Config {
        rules,
        unparsable: unparsable(top.get("unparsable"))?,
        mask,
    })
}

const RULE_KEYS: &[&str] = &[
    "action",
    "kinds",
    "tables_read",
    "tables_written",
    "functions",
    "without_where",
    "unless_groups",
    "reason",
];
const APPROVAL_KEYS: &[&str] = &["approvers", "timeout_secs", "grant_secs"];

fn rule(v: &Value, path: &str) -> Result<Rule, String> {
    let obj = object(v, path)?;
    let approve = match obj.get("action") {
        Some(Value::String(s)) if s == "deny" => false,
        Some(Value::String(s)) if s == "approve" => true,
        None | Some(Value::Null) => {
            return Err(format!("{path}.action: required, \"deny\" or \"approve\""));
        }
        Some(_) => return Err(format!("{path}.action: expected \"deny\" or \"approve\"")),
    };
    if approve {
        let allowed: Vec<&str> = RULE_KEYS.iter().chain(APPROVAL_KEYS).copied().collect();
        check_keys(path, obj, &allowed)?;
    } else {
        if let Some(k) = APPROVAL_KEYS.iter().find(|k| obj.contains_key(**k)) {
            return Err(format!("{path}.{k}: only \"approve\" rules take {k}"));
        }
        check_keys(path, obj, RULE_KEYS)?;
    }
    let kinds = kinds(obj, path)?;
    let without_where = opt_bool(obj, "without_where", path)?.unwrap_or(false);
    if without_where
        && !kinds.is_empty()
        && !kinds
            .iter()
            .any(|k| matches!(k, StatementKind::Update | StatementKind::Delete))
    {
        return Err(format!(
            "{path}.without_where: only UPDATE and DELETE can lack a WHERE clause, and kinds lists neither"
        ));
    }
    let action = if approve {
        Action::Approve(approval(obj, path, true)?)
    } else {
        Action::Deny
    };
    Ok(Rule {
        action,
        kinds,
        tables_read: names(obj, "tables_read", path, "a table")?,
        tables_written: names(obj, "tables_written", path, "a table")?,
        functions: names(obj, "functions", path, "a function")?,
        without_where,
        unless_groups: string_list(obj, "unless_groups", path)?,
        reason: reason(obj, path)?,
    })
}

fn kinds(obj: &Map<String, Value>, path: &str) -> Result<Vec<StatementKind>, String> {
    let kinds_path = key_path(path, "kinds");
    string_list(obj, "kinds", path)?
        .iter()
        .enumerate()
        .map(|(i, k)| {
            KINDS
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, kind)| *kind)
                .ok_or_else(|| {
                    let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "{kinds_path}[{i}]: unknown statement kind \"{k}\" (expected one of: {})",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// `approvers`, `timeout_secs` and `grant_secs` (the last only if `grant`).
fn approval(obj: &Map<String, Value>, path: &str, grant: bool) -> Result<Approval, String> {
    let approvers = string_list(obj, "approvers", path)?;
    if approvers.is_empty() {
        return Err(format!(
            "{}: approval needs at least one approver group",
            key_path(path, "approvers")
        ));
    }
    if let Some(i) = approvers.iter().position(String::is_empty) {
        return Err(format!(
            "{}[{i}]: expected a non-empty string",
            key_path(path, "approvers")
        ));
    }
    let timeout_secs = opt_u32(obj, "timeout_secs", path)?.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout_secs) {
        return Err(format!(
            "{}: expected 1 to {MAX_TIMEOUT_SECS} seconds, got {timeout_secs}",
            key_path(path, "timeout_secs")
        ));
    }
    let grant_secs = if grant {
        opt_u32(obj, "grant_secs", path)?.unwrap_or(0)
    } else {
        0
    };
    Ok(Approval {
        approvers,
        timeout_secs,
        grant_secs,
    })
}

fn reason(obj: &Map<String, Value>, path: &str) -> Result<Option<String>, String> {
    match opt_string(obj, "reason", path)? {
        Some(r) if r.is_empty() || r.len() > MAX_REASON_BYTES => Err(format!(
            "{}: expected 1 to {MAX_REASON_BYTES} bytes",
            key_path(path, "reason")
        )),
        r => Ok(r),
    }
}

/// `"deny"`, `"allow"`, or `{"action": "approve", "approvers": [...], ...}`:
/// an approval has to name its approvers, so the bare string `"approve"` is
/// refused with a hint.
fn unparsable(v: Option<&Value>) -> Result<Unparsable, String> {
    const PATH: &str = "unparsable";
    match v {
        None | Some(Value::Null) => Ok(Unparsable::Deny),
        Some(Value::String(s)) if s == "deny" => Ok(Unparsable::Deny),
        Some(Value::String(s)) if s == "allow" => Ok(Unparsable::Allow),
        Some(Value::String(s)) if s == "approve" => Err(format!(
            "{PATH}: an approval needs approvers: write {{\"action\": \"approve\", \"approvers\": [\"dba\"], \"timeout_secs\": {DEFAULT_TIMEOUT_SECS}}}"
        )),
        Some(Value::Object(o)) => {
            match o.get("action") {
                Some(Value::String(s)) if s == "approve" => {}
                _ => {
                    return Err(format!(
                        "{PATH}.action: expected \"approve\" (use the plain strings \"deny\" or \"allow\" otherwise)"
                    ));
                }
            }
            check_keys(PATH, o, &["action", "approvers", "timeout_secs"])?;
            Ok(Unparsable::Approve(approval(o, PATH, false)?))
        }
        Some(_) => Err(format!(
            "{PATH}: expected \"deny\", \"allow\" or {{\"action\": \"approve\", \"approvers\": [...]}}"
        )),
    }
}

const TARGET_KEYS: &[&str] = &["column", "detector", "pattern"];

fn mask_entry(v: &Value, path: &str) -> Result<MaskEntry, String> {
    let obj = object(v, path)?;
    if obj.contains_key("header") || obj.contains_key("json_pointer") {
        return Err(format!(
            "{path}: header and json_pointer masks apply to HTTP, not SQL results"
        ));
    }
    check_keys(
        path,
        obj,
        &[
            "column",
            "detector",
            "pattern",
            "method",
            "prefix",
            "suffix",
            "unless_groups",
        ],
    )?;
    let mut targets = TARGET_KEYS.iter().filter(|k| obj.contains_key(**k));
    let (Some(target), None) = (targets.next(), targets.next()) else {
        return Err(format!(
            "{path}: expected exactly one of {}",
            TARGET_KEYS.join(", ")
        ));
    };
    let target_path = key_path(path, target);
    let value = opt_string(obj, target, path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{target_path}: expected a non-empty string"))?;
    let rule = match *target {
        "column" => {
            check_column(&value, &target_path)?;
            MaskRule::column(value)
        }
        "pattern" => {
            if value.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    "{target_path}: {} bytes (at most {MAX_PATTERN_BYTES})",
                    value.len()
                ));
            }
            // Parsed once at load by `validate`, with the host's own parser.
            MaskRule::pattern(value)
        }
        _ => MaskRule::detector(value),
    };
    Ok(MaskEntry {
        rule: rule.with_method(mask_method(obj, path)?),
        unless_groups: string_list(obj, "unless_groups", path)?,
    })
}

/// `email`, `users.email`, `public.users.email` or `type:NAME`.
fn check_column(value: &str, path: &str) -> Result<(), String> {
    let ok = match value.strip_prefix("type:") {
        Some(type_name) => !type_name.is_empty(),
        None => value.split('.').all(|part| !part.is_empty()),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{path}: expected a column name, table.column or type:NAME, got \"{value}\""
        ))
    }
}

/// `method` (`redact`, `hash` or `partial`), with `prefix` and `suffix`
/// beside it for `partial`.
fn mask_method(obj: &Map<String, Value>, path: &str) -> Result<MaskMethod, String> {
    let method = opt_string(obj, "method", path).map_err(|_| {
        format!(
            "{}: expected \"redact\", \"hash\" or \"partial\"",
            key_path(path, "method")
        )
    })?;
    let partial = method.as_deref() == Some("partial");
    if !partial && let Some(k) = ["prefix", "suffix"].iter().find(|k| obj.contains_key(**k)) {
        return Err(format!(
            "{}: only with \"method\": \"partial\"",
            key_path(path, k)
        ));
    }
    match method.as_deref() {
        None | Some("redact") => Ok(MaskMethod::Redact),
        Some("hash") => Ok(MaskMethod::Hash),
        Some("partial") => Ok(MaskMethod::Partial(PartialKeep {
            prefix: u8_field(obj, "prefix", path)?,
            suffix: u8_field(obj, "suffix", path)?,
        })),
        Some(other) => Err(format!(
            "{}: unknown method \"{other}\" (expected \"redact\", \"hash\" or \"partial\")",
            key_path(path, "method")
        )),
    }
}

/// A list of table or function names: non-empty, dot-separated parts.
fn names(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
    what: &str,
) -> Result<Vec<String>, String> {
    let list = string_list(obj, key, parent)?;
    if let Some(i) = list
        .iter()
        .position(|n| n.split('.').any(|part| part.trim().is_empty()))
    {
        return Err(format!(
            "{}[{i}]: expected {what} name, bare or schema-qualified, got \"{}\"",
            key_path(parent, key),
            list[i]
        ));
    }
    Ok(list)
}
