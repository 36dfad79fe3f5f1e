//! The approval phase of an exchange: a request a policy wants approved
//! waits here, its body unread past the inspected prefix, until people
//! decide. Approved, it goes on to the upstream; denied, timed out or
//! abandoned, it ends with the JSON error [`ProxyError`] maps. A client that
//! disconnects drops the exchange and with it the ticket, which withdraws
//! the request (its approval is recorded `abandoned`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Exchange, HttpProxy, mask_json};
use crate::approval::{ApprovalInfo, ApprovalOutcome, ApprovalStatus, Submitted};
use crate::http::errors::ProxyError;
use crate::http::event::SessionMeta;
use crate::identity::Principal;
use crate::mask::CompiledMasks;
use crate::policy::decision::ApprovalRequest;

/// How much of the body an approver is shown.
const SHOWN_BODY_BYTES: usize = 4096;

/// The request being held, as read so far.
pub(super) struct Held<'a> {
    pub session: &'a SessionMeta,
    pub principal: &'a Principal,
    pub parts: &'a http::request::Parts,
    /// The inspected prefix of the body.
    pub body: &'a [u8],
    /// Whether the prefix is the whole body.
    pub complete: bool,
    /// `http`, or the protocol adapter's name.
    pub protocol: &'static str,
    /// The adapter's (masked) view of the request, shown to approvers.
    pub detail: Option<Value>,
}

impl HttpProxy {
    /// Waits for the approval; `Ok` only when it was approved (or an
    /// earlier approval's grant covers it). Either way `ex.approval` says
    /// which approval the request went by.
    pub(super) async fn hold(
        &self,
        held: Held<'_>,
        policy: Arc<str>,
        approval: ApprovalRequest,
        ex: &mut Exchange,
    ) -> Result<(), ProxyError> {
        let info = ApprovalInfo {
            id: uuid::Uuid::now_v7().to_string(),
            connection: self.name.clone(),
            protocol: held.protocol.into(),
            session_id: held.session.id.clone(),
            request_id: ex.request_id.clone(),
            requester: held.principal.record(),
            request: describe(&held, ex.record_masks.as_deref()),
            policy: policy.to_string(),
            reason: approval.reason.clone(),
            approver_groups: approval.approver_groups.clone(),
            timeout_secs: approval.timeout_secs,
            scope: approval.scope.clone(),
            created_at_ms: crate::audit::record::now_ms(),
        };
        let settled = match self
            .approvals
            .submit(info, held.principal, held.session)
            .await
        {
            Submitted::Waiting(ticket) => ticket.wait().await,
            Submitted::Settled(s) => s,
        };
        ex.approval = Some((settled.id.clone(), settled.outcome.clone()));
        let id = settled.id;
        match (settled.status, settled.outcome) {
            (ApprovalStatus::Approved, _) => Ok(()),
            (ApprovalStatus::Denied, ApprovalOutcome::Denied { by, reason }) => {
                Err(ProxyError::ApprovalDenied {
                    id,
                    policy: policy.to_string(),
                    by,
                    reason,
                })
            }
            (ApprovalStatus::TimedOut, _) => Err(ProxyError::ApprovalTimedOut {
                id,
                policy: policy.to_string(),
                reason: approval.reason,
                timeout_secs: approval.timeout_secs,
            }),
            (_, outcome) => Err(ProxyError::ApprovalAbandoned {
                id,
                reason: match outcome {
                    ApprovalOutcome::Denied { reason, .. } => reason,
                    _ => "the approval was abandoned".into(),
                },
            }),
        }
    }
}

/// The request as approvers see it: method, target, content type and the
/// start of the body, masked like the audit record.
fn describe(held: &Held<'_>, masks: Option<&CompiledMasks>) -> Value {
    let text = |bytes: &[u8]| -> String {
        let masked = match masks.and_then(|m| m.text.as_ref().map(|t| (t, m))) {
            Some((t, m)) => crate::mask::stream::mask_all(t, &m.hash_key, bytes),
            None => bytes.to_vec(),
        };
        String::from_utf8_lossy(&masked).into_owned()
    };
    let target = held
        .parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let body = match masks {
        Some(m) if !m.json_pointers.is_empty() && held.complete => {
            mask_json(held.body, m).unwrap_or_else(|_| b"[not JSON; withheld]".to_vec())
        }
        Some(m) if !m.json_pointers.is_empty() => b"[withheld: masked fields]".to_vec(),
        _ => held.body.to_vec(),
    };
    // Masked whole, then cut: a cut first could split a secret the masks
    // would no longer recognise.
    let mut shown = text(&body);
    let cut = shown.len() > SHOWN_BODY_BYTES;
    if cut {
        let mut end = SHOWN_BODY_BYTES;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
    }
    let content_type = held
        .parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut shown_json = json!({
        "method": held.parts.method.as_str(),
        "target": text(target.as_bytes()),
        "content_type": content_type,
        "body": shown,
        "body_truncated": cut || !held.complete,
    });
    if let Some(detail) = &held.detail {
        shown_json[held.protocol] = detail.clone();
    }
    shown_json
}
