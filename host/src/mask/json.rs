//! JSON-pointer masks. A pointer names one value; `*` as a segment matches
//! every element or member at that level (`/items/*/token`). The document is
//! held in memory, up to the connection's `json_mask_limit_bytes`.

use serde_json::Value;

use super::MaskMethod;
use super::method::apply_to_string;

/// Masks every value the pointers reach; returns how many were masked.
pub fn mask_pointers(doc: &mut Value, pointers: &[(String, MaskMethod)], hash_key: &[u8]) -> usize {
    let mut count = 0;
    for (pointer, method) in pointers {
        let segments: Vec<String> = if pointer.is_empty() {
            vec![]
        } else {
            pointer
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect()
        };
        visit(doc, &segments, &mut |v| {
            let text = match &mut *v {
                Value::String(s) => std::mem::take(s),
                Value::Null => return,
                other => other.to_string(),
            };
            *v = Value::String(apply_to_string(*method, &text, "json", hash_key));
            count += 1;
        });
    }
    count
}

fn visit(v: &mut Value, path: &[String], f: &mut impl FnMut(&mut Value)) {
    let Some((head, rest)) = path.split_first() else {
        f(v);
        return;
    };
    match v {
        Value::Object(map) if head == "*" => map.values_mut().for_each(|c| visit(c, rest, f)),
        Value::Object(map) => {
            if let Some(c) = map.get_mut(head) {
                visit(c, rest, f)
            }
        }
        Value::Array(items) if head == "*" => items.iter_mut().for_each(|c| visit(c, rest, f)),
        Value::Array(items) => {
            if let Some(c) = head.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                visit(c, rest, f)
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_wildcards_mask_values() {
        let mut doc = json!({"user": {"password": "p4ss", "name": "al"}, "items": [{"token": "a"}, {"token": 7}], "a/b": "x"});
        let n = mask_pointers(
            &mut doc,
            &[
                ("/user/password".into(), MaskMethod::Redact),
                ("/items/*/token".into(), MaskMethod::Redact),
                ("/a~1b".into(), MaskMethod::Redact),
                ("/missing/x".into(), MaskMethod::Redact),
            ],
            b"k",
        );
        assert_eq!(n, 4);
        assert_eq!(doc["user"]["password"], "[MASKED:json]");
        assert_eq!(doc["user"]["name"], "al");
        assert_eq!(doc["items"][1]["token"], "[MASKED:json]");
        assert_eq!(doc["a/b"], "[MASKED:json]");
    }
}
