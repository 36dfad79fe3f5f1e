//! Holding a request until a person decides. An adapter submits what a
//! policy wants approved and waits on the ticket; an approver decides
//! through the admin API. The rules live here, not in the adapters:
//! approvers must be in one of the approval's groups, nobody approves a
//! request they made (or one made by an agent acting for them), a denial
//! needs a reason, and a decision is final.
//!
//! Waiting requests live in this process; sharing them between replicas
//! (and surviving restarts) is the job of the store-backed broker that
//! replaces this one when approvals become persistent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::audit::PrincipalRecord;
use crate::identity::Principal;

/// What an approver sees.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalInfo {
    pub id: String,
    pub connection: String,
    pub protocol: String,
    pub session_id: String,
    pub request_id: String,
    pub requester: PrincipalRecord,
    /// The exact request: a statement with its parameters, an HTTP request line, ...
    pub request: Value,
    pub policy: String,
    pub reason: String,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub created_at_ms: i64,
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ApprovalOutcome {
    Approved { by: String },
    Denied { by: String, reason: String },
    TimedOut,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    #[error("no waiting approval {0} (it was decided, timed out, or never existed)")]
    NotFound(String),
    #[error("{0} may not decide this approval: approvers must be in one of {1}")]
    NotApprover(String, String),
    #[error("nobody approves their own request ({0} made it, or an agent acting for them did)")]
    OwnRequest(String),
    #[error("a denial needs a reason")]
    ReasonRequired,
}

struct Waiting {
    info: ApprovalInfo,
    requester_acting_for: Option<String>,
    decide: oneshot::Sender<ApprovalOutcome>,
}

/// The approvals waiting in this process.
#[derive(Default)]
pub struct Approvals {
    waiting: Mutex<HashMap<String, Waiting>>,
}

/// Held by the waiting request.
pub struct Ticket {
    pub id: String,
    timeout: Duration,
    decided: oneshot::Receiver<ApprovalOutcome>,
}

impl Approvals {
    pub fn submit(&self, info: ApprovalInfo, requester: &Principal) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let id = info.id.clone();
        let timeout = Duration::from_secs(u64::from(info.timeout_secs.max(1)));
        tracing::info!(approval = %id, policy = %info.policy, reason = %info.reason, "waiting for approval");
        self.lock().insert(
            id.clone(),
            Waiting {
                info,
                requester_acting_for: requester.acting_for.clone(),
                decide: tx,
            },
        );
        Ticket {
            id,
            timeout,
            decided: rx,
        }
    }

    /// Waits for a decision or the timeout; a timeout is a denial.
    pub async fn wait(&self, ticket: Ticket) -> ApprovalOutcome {
        let outcome = match tokio::time::timeout(ticket.timeout, ticket.decided).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) | Err(_) => ApprovalOutcome::TimedOut,
        };
        self.lock().remove(&ticket.id);
        outcome
    }

    /// Withdraws a request whose caller went away.
    pub fn withdraw(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn list(&self) -> Vec<ApprovalInfo> {
        let mut v: Vec<ApprovalInfo> = self.lock().values().map(|w| w.info.clone()).collect();
        v.sort_by_key(|a| a.created_at_ms);
        v
    }

    pub fn get(&self, id: &str) -> Option<ApprovalInfo> {
        self.lock().get(id).map(|w| w.info.clone())
    }

    /// Records `approver`'s decision and releases the waiting request.
    pub fn decide(
        &self,
        id: &str,
        approver: &Principal,
        approve: bool,
        reason: Option<String>,
    ) -> Result<ApprovalInfo, ApprovalError> {
        let mut waiting = self.lock();
        let w = waiting
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let requester = &w.info.requester;
        let own = (approver.subject == requester.subject && approver.issuer == requester.issuer)
            || w.requester_acting_for.as_deref() == Some(approver.subject.as_str())
            || approver.acting_for.as_deref() == Some(requester.subject.as_str());
        if own {
            return Err(ApprovalError::OwnRequest(approver.subject.clone()));
        }
        let groups = &w.info.approver_groups;
        if !approver.groups.iter().any(|g| groups.contains(g)) {
            return Err(ApprovalError::NotApprover(
                approver.subject.clone(),
                groups.join(", "),
            ));
        }
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        if !approve && reason.is_none() {
            return Err(ApprovalError::ReasonRequired);
        }
        let Some(w) = waiting.remove(id) else {
            return Err(ApprovalError::NotFound(id.to_string()));
        };
        let outcome = if approve {
            ApprovalOutcome::Approved {
                by: approver.subject.clone(),
            }
        } else {
            ApprovalOutcome::Denied {
                by: approver.subject.clone(),
                reason: reason.unwrap_or_default(),
            }
        };
        tracing::info!(approval = %id, by = %approver.subject, approved = approve, "approval decided");
        // The requester may have gone away meanwhile; the decision stands.
        let _ = w.decide.send(outcome);
        Ok(w.info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;

    fn person(subject: &str, groups: &[&str], acting_for: Option<&str>) -> Principal {
        Principal {
            subject: subject.into(),
            issuer: "gatehouse".into(),
            kind: PrincipalKind::Human,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            acting_for: acting_for.map(str::to_string),
            allowed_connections: vec![],
        }
    }

    fn info(requester: &Principal) -> ApprovalInfo {
        ApprovalInfo {
            id: "a1".into(),
            connection: "db".into(),
            protocol: "postgres".into(),
            session_id: "s".into(),
            request_id: "r".into(),
            requester: requester.record(),
            request: serde_json::json!({"sql": "DROP TABLE t"}),
            policy: "sql-guard".into(),
            reason: "drop".into(),
            approver_groups: vec!["dba".into()],
            timeout_secs: 5,
            created_at_ms: 0,
        }
    }

    #[tokio::test]
    async fn rules_hold_and_a_decision_releases_the_waiter() {
        let approvals = Approvals::default();
        let bot = person("bot", &["dba"], Some("alice"));
        let ticket = approvals.submit(info(&bot), &bot);
        assert_eq!(
            approvals.decide("a1", &bot, true, None).unwrap_err(),
            ApprovalError::OwnRequest("bot".into())
        );
        let alice = person("alice", &["dba"], None);
        assert!(matches!(
            approvals.decide("a1", &alice, true, None),
            Err(ApprovalError::OwnRequest(_))
        ));
        let dev = person("dave", &["dev"], None);
        assert!(matches!(
            approvals.decide("a1", &dev, true, None),
            Err(ApprovalError::NotApprover(..))
        ));
        let dba = person("dora", &["dba"], None);
        assert_eq!(
            approvals
                .decide("a1", &dba, false, Some("  ".into()))
                .unwrap_err(),
            ApprovalError::ReasonRequired
        );
        approvals.decide("a1", &dba, true, None).unwrap();
        assert_eq!(
            approvals.wait(ticket).await,
            ApprovalOutcome::Approved { by: "dora".into() }
        );
        assert!(matches!(
            approvals.decide("a1", &dba, true, None),
            Err(ApprovalError::NotFound(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_as_a_denial() {
        let approvals = Approvals::default();
        let bot = person("bot", &[], None);
        let ticket = approvals.submit(info(&bot), &bot);
        assert_eq!(approvals.wait(ticket).await, ApprovalOutcome::TimedOut);
        assert!(approvals.list().is_empty());
    }
}
