//! The tools an MCP server listed on this connection, kept from the
//! `tools/list` results that pass through (and from Gatehouse's own
//! lookups, [`super::lookup`]), so a `tools/call` can tell the policy what
//! the server said about the tool (destructive, read-only) without asking
//! the server again. One server per connection, so one catalog per
//! connection.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::policy::bindings::mcp::ToolInfo;

/// A listing bigger than this is not kept whole (the rest stays unknown).
const MAX_TOOLS: usize = 4096;

/// After a lookup on a session, calls of tools it did not find do not ask
/// again for this long: a client calling a tool the server does not have,
/// over and over, costs one lookup per quiet period, not one per call.
pub const LOOKUP_QUIET: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct ToolCatalog {
    tools: RwLock<HashMap<String, ToolInfo>>,
    /// When a lookup on each session (by its id, `""` for none) last came
    /// back without its tool.
    lookups: Mutex<HashMap<String, Instant>>,
}

impl ToolCatalog {
    /// Remembers every tool of a `tools/list` result (`{"tools": [...]}`),
    /// replacing what was known about each, and returns them in order.
    pub fn learn(&self, result: &Value) -> Vec<ToolInfo> {
        let listed: Vec<ToolInfo> = result
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| tools.iter().filter_map(tool_info).collect())
            .unwrap_or_default();
        let mut known = self.tools.write().unwrap_or_else(PoisonError::into_inner);
        for t in &listed {
            if known.len() < MAX_TOOLS || known.contains_key(&t.name) {
                known.insert(t.name.clone(), t.clone());
            }
        }
        listed
    }

    pub fn get(&self, name: &str) -> Option<ToolInfo> {
        self.tools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Whether a lookup on `session` may start now (none ended within
    /// [`LOOKUP_QUIET`]).
    pub fn may_look_up(&self, session: &str, now: Instant) -> bool {
        let lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        lookups
            .get(session)
            .is_none_or(|at| now.duration_since(*at) >= LOOKUP_QUIET)
    }

    /// A lookup on `session` came back without its tool at `now`.
    pub fn looked_up(&self, session: &str, now: Instant) {
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if lookups.len() >= MAX_TOOLS {
            lookups.retain(|_, at| now.duration_since(*at) < LOOKUP_QUIET);
        }
        lookups.insert(session.to_string(), now);
    }
}

/// One listed tool. MCP's annotation defaults: `readOnlyHint` false, and
/// `destructiveHint` true, meaningful only when the tool is not read-only.
pub fn tool_info(tool: &Value) -> Option<ToolInfo> {
    let name = tool.get("name")?.as_str()?.to_string();
    let annotations = tool.get("annotations");
    let hint = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_bool)
    };
    let read_only = hint("readOnlyHint").unwrap_or(false);
    Some(ToolInfo {
        name,
        description: tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        destructive: !read_only && hint("destructiveHint").unwrap_or(true),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn annotations_follow_mcp_defaults() {
        let c = ToolCatalog::default();
        let listed = c.learn(&json!({"tools": [
            {"name": "echo", "annotations": {"readOnlyHint": true}},
            {"name": "delete", "description": "d", "annotations": {"destructiveHint": true}},
            {"name": "append", "annotations": {"destructiveHint": false}},
            {"name": "plain"},
            {"description": "no name"},
        ]}));
        assert_eq!(listed.len(), 4);
        let e = c.get("echo").unwrap();
        assert!(e.read_only && !e.destructive);
        assert!(c.get("delete").unwrap().destructive);
        assert!(!c.get("append").unwrap().destructive);
        assert!(c.get("plain").unwrap().destructive);
        assert!(c.get("missing").is_none());
        assert!(c.learn(&json!({"tools": "not a list"})).is_empty());
    }

    #[test]
    fn lookups_on_a_session_are_spaced() {
        let c = ToolCatalog::default();
        let t0 = Instant::now();
        assert!(c.may_look_up("s1", t0));
        c.looked_up("s1", t0);
        assert!(!c.may_look_up("s1", t0 + Duration::from_millis(500)));
        assert!(c.may_look_up("s2", t0));
        assert!(c.may_look_up("s1", t0 + LOOKUP_QUIET));
    }
}
