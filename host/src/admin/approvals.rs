//! `/v1/approvals`: requests waiting for a person. Any authenticated
//! caller may list them and see one; deciding follows the rules in
//! [`crate::approval`] (approver groups, never one's own request, a reason
//! to deny).
//!
//! - `GET /v1/approvals`
//! - `GET /v1/approvals/ID`
//! - `POST /v1/approvals/ID/approve` with an optional `{"reason": "..."}`
//! - `POST /v1/approvals/ID/deny` with `{"reason": "..."}`

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{AdminResponse, AdminState, error, json_reply};
use crate::approval::ApprovalError;
use crate::identity::Principal;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    reason: Option<String>,
}

pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    caller: &Principal,
) -> AdminResponse {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path
        .trim_start_matches("/v1/approvals")
        .trim_start_matches('/');
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (req.method().clone(), parts.as_slice()) {
        (Method::GET, []) => {
            json_reply(StatusCode::OK, json!({"approvals": state.approvals.list()}))
        }
        (Method::GET, [id]) => match state.approvals.get(id) {
            Some(a) => json_reply(StatusCode::OK, json!(a)),
            None => error(
                StatusCode::NOT_FOUND,
                "not_found",
                &ApprovalError::NotFound(id.to_string()).to_string(),
            ),
        },
        (Method::POST, [id, action @ ("approve" | "deny")]) => {
            let id = id.to_string();
            let approve = *action == "approve";
            let decision = match read_decision(req).await {
                Ok(d) => d,
                Err(resp) => return resp,
            };
            match state
                .approvals
                .decide(&id, caller, approve, decision.reason)
            {
                Ok(info) => json_reply(
                    StatusCode::OK,
                    json!({"id": info.id, "decision": if approve { "approved" } else { "denied" }, "by": caller.subject}),
                ),
                Err(e) => {
                    let status = match e {
                        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
                        ApprovalError::NotApprover(..) | ApprovalError::OwnRequest(_) => {
                            StatusCode::FORBIDDEN
                        }
                        ApprovalError::ReasonRequired => StatusCode::BAD_REQUEST,
                    };
                    tracing::info!(approval = %id, by = %caller.subject, error = %e, "approval decision refused");
                    error(status, "approval", &e.to_string())
                }
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "approvals: GET /v1/approvals[/ID], POST /v1/approvals/ID/approve|deny",
        ),
    }
}

async fn read_decision(req: Request<Incoming>) -> Result<Decision, AdminResponse> {
    let body = Limited::new(req.into_body(), 16 * 1024)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the body: {e}"),
            )
        })?
        .to_bytes();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("expected {{\"reason\": \"...\"}}: {e}"),
        )
    })
}
