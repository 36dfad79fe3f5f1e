//! Errors in the providers' own shapes, so an SDK raises its usual API
//! error with Gatehouse's message: OpenAI's `{"error": {message, type,
//! param, code}}` and Anthropic's `{"type": "error", "error": {type,
//! message}}`, in responses and as stream events.

use http::StatusCode;
use serde_json::{Value, json};

use super::request::{Operation, Provider};
use crate::http::errors::ProxyError;

/// The body of a refused request.
pub fn error_body(provider: Provider, err: &ProxyError, request_id: &str) -> Value {
    let status = err.status();
    let message = err.to_string();
    // What Gatehouse's own body says (policy, reason, approval id), kept
    // alongside for clients that look.
    let gatehouse = err.body_json(request_id)["error"].clone();
    match provider {
        Provider::OpenAi => json!({
            "error": {
                "message": message,
                "type": openai_type(status),
                "param": null,
                "code": err.code(),
                "gatehouse": gatehouse,
            }
        }),
        Provider::Anthropic => json!({
            "type": "error",
            "error": {
                "type": anthropic_type(status),
                "message": message,
            },
            "request_id": request_id,
            "gatehouse": gatehouse,
        }),
    }
}

fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        400 | 404 | 413 | 422 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error event that ends a stream: what each provider's SDK raises as an
/// API error mid-stream. `sequence` numbers a responses event.
pub fn stream_error_event(
    provider: Provider,
    op: Operation,
    reason: &str,
    sequence: Option<u64>,
) -> Vec<u8> {
    let (event, data) = match (provider, op) {
        (Provider::Anthropic, _) => (
            Some("error"),
            json!({"type": "error", "error": {"type": "api_error", "message": reason}}),
        ),
        (Provider::OpenAi, Operation::Responses) => (
            Some("error"),
            json!({"type": "error", "code": "gatehouse_stream_stopped", "message": reason, "param": null,
                   "sequence_number": sequence.unwrap_or(0),
                   "error": {"message": reason, "type": "server_error", "code": "gatehouse_stream_stopped"}}),
        ),
        (Provider::OpenAi, _) => (
            None,
            json!({"error": {"message": reason, "type": "server_error", "param": null, "code": "gatehouse_stream_stopped"}}),
        ),
    };
    let mut out = Vec::new();
    crate::http::sse::encode_event(
        &crate::http::sse::Event::named(event.map(str::to_string), data.to_string()),
        &mut out,
    );
    out
}
