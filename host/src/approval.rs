//! Holding a request until people decide. An adapter submits what a policy
//! wants approved and waits on the [`Ticket`]; approvers decide through the
//! admin API, on this replica or any other sharing the store.
//!
//! - [`rules`]: who may decide (approver groups, never one's own request or
//!   one's agent's), the reason a denial needs, what votes add up to.
//! - [`store`]: approvals, decisions, grants and replicas in the store
//!   (SQLite or PostgreSQL). The store is the truth; memory only wakes waiters.
//! - [`release`]: how a waiter learns of a decision made elsewhere
//!   (PostgreSQL LISTEN/NOTIFY, a polling fallback) and the replica heartbeat.
//! - [`webhook`]: notifications of new and decided approvals, off the data path.
//!
//! Ownership: the replica that holds the request owns its approval (the
//! `owner` column). Only the owner times it out; any replica may decide it.
//! A waiting approval whose owner stopped heartbeating, or that a restarted
//! replica of the same `replica_id` left behind, is marked `abandoned`.

pub mod release;
pub mod rules;
pub mod store;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::audit::{AuditEvent, AuditSink, EventKind, PrincipalRecord, SessionInfo};
use crate::config::ApprovalsConfig;
use crate::http::event::SessionMeta;
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::policy::decision::ApprovalScope;

pub use store::ApprovalStore;

/// Who "decided" a wait that Gatehouse ended itself: shutdown, a client that
/// went away, a store that could not record it.
pub const GATEHOUSE: &str = "gatehouse";

/// What an adapter submits: the request as the approver will see it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalInfo {
    pub id: String,
    pub connection: String,
    pub protocol: String,
    pub session_id: String,
    pub request_id: String,
    /// Who asked, with the human behind an agent (`acting_for`).
    pub requester: PrincipalRecord,
    /// The exact request: a statement with its parameters, an HTTP method,
    /// target and body, ...
    pub request: Value,
    pub policy: String,
    pub reason: String,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub scope: ApprovalScope,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Waiting,
    Approved,
    Denied,
    TimedOut,
    Abandoned,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 5] = [
        Self::Waiting,
        Self::Approved,
        Self::Denied,
        Self::TimedOut,
        Self::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::TimedOut => "timed_out",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Approve,
    Deny,
}

/// One approver's decision. A person decides an approval at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vote {
    pub approver: PrincipalRecord,
    pub decision: Choice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at_ms: i64,
}

/// An approval as stored and shown by the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRecord {
    #[serde(flatten)]
    pub info: ApprovalInfo,
    pub status: ApprovalStatus,
    pub min_approvals: u32,
    pub expires_at_ms: i64,
    pub decided_at_ms: Option<i64>,
    /// The denial's reason, or why Gatehouse ended the wait.
    pub status_reason: Option<String>,
    /// The replica holding the request.
    pub owner: String,
    pub decisions: Vec<Vote>,
}

impl ApprovalRecord {
    /// How the wait ended, in the terms adapters tell their clients.
    pub fn outcome(&self) -> ApprovalOutcome {
        match self.status {
            ApprovalStatus::Approved => {
                let approvers: Vec<String> = self
                    .decisions
                    .iter()
                    .filter(|v| v.decision == Choice::Approve)
                    .map(|v| v.approver.subject.clone())
                    .collect();
                ApprovalOutcome::Approved {
                    by: approvers.last().cloned().unwrap_or_default(),
                    approvers,
                    grant: None,
                }
            }
            ApprovalStatus::Denied => {
                let deny = self.decisions.iter().find(|v| v.decision == Choice::Deny);
                ApprovalOutcome::Denied {
                    by: deny
                        .map(|v| v.approver.subject.clone())
                        .unwrap_or_else(|| GATEHOUSE.into()),
                    reason: self.status_reason.clone().unwrap_or_default(),
                }
            }
            ApprovalStatus::TimedOut => ApprovalOutcome::TimedOut,
            ApprovalStatus::Abandoned | ApprovalStatus::Waiting => ApprovalOutcome::Denied {
                by: GATEHOUSE.into(),
                reason: self
                    .status_reason
                    .clone()
                    .unwrap_or_else(|| "the approval was abandoned".into()),
            },
        }
    }

    fn summary(&self) -> String {
        let how = match self.outcome() {
            ApprovalOutcome::Approved { approvers, .. } => {
                format!("approved by {}", approvers.join(", "))
            }
            ApprovalOutcome::Denied { by, reason } if self.status == ApprovalStatus::Denied => {
                format!("denied by {by}: {reason}")
            }
            ApprovalOutcome::Denied { reason, .. } => format!("{}: {reason}", self.status.as_str()),
            ApprovalOutcome::TimedOut => {
                format!("timed out after {} s", self.info.timeout_secs)
            }
        };
        format!(
            "approval {} {how} ({}: {})",
            self.info.id, self.info.policy, self.info.reason
        )
    }
}

/// How a wait ended, as adapters record it. Gatehouse's own endings
/// (abandoned) read as a denial by [`GATEHOUSE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ApprovalOutcome {
    Approved {
        /// Whose approval completed it.
        by: String,
        approvers: Vec<String>,
        /// Set when an earlier approval's grant let the request through
        /// without asking; the approval id is that approval's.
        #[serde(skip_serializing_if = "Option::is_none")]
        grant: Option<GrantUse>,
    },
    Denied {
        by: String,
        reason: String,
    },
    TimedOut,
}

/// A grant that allowed a request without asking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUse {
    pub key: String,
    pub expires_at_ms: i64,
}

/// A settled request: the approval it went by and how that ended.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: String,
    pub status: ApprovalStatus,
    pub outcome: ApprovalOutcome,
}

/// What [`Approvals::submit`] gives back.
pub enum Submitted {
    /// Held: wait on the ticket (dropping it withdraws the request).
    Waiting(Ticket),
    /// Settled at once: a grant covers it, or it could not be recorded.
    Settled(Settled),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    #[error("no approval {0}")]
    NotFound(String),
    #[error("{0} may not decide this approval: approvers must be in one of {1}")]
    NotApprover(String, String),
    #[error("nobody approves their own request ({0} made it, or an agent acting for them did)")]
    OwnRequest(String),
    #[error("approval {id} is already {}; decisions are final", status.as_str())]
    AlreadyDecided { id: String, status: ApprovalStatus },
    #[error("{0} has already decided this approval; it needs another approver")]
    AlreadyVoted(String),
    #[error("approval {0} has run out of time; the request is being refused")]
    Expired(String),
    #[error("a denial needs a reason: send {{\"reason\": \"...\"}}")]
    ReasonRequired,
    #[error("the approval store failed: {0}")]
    Store(String),
    /// At start only: the approvals could not be set up.
    #[error("{0}")]
    Setup(String),
}

impl From<sqlx::Error> for ApprovalError {
    fn from(e: sqlx::Error) -> Self {
        ApprovalError::Store(e.to_string())
    }
}

/// The approvals of this replica: submits, waits, decisions, and the
/// background work that releases waiters and keeps ownership current.
pub struct Approvals {
    store: ApprovalStore,
    audit: AuditSink,
    replica: Arc<str>,
    min_approvals: u32,
    max_grant_secs: u32,
    poll: Duration,
    /// Waiters held by this process, woken when their approval may have changed.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    metrics: Arc<Metrics>,
    webhook: Option<webhook::Webhook>,
    shutdown: watch::Receiver<bool>,
}

impl Approvals {
    /// Registers this replica, marks the waits a dead process left behind
    /// abandoned, and starts the release tasks (heartbeat, poller, LISTEN).
    pub async fn start(
        store: ApprovalStore,
        audit: AuditSink,
        config: &ApprovalsConfig,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Self>, ApprovalError> {
        let named = config.replica_id.is_some();
        let replica: Arc<str> = config
            .replica_id
            .clone()
            .unwrap_or_else(|| format!("gatehouse-{}", uuid::Uuid::now_v7()))
            .into();
        let webhook = match &config.webhook {
            Some(w) => Some(webhook::Webhook::start(w).map_err(ApprovalError::Setup)?),
            None => None,
        };
        let approvals = Arc::new(Self {
            store,
            audit,
            replica,
            min_approvals: config.min_approvals,
            max_grant_secs: config.max_grant_secs,
            poll: Duration::from_millis(config.poll_interval_ms),
            waiters: Mutex::new(HashMap::new()),
            metrics,
            webhook,
            shutdown,
        });
        approvals.startup_sweep(named).await?;
        release::spawn(approvals.clone());
        tracing::info!(replica = %approvals.replica, "approvals ready");
        Ok(approvals)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn store(&self) -> &ApprovalStore {
        &self.store
    }

    /// Records a request that needs approval. A live grant for the same
    /// caller, connection, policy and key lets it through at once.
    pub async fn submit(
        self: &Arc<Self>,
        mut info: ApprovalInfo,
        requester: &Principal,
        session: &SessionMeta,
    ) -> Submitted {
        if let ApprovalScope::Grant { duration_secs, .. } = &mut info.scope
            && *duration_secs > self.max_grant_secs
        {
            tracing::info!(
                asked = *duration_secs,
                max = self.max_grant_secs,
                "grant shortened to approvals.max_grant_secs"
            );
            *duration_secs = self.max_grant_secs;
        }
        if let ApprovalScope::Grant { key, .. } = &info.scope {
            let principal = store::principal_key(&requester.record());
            match self
                .store
                .grant(
                    &info.connection,
                    &principal,
                    &info.policy,
                    key,
                    crate::audit::record::now_ms(),
                )
                .await
            {
                Ok(Some(g)) => {
                    tracing::info!(approval = %g.approval_id, key = %key, "allowed by an earlier approval's grant");
                    return Submitted::Settled(Settled {
                        id: g.approval_id,
                        status: ApprovalStatus::Approved,
                        outcome: ApprovalOutcome::Approved {
                            by: g.approvers.last().cloned().unwrap_or_default(),
                            approvers: g.approvers,
                            grant: Some(GrantUse {
                                key: key.clone(),
                                expires_at_ms: g.expires_at_ms,
                            }),
                        },
                    });
                }
                Ok(None) => {}
                // Without the store nobody could approve anyway; asking
                // (and failing below) is the safe side.
                Err(e) => tracing::warn!(error = %e, "grant lookup failed"),
            }
        }
        let id = info.id.clone();
        let session = SessionInfo {
            id: session.id.clone(),
            connection: session.connection.clone(),
            protocol: info.protocol.clone(),
            client_addr: session.client_addr.clone(),
            started_at_ms: session.started_at_ms,
        };
        if *self.shutdown.borrow() {
            return Submitted::Settled(abandoned(id, "Gatehouse is shutting down"));
        }
        let timeout = Duration::from_secs(u64::from(info.timeout_secs.max(1)));
        let record = ApprovalRecord {
            expires_at_ms: info.created_at_ms + timeout.as_millis() as i64,
            info,
            status: ApprovalStatus::Waiting,
            min_approvals: self.min_approvals,
            decided_at_ms: None,
            status_reason: None,
            owner: self.replica.to_string(),
            decisions: vec![],
        };
        // Registered before the insert, so no decision can come too early;
        // taken out again if this future is dropped before a ticket exists.
        let notify = Arc::new(Notify::new());
        let registration = Registration::new(self, &id, notify.clone());
        if let Err(e) = self.store.insert(&record).await {
            drop(registration);
            tracing::error!(approval = %id, error = %e, "approval could not be recorded; refusing the request");
            return Submitted::Settled(abandoned(
                id,
                &format!("the approval could not be recorded: {e}"),
            ));
        }
        registration.keep();
        tracing::info!(approval = %id, policy = %record.info.policy, reason = %record.info.reason, "waiting for approval");
        self.notify_webhook(webhook::Kind::Created, &record);
        Submitted::Waiting(Ticket {
            approvals: self.clone(),
            id,
            deadline: tokio::time::Instant::now() + timeout,
            notify,
            session,
            settled: false,
        })
    }

    /// Up to `limit` records `visible` keeps, newest first.
    pub async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: i64,
        visible: impl Fn(&ApprovalRecord) -> bool,
    ) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        Ok(self.store.list(status, limit, visible).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, ApprovalError> {
        Ok(self.store.get(id).await?)
    }

    /// Records `approver`'s decision under the rules and, once it is final,
    /// releases the waiting request wherever it is held.
    pub async fn decide(
        &self,
        id: &str,
        approver: &Principal,
        approve: bool,
        reason: Option<String>,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let record = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        rules::may_decide(
            approver,
            &record.info.requester,
            &record.info.approver_groups,
        )?;
        if record.status != ApprovalStatus::Waiting {
            return Err(ApprovalError::AlreadyDecided {
                id: id.to_string(),
                status: record.status,
            });
        }
        let reason = rules::reason(approve, reason)?;
        let now = crate::audit::record::now_ms();
        let vote = Vote {
            approver: approver.record(),
            decision: if approve {
                Choice::Approve
            } else {
                Choice::Deny
            },
            reason,
            at_ms: now,
        };
        let status = self
            .store
            .decide(&record, &vote, &rules::decider(approver))
            .await?;
        tracing::info!(approval = %id, by = %approver.subject, approve, status = status.as_str(), "approval decision recorded");
        self.wake(id);
        let after = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        // Only the vote that settled it announces it.
        if status != ApprovalStatus::Waiting {
            self.notify_webhook(webhook::Kind::Decided, &after);
        }
        Ok(after)
    }

    /// Wakes a local waiter, if this replica holds the request.
    pub fn wake(&self, id: &str) {
        if let Some(n) = self.lock().get(id) {
            n.notify_one();
        }
    }

    fn hold(&self, id: &str, notify: Arc<Notify>) {
        let mut w = self.lock();
        w.insert(id.to_string(), notify);
        self.metrics.set_approvals_waiting(w.len());
    }

    fn release(&self, id: &str) {
        let mut w = self.lock();
        w.remove(id);
        self.metrics.set_approvals_waiting(w.len());
    }

    /// Waits past their deadline by more than [`release::EXPIRY_GRACE`]:
    /// the replica holding them could not record the timeout (a store
    /// outage) or dropped the request while recording it. They time out
    /// now, so nothing stays waiting forever.
    async fn sweep_expired(&self) -> Result<(), ApprovalError> {
        let now = crate::audit::record::now_ms();
        let ids = self
            .store
            .expired(now - release::EXPIRY_GRACE.as_millis() as i64)
            .await?;
        self.end_all(
            ids,
            ApprovalStatus::TimedOut,
            "timed out; recorded by a sweep after the holder could not",
        )
        .await;
        Ok(())
    }

    fn waiting_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// On start: waits no live replica owns are abandoned. SQLite serves one
    /// process, so every wait found there is a dead process's; on
    /// PostgreSQL, a wait is orphaned when its owner stopped heartbeating
    /// (or stopped), or when it is this `replica_id`'s from a former run.
    async fn startup_sweep(&self, named: bool) -> Result<(), ApprovalError> {
        let now = crate::audit::record::now_ms();
        let stale_before = if self.store.is_postgres() {
            now - release::STALE_AFTER.as_millis() as i64
        } else {
            i64::MAX
        };
        let mine = if named { Some(&*self.replica) } else { None };
        if let Some(id) = mine
            && let Some(beat) = self.store.last_heartbeat(id).await?
            && beat >= now - release::STALE_AFTER.as_millis() as i64
        {
            tracing::warn!(
                replica = id,
                seconds_ago = (now - beat) / 1000,
                "this replica_id was alive moments ago; taking over its waiting approvals. If another running process uses it, give each replica its own approvals.replica_id"
            );
        }
        let orphans = self.store.orphans(mine, stale_before).await?;
        self.store.register_replica(&self.replica, now).await?;
        self.end_all(
            orphans,
            ApprovalStatus::Abandoned,
            "the Gatehouse replica holding it stopped",
        )
        .await;
        Ok(())
    }

    /// Marks waits of replicas that stopped heartbeating abandoned.
    async fn sweep(&self) -> Result<(), ApprovalError> {
        let now = crate::audit::record::now_ms();
        let orphans = self
            .store
            .orphans(None, now - release::STALE_AFTER.as_millis() as i64)
            .await?;
        let orphans: Vec<String> = orphans
            .into_iter()
            .filter(|id| !self.lock().contains_key(id))
            .collect();
        self.end_all(
            orphans,
            ApprovalStatus::Abandoned,
            "the Gatehouse replica holding it stopped",
        )
        .await;
        Ok(())
    }

    /// Ends waits nobody decided (abandoned, timed out by a sweep); a local
    /// waiter, if any, wakes and finds the final status.
    async fn end_all(&self, ids: Vec<String>, status: ApprovalStatus, reason: &str) {
        for id in ids {
            match self
                .store
                .finish(&id, status, Some(reason), crate::audit::record::now_ms())
                .await
            {
                Ok(true) => {
                    tracing::warn!(approval = %id, status = status.as_str(), reason, "waiting approval ended");
                    self.wake(&id);
                    if let Ok(Some(r)) = self.store.get(&id).await {
                        self.notify_webhook(webhook::Kind::Decided, &r);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(approval = %id, error = %e, "could not end the approval's wait")
                }
            }
        }
    }

    /// After the connections drained: nothing of this replica waits any
    /// more, and the replica is marked stopped. Webhooks get a moment to go out.
    pub async fn stop(&self) {
        let left = self.waiting_ids();
        self.end_all(
            left,
            ApprovalStatus::Abandoned,
            "Gatehouse is shutting down",
        )
        .await;
        if let Err(e) = self
            .store
            .stop_replica(&self.replica, crate::audit::record::now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not mark the replica stopped");
        }
        if let Some(w) = &self.webhook {
            w.drain(Duration::from_secs(2)).await;
        }
    }

    fn notify_webhook(&self, kind: webhook::Kind, record: &ApprovalRecord) {
        if let Some(w) = &self.webhook {
            w.send(kind, record);
        }
    }

    /// Settles a wait this replica ends itself (timeout, withdrawal,
    /// shutdown): the store keeps the first final status, whoever set it.
    async fn finish(
        &self,
        id: &str,
        status: ApprovalStatus,
        reason: Option<&str>,
        session: &SessionInfo,
    ) -> Settled {
        let now = crate::audit::record::now_ms();
        let mine = match self.store.finish(id, status, reason, now).await {
            Ok(set) => set,
            Err(e) => {
                // Fail closed: the client is refused even if the store
                // could not be told.
                tracing::error!(approval = %id, error = %e, "could not record how the approval ended");
                return Settled {
                    id: id.to_string(),
                    status,
                    outcome: match status {
                        ApprovalStatus::TimedOut => ApprovalOutcome::TimedOut,
                        _ => ApprovalOutcome::Denied {
                            by: GATEHOUSE.into(),
                            reason: reason.unwrap_or_default().to_string(),
                        },
                    },
                };
            }
        };
        match self.store.get(id).await {
            Ok(Some(r)) => {
                if mine {
                    self.notify_webhook(webhook::Kind::Decided, &r);
                }
                self.settle(&r, session)
            }
            _ => abandoned(id.to_string(), "the approval record disappeared"),
        }
    }

    /// A final record: audited in the requester's session, told to the adapter.
    fn settle(&self, r: &ApprovalRecord, session: &SessionInfo) -> Settled {
        self.audit.record_event(AuditEvent {
            session: Arc::new(session.clone()),
            at_ms: r.decided_at_ms.unwrap_or_else(crate::audit::record::now_ms),
            kind: EventKind::Approval,
            principal: Some(Arc::new(r.info.requester.clone())),
            verdict: r.status.as_str().into(),
            summary: r.summary(),
            detail: crate::audit::Detail::serialize(r),
        });
        tracing::info!(approval = %r.info.id, status = r.status.as_str(), "approval settled");
        Settled {
            id: r.info.id.clone(),
            status: r.status,
            outcome: r.outcome(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn abandoned(id: String, reason: &str) -> Settled {
    Settled {
        id,
        status: ApprovalStatus::Abandoned,
        outcome: ApprovalOutcome::Denied {
            by: GATEHOUSE.into(),
            reason: reason.to_string(),
        },
    }
}

/// Held by the waiting request. Dropping it before it settles (the client
/// went away) withdraws the request: its approval is marked abandoned.
pub struct Ticket {
    approvals: Arc<Approvals>,
    pub id: String,
    deadline: tokio::time::Instant,
    notify: Arc<Notify>,
    session: SessionInfo,
    settled: bool,
}

impl Ticket {
    /// Waits for a final decision, the timeout (a denial, recorded as
    /// `timed_out`) or shutdown (`abandoned`).
    pub async fn wait(mut self) -> Settled {
        let a = self.approvals.clone();
        let mut shutdown = a.shutdown.clone();
        loop {
            let ended = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => {
                    Some((ApprovalStatus::Abandoned, Some("Gatehouse is shutting down; the request was not run")))
                }
                _ = self.notify.notified() => None,
                _ = tokio::time::sleep_until(self.deadline) => Some((ApprovalStatus::TimedOut, None)),
            };
            if let Some((status, reason)) = ended {
                let s = a.finish(&self.id, status, reason, &self.session).await;
                self.settled = true;
                return s;
            }
            match a.store.get(&self.id).await {
                Ok(Some(r)) if r.status != ApprovalStatus::Waiting => {
                    self.settled = true;
                    return a.settle(&r, &self.session);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.settled = true;
                    return abandoned(self.id.clone(), "the approval record disappeared");
                }
                // Keep waiting: the store may come back before the deadline.
                Err(e) => {
                    tracing::warn!(approval = %self.id, error = %e, "could not read the approval")
                }
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.approvals.release(&self.id);
        if self.settled {
            return;
        }
        let (a, id, session) = (
            self.approvals.clone(),
            self.id.clone(),
            self.session.clone(),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tracing::info!(approval = %id, "the client went away; withdrawing the request");
                a.finish(
                    &id,
                    ApprovalStatus::Abandoned,
                    Some("the client went away before a decision"),
                    &session,
                )
                .await;
            });
        }
    }
}

#[cfg(test)]
mod tests;

/// A waiter registered for an approval being submitted: released on drop
/// unless [`Registration::keep`] hands it to a ticket.
struct Registration<'a> {
    approvals: &'a Approvals,
    id: &'a str,
    kept: bool,
}

impl<'a> Registration<'a> {
    fn new(approvals: &'a Approvals, id: &'a str, notify: Arc<Notify>) -> Self {
        approvals.hold(id, notify);
        Self {
            approvals,
            id,
            kept: false,
        }
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.approvals.release(self.id);
        }
    }
}
