//! Refusals as the API server writes them: a `v1` `Status` object with the
//! HTTP code and a `reason`, which kubectl prints as
//! `Error from server (Forbidden): ...`. The status codes and messages come
//! from `http/errors.rs`, so every protocol says the same thing.

use serde_json::{Value, json};

use crate::http::errors::ProxyError;

/// The `reason` the API server uses for an HTTP status (`metav1.StatusReason`).
pub fn reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The `Status` body for a refusal.
pub fn status_body(err: &ProxyError, request_id: &str) -> Value {
    let code = err.status().as_u16();
    // The JSON error body carries the details (policy, approval id); they go
    // into `details.causes` where kubectl's `-v` and API clients find them.
    let details = err.body_json(request_id);
    let causes: Vec<Value> = details["error"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "message" | "code"))
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    json!({"reason": k, "message": v})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("gatehouse: {err}"),
        "reason": reason(code),
        "details": {"causes": causes, "uid": request_id},
        "code": code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denial_is_a_forbidden_status() {
        let err = ProxyError::Denied {
            policy: "k8s-guard".into(),
            reason: "exec into kube-system is not allowed".into(),
        };
        let s = status_body(&err, "r1");
        assert_eq!(s["kind"], "Status");
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(s["code"], 403);
        assert_eq!(
            s["message"],
            "gatehouse: denied by policy k8s-guard: exec into kube-system is not allowed"
        );
        assert!(
            s["details"]["causes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["reason"] == "policy" && c["message"] == "k8s-guard")
        );
    }

    #[test]
    fn reasons_follow_the_api_server() {
        assert_eq!(reason(401), "Unauthorized");
        assert_eq!(reason(413), "RequestEntityTooLarge");
        assert_eq!(reason(502), "InternalError");
    }
}
