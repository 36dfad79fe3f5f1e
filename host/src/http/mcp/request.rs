//! A client's JSON-RPC message as the `mcp` hook sees it: the method, and
//! for `tools/call` the tool, its arguments and what the server listed about
//! it; for resources and prompts the URI or name.

use serde_json::Value;

use super::catalog::ToolCatalog;
use super::jsonrpc::Message;
use crate::policy::bindings::mcp::McpRequest;

/// Arguments shown to policies are cut here (the policy sees valid JSON or
/// nothing: a cut document is replaced by a note).
const MAX_ARGUMENTS_BYTES: usize = 1 << 20;

/// The policy's view of a client request; `None` for notifications and for
/// the client's answers to server requests, which the `mcp` hook does not see.
pub fn policy_request(
    message: &Message,
    session_id: Option<&str>,
    catalog: &ToolCatalog,
) -> Option<McpRequest> {
    let Message::Request { method, params, .. } = message else {
        return None;
    };
    let param = |key: &str| {
        params
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (tool, target, arguments) = match method.as_str() {
        "tools/call" => {
            let args = params.as_ref().and_then(|p| p.get("arguments"));
            (param("name"), None, args.map(json_text))
        }
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            (None, param("uri"), params.as_ref().map(json_text))
        }
        "prompts/get" => (None, param("name"), params.as_ref().map(json_text)),
        _ => (None, None, params.as_ref().map(json_text)),
    };
    Some(McpRequest {
        method: method.clone(),
        tool_info: tool.as_deref().and_then(|t| catalog.get(t)),
        tool,
        target,
        arguments,
        mcp_session_id: session_id.map(str::to_string),
    })
}

fn json_text(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= MAX_ARGUMENTS_BYTES {
        text
    } else {
        serde_json::json!({"gatehouse": "arguments over 1 MiB are not shown to policies"})
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Message {
        Message::from_value(v).unwrap()
    }

    #[test]
    fn tool_calls_name_the_tool_and_what_was_listed() {
        let catalog = ToolCatalog::default();
        catalog
            .learn(&json!({"tools": [{"name": "rm", "annotations": {"destructiveHint": true}}]}));
        let m = parse(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "rm", "arguments": {"path": "/"}}}));
        let r = policy_request(&m, Some("s"), &catalog).unwrap();
        assert_eq!(r.tool.as_deref(), Some("rm"));
        assert_eq!(r.arguments.as_deref(), Some(r#"{"path":"/"}"#));
        assert!(r.tool_info.unwrap().destructive);
        assert_eq!(r.mcp_session_id.as_deref(), Some("s"));
    }

    #[test]
    fn resources_and_prompts_have_a_target() {
        let catalog = ToolCatalog::default();
        let m = parse(
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read",
            "params": {"uri": "file:///etc/passwd"}}),
        );
        let r = policy_request(&m, None, &catalog).unwrap();
        assert_eq!(r.target.as_deref(), Some("file:///etc/passwd"));
        let m = parse(json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get",
            "params": {"name": "greeting", "arguments": {}}}));
        assert_eq!(
            policy_request(&m, None, &catalog)
                .unwrap()
                .target
                .as_deref(),
            Some("greeting")
        );
        let m = parse(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        assert!(policy_request(&m, None, &catalog).is_none());
    }
}
