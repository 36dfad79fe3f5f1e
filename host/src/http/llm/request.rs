//! The policy's view of an LLM request: provider, operation, model, the
//! conversation (role, text, tool calls) and the tools offered, read from
//! OpenAI chat completions, responses and embeddings bodies and Anthropic
//! messages bodies.

use serde::Serialize;
use serde_json::Value;

use crate::policy::bindings::llm as wit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Chat,
    Responses,
    Embeddings,
    Messages,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Responses => "responses",
            Operation::Embeddings => "embeddings",
            Operation::Messages => "messages",
        }
    }

    /// The operation a request path names, if any. Base paths (`/v1`,
    /// `/openai/deployments/x`) do not matter: the last segments do.
    pub fn from_path(path: &str) -> Option<Operation> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Operation::Chat)
        } else if path.ends_with("/responses") {
            Some(Operation::Responses)
        } else if path.ends_with("/embeddings") {
            Some(Operation::Embeddings)
        } else if path.ends_with("/messages") && !path.contains("/threads/") {
            Some(Operation::Messages)
        } else {
            None
        }
    }

    pub fn provider(self) -> Provider {
        match self {
            Operation::Messages => Provider::Anthropic,
            _ => Provider::OpenAi,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

/// A decoded request.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub provider: Provider,
    pub operation: Operation,
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<String>,
    pub stream: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    #[error("the request body must be a JSON object")]
    NotObject,
    #[error("`model` must be a string")]
    Model,
    #[error("`{0}` has an unexpected shape: {1}")]
    Shape(&'static str, String),
}

/// Reads `body` as a request for `op`.
pub fn parse(op: Operation, body: &[u8]) -> Result<(Conversation, Value), RequestError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
    let conv = from_doc(op, &doc)?;
    Ok((conv, doc))
}

/// Reads an already parsed request for `op`.
pub fn from_doc(op: Operation, doc: &Value) -> Result<Conversation, RequestError> {
    let obj = doc.as_object().ok_or(RequestError::NotObject)?;
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        _ => return Err(RequestError::Model),
    };
    let stream = obj.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let mut messages = Vec::new();
    match op {
        Operation::Chat => {
            for m in array(obj.get("messages"), "messages")? {
                messages.push(chat_message(m)?);
            }
        }
        Operation::Responses => {
            if let Some(i) = obj.get("instructions").and_then(Value::as_str) {
                messages.push(text_message("system", i));
            }
            match obj.get("input") {
                Some(Value::String(s)) => messages.push(text_message("user", s)),
                Some(Value::Array(items)) => {
                    for item in items {
                        messages.push(responses_item(item)?);
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => return Err(RequestError::Shape("input", kind(other))),
            }
        }
        Operation::Embeddings => match obj.get("input") {
            Some(Value::String(s)) => messages.push(text_message("input", s)),
            Some(Value::Array(items)) => {
                for item in items {
                    // Token arrays carry no text a policy can read.
                    if let Some(s) = item.as_str() {
                        messages.push(text_message("input", s));
                    }
                }
            }
            _ => return Err(RequestError::Shape("input", "missing".into())),
        },
        Operation::Messages => {
            match obj.get("system") {
                Some(Value::String(s)) => messages.push(text_message("system", s)),
                Some(Value::Array(blocks)) => {
                    let (text, _) = anthropic_blocks(blocks)?;
                    messages.push(text_message("system", &text));
                }
                _ => {}
            }
            for m in array(obj.get("messages"), "messages")? {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                let (text, tool_calls) = match m.get("content") {
                    Some(Value::String(s)) => (s.clone(), vec![]),
                    Some(Value::Array(blocks)) => anthropic_blocks(blocks)?,
                    _ => return Err(RequestError::Shape("messages[].content", "missing".into())),
                };
                messages.push(Message {
                    role: role.to_string(),
                    text,
                    tool_calls,
                });
            }
        }
    }
    let tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .map(|ts| ts.iter().filter_map(tool_name).collect())
        .unwrap_or_default();
    Ok(Conversation {
        provider: op.provider(),
        operation: op,
        model,
        messages,
        tools,
        stream,
    })
}

impl Conversation {
    pub fn to_wit(&self) -> wit::LlmRequest {
        wit::LlmRequest {
            provider: self.provider.name().into(),
            operation: self.operation.name().into(),
            model: self.model.clone(),
            messages: self
                .messages
                .iter()
                .map(|m| wit::Message {
                    role: m.role.clone(),
                    text: m.text.clone(),
                    tool_calls: m.tool_calls.iter().map(ToolCall::to_wit).collect(),
                })
                .collect(),
            tools: self.tools.clone(),
            stream: self.stream,
        }
    }
}

impl ToolCall {
    pub fn to_wit(&self) -> wit::ToolCall {
        wit::ToolCall {
            id: self.id.clone(),
            name: self.name.clone(),
            arguments: self.arguments.clone(),
        }
    }
}

fn array<'a>(v: Option<&'a Value>, field: &'static str) -> Result<&'a Vec<Value>, RequestError> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(RequestError::Shape(field, kind(other))),
        None => Err(RequestError::Shape(field, "missing".into())),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .into()
}

fn text_message(role: &str, text: &str) -> Message {
    Message {
        role: role.into(),
        text: text.into(),
        tool_calls: vec![],
    }
}

/// Text of OpenAI content: a string or parts (`text`, `input_text`,
/// `output_text`, `refusal`); images and audio carry no text.
fn openai_content(v: Option<&Value>) -> Result<String, RequestError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| {
                p.get("text")
                    .or_else(|| p.get("refusal"))
                    .and_then(Value::as_str)
            })
            .collect::<Vec<_>>()
            .join("\n")),
        Some(other) => Err(RequestError::Shape("content", kind(other))),
    }
}

fn chat_message(m: &Value) -> Result<Message, RequestError> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| RequestError::Shape("messages[].role", "missing".into()))?;
    let text = openai_content(m.get("content"))?;
    let tool_calls = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: str_at(c, &["id"]),
                    name: str_at(c, &["function", "name"]),
                    arguments: str_at(c, &["function", "arguments"]),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Message {
        role: role.into(),
        text,
        tool_calls,
    })
}

fn responses_item(item: &Value) -> Result<Message, RequestError> {
    match item.get("type").and_then(Value::as_str) {
        Some("function_call") => Ok(Message {
            role: "assistant".into(),
            text: String::new(),
            tool_calls: vec![ToolCall {
                id: str_at(item, &["call_id"]),
                name: str_at(item, &["name"]),
                arguments: str_at(item, &["arguments"]),
            }],
        }),
        Some("function_call_output") => Ok(text_message("tool", &str_at(item, &["output"]))),
        _ => Ok(Message {
            role: item
                .get("role")
                .and_then(Value::as_str)
                .unwrap_or("user")
                .into(),
            text: openai_content(item.get("content"))?,
            tool_calls: vec![],
        }),
    }
}

/// Text and tool uses of Anthropic content blocks.
fn anthropic_blocks(blocks: &[Value]) -> Result<(String, Vec<ToolCall>), RequestError> {
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push(str_at(b, &["text"])),
            Some("tool_use") => calls.push(ToolCall {
                id: str_at(b, &["id"]),
                name: str_at(b, &["name"]),
                arguments: b.get("input").map(Value::to_string).unwrap_or_default(),
            }),
            Some("tool_result") => match b.get("content") {
                Some(Value::String(s)) => text.push(s.clone()),
                Some(Value::Array(inner)) => text.push(anthropic_blocks(inner)?.0),
                _ => {}
            },
            _ => {}
        }
    }
    Ok((text.join("\n"), calls))
}

fn tool_name(t: &Value) -> Option<String> {
    t.get("function")
        .and_then(|f| f.get("name"))
        .or_else(|| t.get("name"))
        .or_else(|| t.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn str_at(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    cur.as_str().map(str::to_string).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn operations_by_path() {
        assert_eq!(
            Operation::from_path("/v1/chat/completions"),
            Some(Operation::Chat)
        );
        assert_eq!(
            Operation::from_path("/v1/responses/"),
            Some(Operation::Responses)
        );
        assert_eq!(
            Operation::from_path("/v1/embeddings"),
            Some(Operation::Embeddings)
        );
        assert_eq!(
            Operation::from_path("/v1/messages"),
            Some(Operation::Messages)
        );
        assert_eq!(Operation::from_path("/v1/threads/t/messages"), None);
        assert_eq!(Operation::from_path("/v1/models"), None);
    }

    #[test]
    fn chat_with_parts_and_tool_calls() {
        let body = br#"{"model":"gpt-4o","stream":true,
          "messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"}],
          "tools":[{"type":"function","function":{"name":"f"}}]}"#;
        let (c, _) = parse(Operation::Chat, body).unwrap();
        assert_eq!(c.model, "gpt-4o");
        assert!(c.stream);
        assert_eq!(c.messages.len(), 4);
        assert_eq!(c.messages[1].text, "hi");
        assert_eq!(c.messages[2].tool_calls[0].name, "f");
        assert_eq!(c.messages[3].text, "42");
        assert_eq!(c.tools, ["f"]);
    }

    #[test]
    fn responses_embeddings_and_messages() {
        let (c, _) = parse(
            Operation::Responses,
            br#"{"model":"m","instructions":"sys","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]},{"type":"function_call","call_id":"x","name":"t","arguments":"{}"}],"tools":[{"type":"function","name":"t"},{"type":"web_search"}]}"#,
        )
        .unwrap();
        assert_eq!(c.messages[0].role, "system");
        assert_eq!(c.messages[1].text, "q");
        assert_eq!(c.messages[2].tool_calls[0].name, "t");
        assert_eq!(c.tools, ["t", "web_search"]);
        let (c, _) = parse(Operation::Embeddings, br#"{"model":"e","input":["a","b"]}"#).unwrap();
        assert_eq!(c.messages.len(), 2);
        let (c, _) = parse(
            Operation::Messages,
            br#"{"model":"claude","max_tokens":5,"system":"s","messages":[{"role":"user","content":[{"type":"text","text":"hello"},{"type":"tool_result","tool_use_id":"u","content":"r"}]},{"role":"assistant","content":[{"type":"tool_use","id":"u","name":"n","input":{"k":1}}]}],"tools":[{"name":"n","input_schema":{}}]}"#,
        )
        .unwrap();
        assert_eq!(c.provider, Provider::Anthropic);
        assert_eq!(c.messages[1].text, "hello\nr");
        assert_eq!(c.messages[2].tool_calls[0].arguments, "{\"k\":1}");
        assert_eq!(c.tools, ["n"]);
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(matches!(
            parse(Operation::Chat, b"{"),
            Err(RequestError::NotJson(_))
        ));
        assert_eq!(
            parse(Operation::Chat, b"[]").unwrap_err(),
            RequestError::NotObject
        );
        assert_eq!(
            parse(Operation::Chat, br#"{"messages":[]}"#).unwrap_err(),
            RequestError::Model
        );
        assert!(matches!(
            parse(Operation::Chat, br#"{"model":"m","messages":"x"}"#),
            Err(RequestError::Shape("messages", _))
        ));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("model".to_string()),
                        Just("messages".to_string()),
                        Just("content".to_string()),
                        Just("role".to_string()),
                        Just("input".to_string()),
                        Just("type".to_string()),
                        Just("text".to_string()),
                        Just("tools".to_string()),
                        Just("system".to_string()),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON, and any bytes, give a conversation or an error; never a panic.
        #[test]
        fn never_panics(doc in arb_json(), bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for op in [Operation::Chat, Operation::Responses, Operation::Embeddings, Operation::Messages] {
                let _ = from_doc(op, &doc);
                let _ = parse(op, &bytes);
            }
        }
    }
}
