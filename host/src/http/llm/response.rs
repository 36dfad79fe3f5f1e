//! What a model answered, read from whole JSON responses: the generated
//! text, tool calls, usage and model, for the policy and the audit record.

use serde::Serialize;
use serde_json::Value;

use super::request::{Operation, ToolCall};
use crate::policy::bindings::llm as wit;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Completion {
    pub model: String,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    pub usage: Option<Usage>,
}

impl Completion {
    /// The answer as recorded: model, text, tool calls, usage and latency,
    /// plus `extra` fields of the way it came.
    pub fn detail(&self, cx: &crate::http::adapter::ResponseCx, extra: Value) -> Value {
        let mut d = serde_json::json!({
            "model": self.model,
            "text": self.text,
            "tool_calls": self.tool_calls,
            "usage": self.usage,
            "latency_ms": cx.started.elapsed().as_millis() as u64,
        });
        if let (Some(d), Value::Object(extra)) = (d.as_object_mut(), extra) {
            d.extend(extra);
        }
        d
    }

    pub fn to_wit(&self) -> wit::LlmResponse {
        wit::LlmResponse {
            model: self.model.clone(),
            text: self.text.clone(),
            tool_calls: self.tool_calls.iter().map(ToolCall::to_wit).collect(),
            usage: self.usage.as_ref().map(|u| wit::Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
            }),
        }
    }
}

/// Usage in either naming (`prompt_tokens`/`completion_tokens` or
/// `input_tokens`/`output_tokens`).
pub fn usage(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let input = n("input_tokens").or_else(|| n("prompt_tokens"));
    let output = n("output_tokens").or_else(|| n("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

/// Reads a whole response of `op`. Fields that are missing read as empty:
/// the shape was checked to be a JSON object, and providers add fields.
pub fn parse(op: Operation, doc: &Value) -> Completion {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut c = Completion {
        model: s(doc, "model"),
        usage: doc.get("usage").and_then(usage),
        ..Default::default()
    };
    let mut texts = Vec::new();
    let items = |k: &str| {
        doc.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    match op {
        Operation::Chat => {
            for choice in items("choices") {
                let Some(m) = choice.get("message") else {
                    continue;
                };
                if let Some(t) = m.get("content").and_then(Value::as_str) {
                    texts.push(t.to_string());
                }
                if let Some(t) = m.get("refusal").and_then(Value::as_str) {
                    texts.push(t.to_string());
                }
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let f = call.get("function").cloned().unwrap_or(Value::Null);
                    c.tool_calls.push(ToolCall {
                        id: s(call, "id"),
                        name: s(&f, "name"),
                        arguments: s(&f, "arguments"),
                    });
                }
            }
        }
        Operation::Responses => {
            for item in items("output") {
                match item.get("type").and_then(Value::as_str) {
                    Some("message") => {
                        for part in item
                            .get("content")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(t) = part
                                .get("text")
                                .or_else(|| part.get("refusal"))
                                .and_then(Value::as_str)
                            {
                                texts.push(t.to_string());
                            }
                        }
                    }
                    Some("function_call") => c.tool_calls.push(ToolCall {
                        id: s(&item, "call_id"),
                        name: s(&item, "name"),
                        arguments: s(&item, "arguments"),
                    }),
                    _ => {}
                }
            }
        }
        Operation::Embeddings => {}
        Operation::Messages => {
            for block in items("content") {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => texts.push(s(&block, "text")),
                    Some("tool_use") => c.tool_calls.push(ToolCall {
                        id: s(&block, "id"),
                        name: s(&block, "name"),
                        arguments: block.get("input").map(Value::to_string).unwrap_or_default(),
                    }),
                    _ => {}
                }
            }
        }
    }
    c.text = texts.join("\n");
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_and_anthropic_answers() {
        let c = parse(
            Operation::Chat,
            &json!({"model":"gpt","choices":[{"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}),
        );
        assert_eq!(c.text, "hi");
        assert_eq!(c.tool_calls[0].name, "f");
        assert_eq!(
            c.usage,
            Some(Usage {
                input_tokens: 3,
                output_tokens: 4
            })
        );
        let c = parse(
            Operation::Messages,
            &json!({"model":"claude","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t","name":"n","input":{"x":1}}],"usage":{"input_tokens":1,"output_tokens":2}}),
        );
        assert_eq!(c.text, "a");
        assert_eq!(c.tool_calls[0].arguments, "{\"x\":1}");
        let c = parse(
            Operation::Responses,
            &json!({"model":"m","output":[{"type":"message","content":[{"type":"output_text","text":"r"}]},{"type":"function_call","call_id":"c","name":"g","arguments":"{}"}],"usage":{"input_tokens":5,"output_tokens":6}}),
        );
        assert_eq!(c.text, "r");
        assert_eq!(c.tool_calls[0].name, "g");
        assert!(parse(Operation::Chat, &json!([1])).text.is_empty());
    }
}
