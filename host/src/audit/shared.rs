//! Parts that many events repeat, stored once.
//!
//! A reused policy decision is the same JSON in every statement it decides
//! (its policies, versions, digests, rules). Instead of writing it into each
//! event, the event's detail holds `{"$shared": "sha256:HEX"}` and the part
//! is written once to `shared_parts`, keyed by the SHA-256 of its body. The
//! event's chain hash covers the reference, the reference is the body's
//! digest, so the trail stays tamper-evident; readers get details with the
//! parts put back ([`resolve`]), and verification checks each part against
//! its digest.

use std::collections::HashMap;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// The key that marks a reference in a stored detail.
pub const REFERENCE_KEY: &str = "$shared";

/// A JSON part with its content digest.
#[derive(Debug)]
pub struct SharedPart {
    pub digest: String,
    pub body: Box<RawValue>,
    /// `{"$shared": DIGEST}`, rendered once: every event that reuses the
    /// part writes it.
    reference: Box<RawValue>,
}

impl SharedPart {
    pub fn new(body: Box<RawValue>) -> Self {
        let digest = digest_of(body.get());
        let reference = serde_json::value::to_raw_value(&Reference(&digest))
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        Self {
            digest,
            body,
            reference,
        }
    }

    /// What a detail holds in place of the part.
    pub fn reference(&self) -> &RawValue {
        &self.reference
    }
}

pub fn digest_of(body: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body.as_bytes())))
}

/// `{"$shared": DIGEST}`.
struct Reference<'a>(&'a str);

impl Serialize for Reference<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(REFERENCE_KEY, self.0)?;
        m.end()
    }
}

/// Whether a stored detail may hold references (a cheap test before parsing).
pub fn mentions_references(detail: &str) -> bool {
    detail.contains("\"$shared\"")
}

/// The digests a detail refers to.
pub fn references(detail: &Value, out: &mut Vec<String>) {
    match detail {
        Value::Object(m) => {
            if let Some(d) = reference_in(m) {
                out.push(d.to_string());
                return;
            }
            m.values().for_each(|v| references(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Puts the parts back in place of their references; a reference to a
/// part that is missing stays as it is.
pub fn resolve(detail: &mut Value, parts: &HashMap<String, Value>) {
    match detail {
        Value::Object(m) => {
            if let Some(d) = reference_in(m) {
                if let Some(body) = parts.get(d) {
                    *detail = body.clone();
                }
                return;
            }
            m.values_mut().for_each(|v| resolve(v, parts));
        }
        Value::Array(a) => a.iter_mut().for_each(|v| resolve(v, parts)),
        _ => {}
    }
}

fn reference_in(m: &serde_json::Map<String, Value>) -> Option<&str> {
    match (m.len(), m.get(REFERENCE_KEY)) {
        (1, Some(Value::String(d))) => Some(d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_digests_are_of_the_body() {
        let part = SharedPart::new(RawValue::from_string(r#"{"verdict":"allow"}"#.into()).unwrap());
        assert_eq!(part.digest, digest_of(r#"{"verdict":"allow"}"#));
        let stored = serde_json::json!({
            "sql": "SELECT 1",
            "decisions": {"query": serde_json::to_value(part.reference()).unwrap(), "result": []},
        });
        let text = stored.to_string();
        assert!(mentions_references(&text));
        let mut found = vec![];
        references(&stored, &mut found);
        assert_eq!(found, vec![part.digest.clone()]);
        let mut resolved = stored.clone();
        let parts = HashMap::from([(
            part.digest.clone(),
            serde_json::from_str(part.body.get()).unwrap(),
        )]);
        resolve(&mut resolved, &parts);
        assert_eq!(resolved["decisions"]["query"]["verdict"], "allow");
        // An object that merely has the key among others is data, not a reference.
        let data = serde_json::json!({"$shared": "x", "other": 1});
        let mut same = data.clone();
        resolve(&mut same, &parts);
        assert_eq!(same, data);
    }
}
