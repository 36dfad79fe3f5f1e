//! Settings, validated once at load; every error names the key, e.g.
//! `families[2]: unknown family "gihtub" (known: aws, gcp, ...)`.

use gatehouse_sdk::MaskRule;
use gatehouse_sdk::settings::fields::{
    array, check_keys, key_path, mask_method, object, opt_bool, opt_string, string_list,
};
use gatehouse_sdk::types::MaskMethod;
use serde_json::Value;

use crate::families::{self, FAMILIES};

/// The longest extra pattern match the host will hold back in a stream.
pub const MAX_PATTERN_MATCH: usize = 4096;

#[derive(Debug)]
pub struct Config {
    /// The rules every masking decision carries, in order.
    pub rules: Vec<MaskRule>,
    pub mask_requests: bool,
    pub mask_responses: bool,
    pub unless_groups: Vec<String>,
}

pub fn parse(json: &str) -> Result<Config, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let top = object(&root, "settings")?;
    check_keys(
        "settings",
        top,
        &[
            "families",
            "exclude",
            "method",
            "patterns",
            "mask_requests",
            "mask_responses",
            "unless_groups",
        ],
    )?;
    let method = mask_method(top.get("method"), "")?;
    // Aliases expand to their members; the rules follow FAMILIES' order, so
    // a family named twice (or through an alias) gives its rules once.
    let families: Vec<&str> = match top.get("families") {
        None | Some(Value::Null) => FAMILIES.iter().map(|(n, _)| *n).collect(),
        Some(_) => {
            let mut selected = Vec::new();
            for (i, f) in string_list(top, "families", "")?.iter().enumerate() {
                selected.extend(families::expand(f).ok_or_else(|| {
                    format!(
                        "families[{i}]: unknown family \"{f}\" (known: {})",
                        families::family_names().join(", ")
                    )
                })?);
            }
            selected
        }
    };
    let exclude = string_list(top, "exclude", "")?;
    for (i, d) in exclude.iter().enumerate() {
        if !families::is_detector(d) {
            return Err(format!("exclude[{i}]: unknown detector \"{d}\""));
        }
    }
    let mut rules: Vec<MaskRule> = FAMILIES
        .iter()
        .filter(|(name, _)| families.contains(name))
        .flat_map(|(_, detectors)| detectors.iter())
        .filter(|d| !exclude.iter().any(|e| e == *d))
        .map(|d| MaskRule::detector(*d).with_method(method))
        .collect();
    for (i, p) in array(top, "patterns", "")?.iter().enumerate() {
        rules.push(extra_pattern(p, &format!("patterns[{i}]"), method)?);
    }
    Ok(Config {
        rules,
        mask_requests: opt_bool(top, "mask_requests", "")?.unwrap_or(true),
        mask_responses: opt_bool(top, "mask_responses", "")?.unwrap_or(true),
        unless_groups: string_list(top, "unless_groups", "")?,
    })
}

/// `{"pattern": "...", "method": ...}`: checked with the host's regex
/// parser, and bounded (the host holds back at most the longest match).
fn extra_pattern(v: &Value, path: &str, default: MaskMethod) -> Result<MaskRule, String> {
    let obj = object(v, path)?;
    check_keys(path, obj, &["pattern", "method"])?;
    let pattern = opt_string(obj, "pattern", path)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: expected a non-empty string", key_path(path, "pattern")))?;
    let hir =
        regex_syntax::parse(&pattern).map_err(|e| format!("{path}.pattern: invalid regex: {e}"))?;
    match hir.properties().maximum_len() {
        Some(n) if n <= MAX_PATTERN_MATCH => {}
        _ => {
            return Err(format!(
                "{path}.pattern: matches may be longer than {MAX_PATTERN_MATCH} bytes; bound every repetition (e.g. {{1,64}} instead of +)"
            ));
        }
    }
    let method = match obj.get("method") {
        None | Some(Value::Null) => default,
        m => mask_method(m, path)?,
    };
    Ok(MaskRule::pattern(pattern).with_method(method))
}
