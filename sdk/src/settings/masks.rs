//! Mask rules written in settings, read the same way by every shipped policy:
//! `{"detector": "email"}`, `{"pattern": "sk-[a-z0-9]+", "method": "hash"}`,
//! `{"json_pointer": "/token", "method": {"partial": {"prefix": 2, "suffix": 2}}}`.
//! Errors name the key, e.g. `mask_response[1].method: unknown method "redcat"`.

use serde_json::{Map, Value};

use super::fields::{array, check_keys, key_path, object, opt_string, u8_field};
use crate::MaskRule;
use crate::types::{MaskMethod, MaskTarget, PartialKeep};

/// The targets a rule may name, besides `column` (SQL results only).
pub const TARGET_KEYS: &[&str] = &["header", "json_pointer", "pattern", "detector"];

/// `top[key]` as a list of mask rules (absent is empty). `what` names the
/// traffic the rules apply to, for the error a `column` rule gets.
pub fn mask_rules(
    top: &Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Vec<MaskRule>, String> {
    array(top, key, "")?
        .iter()
        .enumerate()
        .map(|(i, v)| mask_rule(v, &format!("{key}[{i}]"), what))
        .collect()
}

/// Parses every `pattern` of `rules` with the parser the host compiles
/// them with, so a bad one fails at load, not on the first request.
pub fn check_patterns(key: &str, rules: &[MaskRule]) -> Result<(), String> {
    for (i, rule) in rules.iter().enumerate() {
        if let MaskTarget::Pattern(p) = &rule.target {
            regex_syntax::parse(p)
                .map_err(|e| format!("{key}[{i}].pattern: invalid regex: {e}"))?;
        }
    }
    Ok(())
}

fn mask_rule(v: &Value, path: &str, what: &str) -> Result<MaskRule, String> {
    let obj = object(v, path)?;
    if obj.contains_key("column") {
        return Err(format!(
            "{path}.column: column masks apply to SQL results, not {what}"
        ));
    }
    check_keys(
        path,
        obj,
        &["header", "json_pointer", "pattern", "detector", "method"],
    )?;
    let mut targets = TARGET_KEYS.iter().filter(|k| obj.contains_key(**k));
    let (Some(target), None) = (targets.next(), targets.next()) else {
        return Err(format!(
            "{path}: expected exactly one of {}",
            TARGET_KEYS.join(", ")
        ));
    };
    let value = opt_string(obj, target, path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: expected a non-empty string", key_path(path, target)))?;
    let rule = match *target {
        "header" => MaskRule::header(value),
        "json_pointer" => {
            if !value.starts_with('/') {
                return Err(format!(
                    "{path}.json_pointer: a JSON pointer starts with \"/\", got \"{value}\""
                ));
            }
            MaskRule::json_pointer(value)
        }
        // Checked once at load by `check_patterns`, with the host's own parser.
        "pattern" => MaskRule::pattern(value),
        _ => MaskRule::detector(value),
    };
    Ok(rule.with_method(mask_method(obj.get("method"), path)?))
}

fn mask_method(v: Option<&Value>, path: &str) -> Result<MaskMethod, String> {
    let path = key_path(path, "method");
    match v {
        None | Some(Value::Null) => Ok(MaskMethod::Redact),
        Some(Value::String(s)) if s == "redact" => Ok(MaskMethod::Redact),
        Some(Value::String(s)) if s == "hash" => Ok(MaskMethod::Hash),
        Some(Value::String(s)) => Err(format!(
            "{path}: unknown method \"{s}\" (expected \"redact\", \"hash\" or {{\"partial\": {{\"prefix\": N, \"suffix\": N}}}})"
        )),
        Some(Value::Object(o)) => {
            check_keys(&path, o, &["partial"])?;
            let partial_path = key_path(&path, "partial");
            let keep = o
                .get("partial")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("{partial_path}: expected an object"))?;
            check_keys(&partial_path, keep, &["prefix", "suffix"])?;
            let prefix = u8_field(keep, "prefix", &partial_path)?;
            let suffix = u8_field(keep, "suffix", &partial_path)?;
            Ok(MaskMethod::Partial(PartialKeep { prefix, suffix }))
        }
        Some(_) => Err(format!("{path}: expected a string or an object")),
    }
}
