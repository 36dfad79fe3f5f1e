//! JSON-RPC 2.0 messages as MCP carries them: one message per POST body or
//! per SSE event. Parsing never panics and says what was wrong; batches are
//! refused (MCP 2025-06-18 dropped them, and a batch would need one decision
//! per member before any of it may pass).

use serde_json::{Map, Value, json};

/// JSON-RPC's own error codes, and the one Gatehouse uses for refusals.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// In the implementation-defined server range: the gateway refused or
    /// could not check the message.
    pub const GATEWAY_REFUSED: i64 = -32001;
}

/// One JSON-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    Response {
        id: Value,
        result: Value,
    },
    Error {
        id: Value,
        error: Value,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonRpcError {
    #[error("the message is not JSON: {0}")]
    NotJson(String),
    #[error("JSON-RPC batches are not accepted by this gateway; send one message per request")]
    Batch,
    #[error("not a JSON-RPC 2.0 message: {0}")]
    Invalid(&'static str),
}

impl JsonRpcError {
    /// The JSON-RPC error code that reports this problem.
    pub fn code(&self) -> i64 {
        match self {
            JsonRpcError::NotJson(_) => code::PARSE_ERROR,
            JsonRpcError::Batch | JsonRpcError::Invalid(_) => code::INVALID_REQUEST,
        }
    }
}

impl Message {
    pub fn parse(bytes: &[u8]) -> Result<Message, JsonRpcError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| JsonRpcError::NotJson(e.to_string()))?;
        Message::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Message, JsonRpcError> {
        let mut obj = match value {
            Value::Object(o) => o,
            Value::Array(_) => return Err(JsonRpcError::Batch),
            _ => return Err(JsonRpcError::Invalid("a message is a JSON object")),
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(JsonRpcError::Invalid("\"jsonrpc\" must be \"2.0\""));
        }
        let id = obj.remove("id");
        if let Some(id) = &id
            && !(id.is_string() || id.is_number() || id.is_null())
        {
            return Err(JsonRpcError::Invalid("\"id\" must be a string or a number"));
        }
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(JsonRpcError::Invalid("\"method\" must be a string"));
            };
            let params = obj.remove("params");
            if let Some(p) = &params
                && !(p.is_object() || p.is_array())
            {
                return Err(JsonRpcError::Invalid(
                    "\"params\" must be an object or an array",
                ));
            }
            return Ok(match id {
                Some(id) => Message::Request { id, method, params },
                None => Message::Notification { method, params },
            });
        }
        let id = id.ok_or(JsonRpcError::Invalid("a response needs an \"id\""))?;
        match (obj.remove("result"), obj.remove("error")) {
            (Some(result), None) => Ok(Message::Response { id, result }),
            (None, Some(error)) if error.is_object() => Ok(Message::Error { id, error }),
            (None, Some(_)) => Err(JsonRpcError::Invalid("\"error\" must be an object")),
            _ => Err(JsonRpcError::Invalid(
                "a message needs \"method\", or exactly one of \"result\" and \"error\"",
            )),
        }
    }

    /// The id of a request or a response.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Message::Request { id, .. }
            | Message::Response { id, .. }
            | Message::Error { id, .. } => Some(id),
            Message::Notification { .. } => None,
        }
    }

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("jsonrpc".into(), json!("2.0"));
        match self {
            Message::Request { id, method, params } => {
                obj.insert("id".into(), id.clone());
                obj.insert("method".into(), json!(method));
                if let Some(p) = params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Notification { method, params } => {
                obj.insert("method".into(), json!(method));
                if let Some(p) = params {
                    obj.insert("params".into(), p.clone());
                }
            }
            Message::Response { id, result } => {
                obj.insert("id".into(), id.clone());
                obj.insert("result".into(), result.clone());
            }
            Message::Error { id, error } => {
                obj.insert("id".into(), id.clone());
                obj.insert("error".into(), error.clone());
            }
        }
        Value::Object(obj)
    }
}

/// A JSON-RPC error response for `id` (null when the id is unknown).
pub fn error_response(id: Value, code: i64, message: &str, data: Option<Value>) -> Message {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = data {
        error["data"] = d;
    }
    Message::Error { id, error }
}

/// A request id as a map key (`1` and `"1"` are different ids).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn requests_notifications_and_responses() {
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert_eq!(
            m,
            Message::Request {
                id: json!(1),
                method: "tools/list".into(),
                params: None
            }
        );
        let m =
            Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification { .. }));
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert_eq!(m.id(), Some(&json!("a")));
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"x"}}"#)
            .unwrap();
        assert!(matches!(m, Message::Error { .. }));
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let e = Message::parse(b"{\"jsonrpc\":\"2.0\",").unwrap_err();
        assert_eq!(e.code(), code::PARSE_ERROR);
        let e = Message::parse(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}]"#).unwrap_err();
        assert_eq!(e, JsonRpcError::Batch);
        let e = Message::parse(br#"{"id":1,"method":"a"}"#).unwrap_err();
        assert!(e.to_string().contains("2.0"), "{e}");
        let e = Message::parse(br#"{"jsonrpc":"2.0","id":{},"method":"a"}"#).unwrap_err();
        assert!(e.to_string().contains("id"), "{e}");
        let e = Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#).unwrap_err();
        assert!(e.to_string().contains("params"), "{e}");
        let e = Message::parse(br#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#).unwrap_err();
        assert_eq!(e.code(), code::INVALID_REQUEST);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("jsonrpc".to_string()),
                        Just("id".to_string()),
                        Just("method".to_string()),
                        Just("params".to_string()),
                        Just("result".to_string()),
                        Just("error".to_string()),
                        "[a-z]{1,4}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::parse(&bytes);
        }

        /// Whatever parses re-serializes to a message that parses the same.
        #[test]
        fn parsed_messages_round_trip(mut v in arb_json()) {
            if let Value::Object(o) = &mut v { o.insert("jsonrpc".into(), json!("2.0")); }
            if let Ok(m) = Message::from_value(v) {
                prop_assert_eq!(Message::from_value(m.to_value()), Ok(m));
            }
        }
    }
}
