//! What the request side tells the response side. The server answers
//! messages strictly in order, so each forwarded message that produces a
//! response pushes one [`Expect`] before it is written; the response side
//! pops them as the answers arrive.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::codec::Frame;
use super::sql::Analysis;
use super::sql::StatementKind;
use crate::approval::ApprovalOutcome;
use crate::mask::MaskTarget;
use crate::policy::bindings::{postgres as wit_pg, types as wit};
use crate::policy::chain::{ChainOutcome, Verdict};

/// One statement on its way through: a simple `Query` or an extended-protocol
/// `Bind` (with the `Execute`s that run its portal).
pub struct StatementRun {
    pub request_id: String,
    pub started: Instant,
    pub at_ms: i64,
    pub protocol: QueryProtocol,
    pub sql: Arc<str>,
    pub parameters: Vec<Option<String>>,
    pub analysis: Arc<Analysis>,
    /// What policies are shown of the statement; built only when a policy
    /// is asked (a cached decision needs none).
    pub wit: OnceLock<WitView>,
    /// The `on-query` decision (shared with the decision cache when reused).
    pub outcome: Arc<ChainOutcome>,
    /// When a policy asked for approval: the approval id and how it ended.
    pub held: Option<(String, ApprovalOutcome)>,
}

/// The statement as the policy contract describes it.
#[derive(Clone)]
pub struct WitView {
    pub ctx: Arc<wit::Context>,
    pub query: Arc<wit_pg::Query>,
}

impl WitView {
    pub fn new(
        s: &super::session::Session,
        request_id: &str,
        sql: &str,
        parameters: &[Option<String>],
        analysis: &Analysis,
    ) -> Self {
        Self {
            ctx: Arc::new(super::event::context(
                &s.principal,
                &s.meta,
                &s.labels,
                request_id,
            )),
            query: Arc::new(super::event::query(sql, parameters.to_vec(), analysis)),
        }
    }
}

impl StatementRun {
    /// The policy's view of this statement, built on first use.
    pub fn wit(&self, s: &super::session::Session) -> WitView {
        self.wit
            .get_or_init(|| {
                WitView::new(
                    s,
                    &self.request_id,
                    &self.sql,
                    &self.parameters,
                    &self.analysis,
                )
            })
            .clone()
    }

    /// The verdict as recorded: an approved hold counts as allowed.
    pub fn verdict_label(&self) -> &'static str {
        match (&self.outcome.verdict, &self.held) {
            (Verdict::Allow, _) => "allow",
            (Verdict::Deny { .. }, _) => "deny",
            (Verdict::RequireApproval { .. }, Some((_, ApprovalOutcome::Approved { .. }))) => {
                "approved"
            }
            (Verdict::RequireApproval { .. }, _) => "deny",
        }
    }

    /// What to tell the client instead of running the statement, if anything.
    pub fn refusal(&self) -> Option<Refusal> {
        self.policy_refusal().or_else(|| self.unmaskable_copy())
    }

    /// COPY TO sends rows without column names, so column masks cannot be
    /// placed on them: such a COPY is refused rather than leaked. (Pattern
    /// and detector masks do apply to COPY data.)
    fn unmaskable_copy(&self) -> Option<Refusal> {
        let copy_out = self
            .analysis
            .statements
            .iter()
            .any(|s| s.kind == StatementKind::Copy && s.tables_written.is_empty());
        let columns: Vec<&str> = self
            .outcome
            .masks
            .iter()
            .filter_map(|m| match &m.target {
                MaskTarget::Column(c) => Some(c.as_str()),
                _ => None,
            })
            .collect();
        (copy_out && !columns.is_empty()).then(|| Refusal {
            sqlstate: "0A000",
            message: format!(
                "COPY ... TO cannot be masked by column, and policies mask columns here ({})",
                columns.join(", ")
            ),
            detail: None,
            hint: Some("read the rows with SELECT, which is masked column by column".into()),
        })
    }

    fn policy_refusal(&self) -> Option<Refusal> {
        match &self.outcome.verdict {
            Verdict::Allow => None,
            Verdict::Deny { policy, reason } => Some(Refusal {
                sqlstate: "42501",
                message: format!("denied by policy: {reason}"),
                detail: Some(format!("policy: {policy}")),
                hint: None,
            }),
            Verdict::RequireApproval { policy, approval } => {
                let (id, outcome) = match &self.held {
                    Some((id, o)) => (id.as_str(), o),
                    None => ("", &ApprovalOutcome::TimedOut),
                };
                let message = match outcome {
                    ApprovalOutcome::Approved { .. } => return None,
                    ApprovalOutcome::Denied { by, reason } => {
                        format!("approval {id} denied by {by}: {reason}")
                    }
                    ApprovalOutcome::TimedOut => format!(
                        "approval {id} was not given within {} s ({})",
                        approval.timeout_secs, approval.reason
                    ),
                };
                Some(Refusal {
                    sqlstate: "42501",
                    message,
                    detail: Some(format!("policy: {policy}")),
                    hint: None,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryProtocol {
    Simple,
    Extended,
    FunctionCall,
}

/// Why a statement never reached the server, told to the client in place of
/// the server's answer to the stand-in that Gatehouse sent instead.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub enum Expect {
    ParseComplete,
    BindComplete {
        portal: String,
        run: Arc<StatementRun>,
    },
    CloseComplete,
    /// ParameterDescription then RowDescription or NoData.
    DescribeStatement,
    /// RowDescription or NoData; `swallow` when Gatehouse asked, not the client.
    DescribePortal {
        portal: String,
        swallow: bool,
    },
    Execute {
        portal: String,
    },
    Sync,
    /// A simple query (or a fast-path call), answered up to ReadyForQuery.
    Query {
        run: Arc<StatementRun>,
    },
    /// A stand-in that makes the server fail the way PostgreSQL fails a
    /// statement (so transaction state stays exact); its error is replaced
    /// by `refusal`. `simple` when it ends with ReadyForQuery.
    Refused {
        run: Option<Arc<StatementRun>>,
        refusal: Refusal,
        simple: bool,
    },
}

/// Messages for the client that do not come from the server (notices while
/// a statement waits for approval, the shutdown notice).
pub enum ClientNote {
    Frame(Frame),
    /// Sends the frame and ends the session.
    Fatal(Frame),
}
