//! Every way a request can fail, mapped in one place to an HTTP response
//! with a JSON body a client can act on.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use super::ProxyBody;
use crate::audit::AuditUnavailable;
use crate::identity::AuthError;
use crate::policy::decision::ApprovalRequest;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Unauthenticated(AuthError),
    #[error("{0}")]
    Forbidden(AuthError),
    #[error("denied by policy {policy}: {reason}")]
    Denied { policy: String, reason: String },
    /// A policy asked for approval of a response, which cannot be held
    /// (requests are held; see `proxy/hold.rs`).
    #[error("approval required by policy {policy}: {}", approval.reason)]
    ApprovalRequired {
        policy: String,
        approval: ApprovalRequest,
    },
    #[error("approval {id} denied by {by}: {reason}")]
    ApprovalDenied {
        id: String,
        policy: String,
        by: String,
        reason: String,
    },
    /// A timeout is a denial: 403, not 504, so that clients and proxies do
    /// not retry it as a gateway failure (a retry would ask again).
    #[error("approval {id} was not given within {timeout_secs} s ({reason})")]
    ApprovalTimedOut {
        id: String,
        policy: String,
        reason: String,
        timeout_secs: u32,
    },
    /// Gatehouse ended the wait: shutting down, or the approval could not
    /// be recorded. The request was not sent; it may be retried.
    #[error("approval {id} was abandoned: {reason}")]
    ApprovalAbandoned { id: String, reason: String },
    #[error("{0}")]
    AuditUnavailable(AuditUnavailable),
    #[error("upstream unreachable: {0}")]
    Upstream(String),
    #[error("the upstream did not answer within {0} ms")]
    UpstreamTimeout(u64),
    #[error("{0}")]
    TooLarge(String),
    #[error("response could not be masked: {0}")]
    MaskFailed(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden(_)
            | ProxyError::Denied { .. }
            | ProxyError::ApprovalRequired { .. }
            | ProxyError::ApprovalDenied { .. }
            | ProxyError::ApprovalTimedOut { .. } => StatusCode::FORBIDDEN,
            ProxyError::AuditUnavailable(_) | ProxyError::ApprovalAbandoned { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream(_) | ProxyError::MaskFailed(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Denied { .. } => "policy_denied",
            ProxyError::ApprovalRequired { .. } => "approval_required",
            ProxyError::ApprovalDenied { .. } => "approval_denied",
            ProxyError::ApprovalTimedOut { .. } => "approval_timed_out",
            ProxyError::ApprovalAbandoned { .. } => "approval_abandoned",
            ProxyError::AuditUnavailable(_) => "audit_unavailable",
            ProxyError::Upstream(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::TooLarge(_) => "too_large",
            ProxyError::MaskFailed(_) => "mask_failed",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Internal(_) => "internal",
        }
    }

    /// The verdict label used in the audit record and metrics.
    pub fn verdict(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) | ProxyError::Forbidden(_) => "refused",
            ProxyError::Denied { .. }
            | ProxyError::ApprovalDenied { .. }
            | ProxyError::ApprovalTimedOut { .. } => "deny",
            ProxyError::ApprovalRequired { .. } => "require_approval",
            ProxyError::AuditUnavailable(_) => "rejected",
            _ => "error",
        }
    }

    pub fn body_json(&self, request_id: &str) -> serde_json::Value {
        let mut error = json!({
            "code": self.code(),
            "message": self.to_string(),
            "request_id": request_id,
        });
        match self {
            ProxyError::Denied { policy, reason } => {
                error["policy"] = json!(policy);
                error["reason"] = json!(reason);
            }
            ProxyError::ApprovalRequired { policy, approval } => {
                error["policy"] = json!(policy);
                error["reason"] = json!(approval.reason);
                error["approver_groups"] = json!(approval.approver_groups);
                error["note"] = json!(
                    "a policy asked for approval of the response, which cannot be held; the response was not sent"
                );
            }
            ProxyError::ApprovalDenied {
                id,
                policy,
                by,
                reason,
            } => {
                error["approval_id"] = json!(id);
                error["policy"] = json!(policy);
                error["by"] = json!(by);
                error["reason"] = json!(reason);
            }
            ProxyError::ApprovalTimedOut {
                id,
                policy,
                reason,
                timeout_secs,
            } => {
                error["approval_id"] = json!(id);
                error["policy"] = json!(policy);
                error["reason"] = json!(reason);
                error["timeout_secs"] = json!(timeout_secs);
            }
            ProxyError::ApprovalAbandoned { id, reason } => {
                error["approval_id"] = json!(id);
                error["reason"] = json!(reason);
            }
            _ => {}
        }
        json!({ "error": error })
    }

    pub fn into_response(&self, request_id: &str) -> Response<ProxyBody> {
        self.into_response_with(request_id, &self.body_json(request_id))
    }

    /// The response with `body` (a protocol adapter's shape of this error)
    /// instead of Gatehouse's own; status and headers stay the same.
    pub fn into_response_with(
        &self,
        request_id: &str,
        body: &serde_json::Value,
    ) -> Response<ProxyBody> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let mut resp = Response::new(
            Full::new(Bytes::from(body))
                .map_err(|e| match e {})
                .boxed_unsync(),
        );
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-gatehouse-request-id", v);
        }
        match self {
            ProxyError::Unauthenticated(_) => {
                h.insert(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gatehouse\""),
                );
            }
            ProxyError::AuditUnavailable(_) => {
                h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        resp
    }
}
