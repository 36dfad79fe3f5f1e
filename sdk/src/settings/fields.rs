//! Readers for settings validated by hand (as the shipped policies do, to
//! reject unknown keys and to name the exact key in every error): each takes
//! the JSON object, the key and the path of its parent, and says what it
//! expected at `parent.key`. Absent and `null` read as "not given".

use serde_json::{Map, Value};

use crate::types::{MaskMethod, MaskRule, PartialKeep};

pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub fn check_keys(path: &str, obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{path}: unknown key \"{k}\" (expected one of: {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

pub fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{path}: expected an object"))
}

/// `obj[key]` as an array; absent or null is empty.
pub fn array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<&'a [Value], String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{}: expected an array", key_path(parent, key))),
    }
}

pub fn opt_string(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{}: expected a string", key_path(parent, key))),
    }
}

pub fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    parent: &str,
) -> Result<Vec<String>, String> {
    let path = key_path(parent, key);
    array(obj, key, parent)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{path}[{i}]: expected a string"))
        })
        .collect()
}

pub fn opt_u32(obj: &Map<String, Value>, key: &str, parent: &str) -> Result<Option<u32>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "{}: expected a whole number from 0 to {}",
                    key_path(parent, key),
                    u32::MAX
                )
            }),
    }
}

pub fn u8_field(obj: &Map<String, Value>, key: &str, parent: &str) -> Result<u8, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "{}: expected a whole number from 0 to 255",
                    key_path(parent, key)
                )
            }),
    }
}

pub fn opt_bool(obj: &Map<String, Value>, key: &str, parent: &str) -> Result<Option<bool>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{}: expected true or false", key_path(parent, key))),
    }
}

const TARGET_KEYS: &[&str] = &["header", "json_pointer", "pattern", "detector"];

/// A mask rule of an HTTP-shaped protocol (HTTP, LLM, MCP, Kubernetes):
/// exactly one of `header`, `json_pointer`, `pattern` or `detector`, and a
/// `method`. Patterns are checked by the policy's `validate-config`.
pub fn mask_rule(v: &Value, path: &str) -> Result<MaskRule, String> {
    let obj = object(v, path)?;
    if obj.contains_key("column") {
        return Err(format!(
            "{path}.column: column masks apply to SQL results only"
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
        // Checked once at load by `validate`, with the host's own parser.
        "pattern" => MaskRule::pattern(value),
        _ => MaskRule::detector(value),
    };
    Ok(rule.with_method(mask_method(obj.get("method"), path)?))
}

/// `"redact"` (the default), `"hash"` or `{"partial": {"prefix": N, "suffix": N}}`.
pub fn mask_method(v: Option<&Value>, path: &str) -> Result<MaskMethod, String> {
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
