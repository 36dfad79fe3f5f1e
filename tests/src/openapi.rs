//! The admin API's OpenAPI document (`host/openapi.json`) as a checker:
//! finds the schema an operation declares for a status and media type, and
//! validates a real answer against it with `jsonschema` (Draft 2020-12, the
//! dialect of OpenAPI 3.1), `$ref`s into the document included.

use serde_json::Value;

pub struct OpenApi {
    doc: Value,
}

impl Default for OpenApi {
    fn default() -> Self {
        Self::load()
    }
}

impl OpenApi {
    pub fn load() -> OpenApi {
        let path = crate::root().join("host/openapi.json");
        let text = std::fs::read_to_string(&path).expect("read host/openapi.json");
        OpenApi {
            doc: serde_json::from_str(&text).expect("host/openapi.json is JSON"),
        }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Every `(METHOD, path template)` the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut ops = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    ops.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// Every `$ref` in the document points at something in it.
    pub fn check_refs(&self) {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("local $ref");
                        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        walk(&self.doc, &self.doc);
    }

    /// Checks `body` against what the document says `method template`
    /// answers with `status` as `content_type`; panics with every violation.
    pub fn check(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: &str,
        body: &Value,
    ) {
        let pointer = self.schema_pointer(method, template, status, content_type);
        let mut root = self.doc.clone();
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
        root["$ref"] = format!("#{}", fragment(&pointer)).into();
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} -> {status} ({content_type}) does not match the document:\n{}\nbody: {}",
            errors.join("\n"),
            serde_json::to_string_pretty(body).unwrap_or_default()
        );
    }

    /// The JSON pointer of the schema for one answer.
    fn schema_pointer(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: &str,
    ) -> String {
        let op = format!(
            "/paths/{}/{}",
            escape(template),
            method.to_ascii_lowercase()
        );
        assert!(
            self.doc.pointer(&op).is_some(),
            "the document has no {method} {template}"
        );
        let mut response = format!("{op}/responses/{status}");
        let found = self.doc.pointer(&response).unwrap_or_else(|| {
            panic!("the document says nothing of {method} {template} answering {status}")
        });
        if let Some(r) = found.get("$ref").and_then(Value::as_str) {
            response = r.trim_start_matches('#').to_string();
        }
        let media = content_type.split(';').next().unwrap_or("").trim();
        let pointer = format!("{response}/content/{}/schema", escape(media));
        assert!(
            self.doc.pointer(&pointer).is_some(),
            "the document has no {media} answer for {method} {template} -> {status}"
        );
        pointer
    }
}

/// A JSON pointer as a URI fragment: characters a URI may not hold
/// (the braces of path templates) percent-encoded.
fn fragment(pointer: &str) -> String {
    let mut out = String::new();
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON pointer token: `~` and `/` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
