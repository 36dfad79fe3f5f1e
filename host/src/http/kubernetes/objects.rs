//! JSON-pointer masks applied per Kubernetes object, whatever frames it:
//! a single object, each item of a list (`SecretList`, `List`), each row's
//! `object` of a `Table` (`kubectl get` without `-o`), and each event of a
//! watch stream (`{"type":..,"object":..}`, one JSON document per line).
//!
//! A policy writes its pointers for one object (`/data/*`); this module
//! finds the objects. Masks compile once per rule list (`mask/compile.rs`);
//! the per-pointer walk is `mask/json.rs`.

use serde_json::Value;

use crate::http::adapter::mask_json_text;
use crate::mask::CompiledMasks;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("a policy masks fields of Kubernetes objects, but the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("a watch event is not JSON: {0}")]
    BadEvent(serde_json::Error),
    #[error(
        "a policy masks fields of Kubernetes objects, which must then be at most {limit} bytes per {what}"
    )]
    TooLarge { what: &'static str, limit: usize },
}

/// Masks every object a document holds; returns how many values were masked.
pub fn mask_document(doc: &mut Value, masks: &CompiledMasks) -> usize {
    // A list: items carry no `kind` of their own (the API server leaves the
    // type on the list), so every item is an object.
    if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
        return items
            .iter_mut()
            .map(|item| mask_document(item, masks))
            .sum();
    }
    if doc.get("kind").and_then(Value::as_str) == Some("Table") {
        let Some(rows) = doc.get_mut("rows").and_then(Value::as_array_mut) else {
            return 0;
        };
        return rows
            .iter_mut()
            .filter_map(|row| row.get_mut("object"))
            .map(|obj| mask_document(obj, masks))
            .sum();
    }
    // A watch event frames one object (possibly a Table or a list itself).
    let is_event = doc.get("type").is_some_and(Value::is_string) && doc.get("object").is_some();
    if is_event {
        return doc
            .get_mut("object")
            .map(|obj| mask_document(obj, masks))
            .unwrap_or(0);
    }
    crate::mask::json::mask_pointers(doc, &masks.json_pointers, &masks.hash_key)
}

/// Masks one whole JSON body (an object, list or table): pointers per
/// object, then text masks in every string (so JSON stays JSON).
pub fn mask_body(bytes: &[u8], masks: &CompiledMasks) -> Result<(Vec<u8>, usize), ObjectError> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(ObjectError::NotJson)?;
    let n = mask_document(&mut doc, masks) + mask_json_text(&mut doc, masks) as usize;
    let out = serde_json::to_vec(&doc).map_err(ObjectError::NotJson)?;
    Ok((out, n))
}

/// Masks one watch event (one line of a watch stream, newline excluded).
pub fn mask_event(line: &[u8], masks: &CompiledMasks) -> Result<(Vec<u8>, usize), ObjectError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok((line.to_vec(), 0));
    }
    let mut doc: Value = serde_json::from_slice(line).map_err(ObjectError::BadEvent)?;
    let n = mask_document(&mut doc, masks) + mask_json_text(&mut doc, masks) as usize;
    let out = serde_json::to_vec(&doc).map_err(ObjectError::BadEvent)?;
    Ok((out, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};
    use serde_json::json;
    use std::sync::Arc;

    pub(crate) fn secret_masks() -> Arc<CompiledMasks> {
        let rules: Vec<MaskRule> = ["/data/*", "/stringData/*"]
            .iter()
            .map(|p| MaskRule {
                target: MaskTarget::JsonPointer(p.to_string()),
                method: MaskMethod::Redact,
            })
            .collect();
        MaskCompiler::new(b"k".to_vec())
            .compile(&rules, &[])
            .unwrap()
    }

    fn secret(name: &str) -> Value {
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name},
               "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}, "type": "Opaque"})
    }

    #[test]
    fn masks_a_secret_a_list_a_table_and_events() {
        let m = secret_masks();
        let mut one = secret("a");
        assert_eq!(mask_document(&mut one, &m), 2);
        assert_eq!(one["data"]["password"], "[MASKED:json]");
        assert_eq!(one["metadata"]["name"], "a");

        // Items of a typed list carry no kind.
        let mut bare = secret("b");
        bare.as_object_mut().unwrap().remove("kind");
        let mut list =
            json!({"kind": "SecretList", "apiVersion": "v1", "items": [secret("a"), bare]});
        assert_eq!(mask_document(&mut list, &m), 4);
        assert_eq!(list["items"][1]["data"]["user"], "[MASKED:json]");

        let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name"}],
            "rows": [{"cells": ["a"], "object": secret("a")}, {"cells": ["b"]}]});
        assert_eq!(mask_document(&mut table, &m), 2);
        assert_eq!(
            table["rows"][0]["object"]["data"]["password"],
            "[MASKED:json]"
        );

        let (line, n) = mask_event(
            serde_json::to_vec(&json!({"type": "ADDED", "object": secret("c")}))
                .unwrap()
                .as_slice(),
            &m,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert!(!String::from_utf8_lossy(&line).contains("aHVudGVyMg=="));
    }

    #[test]
    fn bad_json_is_an_error_not_a_pass_through() {
        let m = secret_masks();
        assert!(matches!(
            mask_body(b"{\"kind\": \"Secret\", \"data\": {", &m),
            Err(ObjectError::NotJson(_))
        ));
        assert!(matches!(
            mask_event(b"{\"type\":\"ADDED\",\"object\"", &m),
            Err(ObjectError::BadEvent(_))
        ));
    }
}
