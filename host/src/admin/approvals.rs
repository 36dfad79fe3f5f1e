//! `/v1/approvals`: requests held for a person, on any replica sharing the
//! store. A caller sees the approvals it may decide (one of their approver
//! groups), its own requests, and, in `admin.admin_groups` or
//! `admin.auditor_groups`, all of them; others are not found. Deciding
//! follows the rules in [`crate::approval::rules`] (approver groups, never
//! one's own request, distinct approvers, a reason to deny, final).
//!
//! - `GET /v1/approvals[?status=waiting|approved|denied|timed_out|abandoned|all&limit=N]`
//!   (default: waiting, newest first, 100)
//! - `GET /v1/approvals/ID`: the record with every decision
//! - `POST /v1/approvals/ID/approve` with an optional `{"reason": "..."}`
//! - `POST /v1/approvals/ID/deny` with `{"reason": "..."}`
//!
//! Refusals: 404 `not_found`, 403 `not_approver` / `own_request`, 409
//! `already_decided` / `already_voted` / `expired`, 422 `reason_required`,
//! 503 `store_unavailable`.

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{AdminResponse, AdminState, error, json_reply};
use crate::approval::{ApprovalError, ApprovalRecord, ApprovalStatus, rules};
use crate::identity::Principal;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

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
    let readers: Vec<String> = state
        .admin_groups
        .iter()
        .chain(state.auditor_groups.iter())
        .cloned()
        .collect();
    match (req.method().clone(), parts.as_slice()) {
        (Method::GET, []) => {
            let (status, limit) = match list_query(req.uri().query().unwrap_or("")) {
                Ok(q) => q,
                Err(m) => return error(StatusCode::BAD_REQUEST, "bad_request", &m),
            };
            let visible = |r: &ApprovalRecord| may_see(&readers, caller, r);
            match state.approvals.list(status, limit, visible).await {
                Ok(list) => json_reply(StatusCode::OK, json!({"approvals": list})),
                Err(e) => refused(e),
            }
        }
        (Method::GET, [id]) => match state.approvals.get(id).await {
            Ok(Some(a)) if may_see(&readers, caller, &a) => json_reply(StatusCode::OK, json!(a)),
            Ok(_) => refused(ApprovalError::NotFound(id.to_string())),
            Err(e) => refused(e),
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
                .await
            {
                Ok(record) => json_reply(
                    StatusCode::OK,
                    json!({
                        "id": record.info.id,
                        "decision": if approve { "approve" } else { "deny" },
                        "by": caller.subject,
                        "status": record.status,
                        "approvals": record.decisions.iter().filter(|v| v.decision == crate::approval::Choice::Approve).count(),
                        "min_approvals": record.min_approvals,
                    }),
                ),
                Err(e) => {
                    tracing::info!(approval = %id, by = %caller.subject, error = %e, "approval decision refused");
                    refused(e)
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

fn may_see(readers: &[String], caller: &Principal, r: &ApprovalRecord) -> bool {
    rules::may_see(caller, &r.info.requester, &r.info.approver_groups, readers)
}

fn refused(e: ApprovalError) -> AdminResponse {
    if let ApprovalError::Store(_) | ApprovalError::Setup(_) = &e {
        return super::store_unavailable("store_unavailable", "the approval request", &e);
    }
    let (status, code) = match &e {
        ApprovalError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        ApprovalError::NotApprover(..) => (StatusCode::FORBIDDEN, "not_approver"),
        ApprovalError::OwnRequest(_) => (StatusCode::FORBIDDEN, "own_request"),
        ApprovalError::AlreadyDecided { .. } => (StatusCode::CONFLICT, "already_decided"),
        ApprovalError::AlreadyVoted(_) => (StatusCode::CONFLICT, "already_voted"),
        ApprovalError::Expired(_) => (StatusCode::CONFLICT, "expired"),
        ApprovalError::ReasonRequired => (StatusCode::UNPROCESSABLE_ENTITY, "reason_required"),
        ApprovalError::Store(_) | ApprovalError::Setup(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        }
    };
    error(status, code, &e.to_string())
}

/// `status` (one status or `all`; default `waiting`) and `limit` (1..=1000).
fn list_query(query: &str) -> Result<(Option<ApprovalStatus>, i64), String> {
    let mut status = Some(ApprovalStatus::Waiting);
    let mut limit = DEFAULT_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "status" if v == "all" => status = None,
            "status" => {
                status = Some(ApprovalStatus::parse(v).ok_or_else(|| {
                    format!(
                        "status: expected all, {}; got {v:?}",
                        ApprovalStatus::ALL.map(ApprovalStatus::as_str).join(", ")
                    )
                })?)
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| format!("limit: expected 1 to {MAX_LIMIT}, got {v:?}"))?
            }
            other => return Err(format!("unknown parameter {other:?} (status, limit)")),
        }
    }
    Ok((status, limit))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_are_read_and_checked() {
        assert_eq!(
            list_query("").unwrap(),
            (Some(ApprovalStatus::Waiting), DEFAULT_LIMIT)
        );
        assert_eq!(list_query("status=all&limit=5").unwrap(), (None, 5));
        assert_eq!(
            list_query("status=timed_out").unwrap().0,
            Some(ApprovalStatus::TimedOut)
        );
        assert!(
            list_query("status=pending")
                .unwrap_err()
                .contains("timed_out")
        );
        assert!(list_query("limit=0").is_err());
        assert!(list_query("who=me").is_err());
    }
}
