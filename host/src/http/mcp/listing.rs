//! Resources, resource templates and prompts as the `mcp-listing` hook sees
//! them: the entries of a `resources/list`, `resources/templates/list` or
//! `prompts/list` result (filtered like `tools/list`), and the one entry a
//! `resources/read`, `resources/subscribe` or `prompts/get` names, which is
//! refused when a policy hides it, so a caller cannot read what it cannot
//! see. What the server listed is kept per connection, so a read's entry
//! carries the name and description the policy saw in the listing.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use serde_json::Value;

use crate::policy::bindings::mcp::McpRequest;
use crate::policy::bindings::mcp_listing::{Entry, EntryKind};
use crate::policy::bindings::types as wit;
use crate::policy::chain::Hidden;

/// Entries kept per connection; past this, new ones are not remembered.
const MAX_ENTRIES: usize = 4096;

/// A listing method: the kind of its entries and the result's array key.
pub fn listing_of(method: &str) -> Option<(EntryKind, &'static str)> {
    match method {
        "resources/list" => Some((EntryKind::Resource, "resources")),
        "resources/templates/list" => Some((EntryKind::ResourceTemplate, "resourceTemplates")),
        "prompts/list" => Some((EntryKind::Prompt, "prompts")),
        _ => None,
    }
}

/// The field that identifies an entry of `kind`.
fn id_field(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Resource => "uri",
        EntryKind::ResourceTemplate => "uriTemplate",
        EntryKind::Prompt => "name",
    }
}

fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Resource => "resource",
        EntryKind::ResourceTemplate => "resource template",
        EntryKind::Prompt => "prompt",
    }
}

/// One listed item as an entry; `None` without its id.
fn entry(kind: EntryKind, item: &Value) -> Option<Entry> {
    let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Entry {
        kind,
        id: text(id_field(kind))?,
        name: text("name").unwrap_or_default(),
        description: text("description").unwrap_or_default(),
        mime_type: text("mimeType"),
    })
}

/// The entries of a listing result (`key` is its array).
pub fn entries(kind: EntryKind, result: &Value, key: &str) -> Vec<Entry> {
    result
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|i| entry(kind, i)).collect())
        .unwrap_or_default()
}

/// Drops the entries `filter` hides from a listing result; returns their ids.
pub fn hide(result: &mut Value, kind: EntryKind, key: &str, filter: &Hidden) -> Vec<String> {
    let Some(items) = result.get_mut(key).and_then(Value::as_array_mut) else {
        return vec![];
    };
    let field = id_field(kind);
    let mut hidden = vec![];
    items.retain(|item| {
        // An item without an id cannot be decided on: it is not shown.
        let Some(id) = item.get(field).and_then(Value::as_str) else {
            hidden.push(format!("(an entry without {field})"));
            return false;
        };
        let hide = match filter {
            Hidden::Names { names } => names.contains(id),
            Hidden::All { .. } => true,
        };
        if hide {
            hidden.push(id.to_string());
        }
        !hide
    });
    hidden
}

/// What the server listed on the connection, by kind and id.
#[derive(Default)]
pub struct EntryCatalog {
    entries: RwLock<HashMap<(u8, String), Entry>>,
}

fn slot(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Resource => 0,
        EntryKind::ResourceTemplate => 1,
        EntryKind::Prompt => 2,
    }
}

impl EntryCatalog {
    pub fn learn(&self, listed: &[Entry]) {
        let mut known = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        for e in listed {
            let key = (slot(e.kind), e.id.clone());
            if known.len() < MAX_ENTRIES || known.contains_key(&key) {
                known.insert(key, e.clone());
            }
        }
    }

    fn get(&self, kind: EntryKind, id: &str) -> Option<Entry> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(slot(kind), id.to_string()))
            .cloned()
    }
}

/// The entry a request names (`resources/read` and `resources/subscribe`:
/// a resource; `prompts/get`: a prompt), as last listed when it was.
pub fn named_by(request: &McpRequest, catalog: &EntryCatalog) -> Option<Entry> {
    let kind = match request.method.as_str() {
        "resources/read" | "resources/subscribe" => EntryKind::Resource,
        "prompts/get" => EntryKind::Prompt,
        _ => return None,
    };
    let id = request.target.clone()?;
    Some(catalog.get(kind, &id).unwrap_or(Entry {
        kind,
        name: if kind == EntryKind::Prompt {
            id.clone()
        } else {
            String::new()
        },
        id,
        description: String::new(),
        mime_type: None,
    }))
}

/// The deny a policy's `filter` amounts to for a request naming a hidden
/// entry.
pub fn hidden_decision(entry: &Entry) -> wit::Decision {
    wit::Decision {
        verdict: wit::Verdict::Deny(format!(
            "the {} {} is hidden from you",
            kind_name(entry.kind),
            entry.id
        )),
        annotations: vec![("rule".into(), "mcp-listing.filter".into())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    #[test]
    fn listings_are_read_and_filtered_by_id() {
        let mut result = json!({"resources": [
            {"uri": "config://app", "name": "app", "mimeType": "text/plain"},
            {"uri": "config://secrets", "name": "secrets", "description": "keys"},
            {"name": "no uri"},
        ], "nextCursor": "2"});
        let listed = entries(EntryKind::Resource, &result, "resources");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].mime_type.as_deref(), Some("text/plain"));
        assert_eq!(listed[1].description, "keys");
        let filter = Hidden::Names {
            names: BTreeSet::from(["config://secrets".to_string()]),
        };
        let hidden = hide(&mut result, EntryKind::Resource, "resources", &filter);
        assert_eq!(hidden, ["config://secrets", "(an entry without uri)"]);
        assert_eq!(
            result,
            json!({"resources": [{"uri": "config://app", "name": "app", "mimeType": "text/plain"}], "nextCursor": "2"})
        );
        let all = Hidden::All {
            policy: Arc::from("p"),
            reason: "not loaded".into(),
        };
        let mut prompts = json!({"prompts": [{"name": "greeting"}]});
        assert_eq!(
            hide(&mut prompts, EntryKind::Prompt, "prompts", &all),
            vec!["greeting".to_string()]
        );
        assert_eq!(prompts, json!({"prompts": []}));
        assert_eq!(
            listing_of("resources/templates/list"),
            Some((EntryKind::ResourceTemplate, "resourceTemplates"))
        );
        assert_eq!(listing_of("tools/list"), None);
    }

    fn request(method: &str, target: Option<&str>) -> McpRequest {
        McpRequest {
            method: method.into(),
            tool: None,
            tool_info: None,
            target: target.map(str::to_string),
            arguments: None,
            mcp_session_id: None,
        }
    }

    #[test]
    fn a_read_names_its_entry_as_it_was_listed() {
        let catalog = EntryCatalog::default();
        let unlisted = named_by(&request("resources/read", Some("config://x")), &catalog).unwrap();
        assert_eq!(
            (unlisted.id.as_str(), unlisted.name.as_str()),
            ("config://x", "")
        );
        catalog.learn(&entries(
            EntryKind::Resource,
            &json!({"resources": [{"uri": "config://x", "name": "x", "description": "d"}]}),
            "resources",
        ));
        let listed = named_by(
            &request("resources/subscribe", Some("config://x")),
            &catalog,
        )
        .unwrap();
        assert_eq!(
            (listed.name.as_str(), listed.description.as_str()),
            ("x", "d")
        );
        let prompt = named_by(&request("prompts/get", Some("greeting")), &catalog).unwrap();
        assert_eq!(
            (prompt.kind, prompt.name.as_str()),
            (EntryKind::Prompt, "greeting")
        );
        assert!(named_by(&request("resources/read", None), &catalog).is_none());
        assert!(named_by(&request("tools/call", Some("x")), &catalog).is_none());
        let d = hidden_decision(&prompt);
        assert!(
            matches!(&d.verdict, wit::Verdict::Deny(r) if r == "the prompt greeting is hidden from you"),
            "{:?}",
            d.verdict
        );
    }
}
