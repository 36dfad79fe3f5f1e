//! Settings, validated once at load; every error names the key, e.g.
//! `methods.emial: unknown kind "emial" (known: email, phone, ...)`.

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{check_keys, mask_method, object, opt_bool, string_list};
use gatehouse_sdk::types::MaskMethod;
use serde_json::Value;

use crate::kinds::{self, KINDS, NATIONAL_IDS};

/// One enabled kind with its method and column hints.
#[derive(Debug)]
pub struct EnabledKind {
    pub name: &'static str,
    pub method: MaskMethod,
    pub detectors: Vec<&'static str>,
    pub column_hints: Vec<String>,
}

#[derive(Debug)]
pub struct Config {
    pub kinds: Vec<EnabledKind>,
    pub columns: bool,
    pub free_text: bool,
    pub mask_requests: bool,
    pub mask_responses: bool,
    pub unless_groups: Vec<String>,
    /// The free-text rules, built once.
    pub text_rules: Vec<MaskRule>,
}

pub fn parse(json: &str) -> Result<Config, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let top = object(&root, "settings")?;
    check_keys(
        "settings",
        top,
        &[
            "kinds",
            "national_ids",
            "method",
            "methods",
            "columns",
            "column_hints",
            "free_text",
            "mask_requests",
            "mask_responses",
            "unless_groups",
        ],
    )?;
    let known = || kinds::names().join(", ");
    let kind_names = match top.get("kinds") {
        None | Some(Value::Null) => kinds::names().into_iter().map(String::from).collect(),
        Some(_) => string_list(top, "kinds", "")?,
    };
    for (i, k) in kind_names.iter().enumerate() {
        if kinds::find(k).is_none() {
            return Err(format!(
                "kinds[{i}]: unknown kind \"{k}\" (known: {})",
                known()
            ));
        }
    }
    let national_ids = match top.get("national_ids") {
        None | Some(Value::Null) => NATIONAL_IDS.iter().map(|s| s.to_string()).collect(),
        Some(_) => string_list(top, "national_ids", "")?,
    };
    for (i, n) in national_ids.iter().enumerate() {
        if !NATIONAL_IDS.contains(&n.as_str()) {
            return Err(format!(
                "national_ids[{i}]: unknown national id \"{n}\" (known: {})",
                NATIONAL_IDS.join(", ")
            ));
        }
    }
    let default_method = mask_method(top.get("method"), "")?;
    let methods = match top.get("methods") {
        None | Some(Value::Null) => None,
        Some(v) => Some(object(v, "methods")?),
    };
    if let Some(m) = methods
        && let Some(k) = m.keys().find(|k| kinds::find(k).is_none())
    {
        return Err(format!(
            "methods.{k}: unknown kind \"{k}\" (known: {})",
            known()
        ));
    }
    let hints = match top.get("column_hints") {
        None | Some(Value::Null) => None,
        Some(v) => Some(object(v, "column_hints")?),
    };
    if let Some(h) = hints
        && let Some(k) = h.keys().find(|k| kinds::find(k).is_none())
    {
        return Err(format!(
            "column_hints.{k}: unknown kind \"{k}\" (known: {})",
            known()
        ));
    }
    let mut enabled = Vec::new();
    for kind in KINDS
        .iter()
        .filter(|k| kind_names.iter().any(|n| n == k.name))
    {
        let method = match methods.and_then(|m| m.get(kind.name)) {
            Some(v) => mask_method(Some(v), "methods")
                .map_err(|e| e.replace("methods.method", &format!("methods.{}", kind.name)))?,
            None => default_method,
        };
        let detectors = kind
            .detectors
            .iter()
            .copied()
            .filter(|d| kind.name != "national-id" || national_ids.iter().any(|n| n == d))
            .collect();
        let mut column_hints: Vec<String> =
            kind.column_hints.iter().map(|s| s.to_string()).collect();
        if let Some(h) = hints {
            column_hints.extend(string_list(h, kind.name, "column_hints")?);
        }
        enabled.push(EnabledKind {
            name: kind.name,
            method,
            detectors,
            column_hints,
        });
    }
    let free_text = opt_bool(top, "free_text", "")?.unwrap_or(true);
    let text_rules = if free_text {
        enabled
            .iter()
            .flat_map(|k| {
                k.detectors
                    .iter()
                    .map(|d| MaskRule::detector(*d).with_method(k.method))
            })
            .collect()
    } else {
        vec![]
    };
    Ok(Config {
        kinds: enabled,
        columns: opt_bool(top, "columns", "")?.unwrap_or(true),
        free_text,
        mask_requests: opt_bool(top, "mask_requests", "")?.unwrap_or(true),
        mask_responses: opt_bool(top, "mask_responses", "")?.unwrap_or(true),
        unless_groups: string_list(top, "unless_groups", "")?,
        text_rules,
    })
}
