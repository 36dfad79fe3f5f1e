//! Approvals in the store (schema 4): written once by the replica that holds
//! the request, decided by any replica in one transaction that locks the
//! approval's row first, so concurrent decisions (several approvers, a
//! timeout racing a decision) serialize and the first final status wins.
//! On PostgreSQL a final status is announced with `NOTIFY` on
//! [`CHANNEL`], delivered when the transaction commits.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{ApprovalError, ApprovalInfo, ApprovalRecord, ApprovalStatus, Choice, Vote, rules};
use crate::audit::PrincipalRecord;
use crate::policy::decision::ApprovalScope;

/// The notification channel; the payload is the approval id.
pub const CHANNEL: &str = "gatehouse_approvals";

/// Most ids bound in one `IN (...)` list.
const IN_CHUNK: usize = 200;

const COLUMNS: &str = "id, connection, protocol, session_id, request_id, requester_json, \
    request_json, policy, reason, approver_groups_json, min_approvals, timeout_secs, scope, \
    grant_key, grant_secs, created_at_ms, expires_at_ms, status, decided_at_ms, status_reason, owner";

#[derive(Clone)]
pub struct ApprovalStore {
    pool: AnyPool,
    /// The PostgreSQL URL, for LISTEN; `None` on SQLite.
    postgres: Option<String>,
}

/// A live grant.
pub struct GrantRow {
    pub approval_id: String,
    pub expires_at_ms: i64,
    pub approvers: Vec<String>,
}

/// Who a grant is for: the same caller, including the human behind an agent.
pub fn principal_key(p: &PrincipalRecord) -> String {
    format!(
        "{}\n{}\n{}",
        p.issuer,
        p.subject,
        p.acting_for.as_deref().unwrap_or("")
    )
}

impl ApprovalStore {
    /// Over the audit store's pool (`database` is its URL).
    pub fn new(pool: AnyPool, database: &str) -> Self {
        let postgres = (database.starts_with("postgres://")
            || database.starts_with("postgresql://"))
        .then(|| database.to_string());
        Self { pool, postgres }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    pub fn listen_url(&self) -> Option<&str> {
        self.postgres.as_deref()
    }

    pub async fn insert(&self, r: &ApprovalRecord) -> Result<(), sqlx::Error> {
        let i = &r.info;
        let (scope, grant_key, grant_secs) = match &i.scope {
            ApprovalScope::Once => ("once", None, None),
            ApprovalScope::Grant { key, duration_secs } => {
                ("grant", Some(key.clone()), Some(i64::from(*duration_secs)))
            }
        };
        sqlx::query(
            "INSERT INTO approvals (id, connection, protocol, session_id, request_id, requester_subject,
                requester_json, request_json, policy, reason, approver_groups_json, min_approvals,
                timeout_secs, scope, grant_key, grant_secs, created_at_ms, expires_at_ms, status, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(&i.id)
        .bind(&i.connection)
        .bind(&i.protocol)
        .bind(&i.session_id)
        .bind(&i.request_id)
        .bind(&i.requester.subject)
        .bind(json(&i.requester))
        .bind(i.request.to_string())
        .bind(&i.policy)
        .bind(&i.reason)
        .bind(json(&i.approver_groups))
        .bind(i64::from(r.min_approvals))
        .bind(i64::from(i.timeout_secs))
        .bind(scope)
        .bind(grant_key)
        .bind(grant_secs)
        .bind(i.created_at_ms)
        .bind(r.expires_at_ms)
        .bind(r.status.as_str())
        .bind(&r.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut r = from_row(&row)?;
        r.decisions = self.votes(id).await?;
        Ok(Some(r))
    }

    /// Up to `limit` records that `visible` keeps, newest first; all
    /// statuses when `status` is `None`. Reads in pages, so records the
    /// caller may not see never crowd out older ones they may.
    pub async fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: i64,
        visible: impl Fn(&ApprovalRecord) -> bool,
    ) -> Result<Vec<ApprovalRecord>, sqlx::Error> {
        const PAGE: i64 = 200;
        let mut records = Vec::new();
        // Keyset cursor: (created_at_ms, id) of the last row read.
        let mut before: (i64, String) = (i64::MAX, String::new());
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM approvals WHERE ($1 = '' OR status = $1)
                 AND (created_at_ms < $2 OR (created_at_ms = $2 AND ($3 = '' OR id < $3)))
                 ORDER BY created_at_ms DESC, id DESC LIMIT $4"
            ))
            .bind(status.map(ApprovalStatus::as_str).unwrap_or(""))
            .bind(before.0)
            .bind(&before.1)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let exhausted = (rows.len() as i64) < PAGE;
            for row in &rows {
                let r = from_row(row)?;
                before = (r.info.created_at_ms, r.info.id.clone());
                if visible(&r) && (records.len() as i64) < limit {
                    records.push(r);
                }
            }
            if exhausted || records.len() as i64 >= limit {
                break;
            }
        }
        let ids: Vec<String> = records.iter().map(|r| r.info.id.clone()).collect();
        let mut votes = self.votes_of(&ids).await?;
        for r in &mut records {
            r.decisions = votes.remove(&r.info.id).unwrap_or_default();
        }
        Ok(records)
    }

    async fn votes(&self, id: &str) -> Result<Vec<Vote>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT approval_id, approver_json, decision, reason, at_ms FROM approval_decisions
             WHERE approval_id = $1 ORDER BY at_ms, approver",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| vote_from_row(r).map(|(_, v)| v))
            .collect()
    }

    async fn votes_of(&self, ids: &[String]) -> Result<HashMap<String, Vec<Vote>>, sqlx::Error> {
        let mut out: HashMap<String, Vec<Vote>> = HashMap::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT approval_id, approver_json, decision, reason, at_ms FROM approval_decisions
                 WHERE approval_id IN ({}) ORDER BY at_ms, approver",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                let (id, v) = vote_from_row(&row)?;
                out.entry(id).or_default().push(v);
            }
        }
        Ok(out)
    }

    /// Records one vote and whatever status the votes now add up to. The
    /// approval's row is locked first, and only while it still waits and
    /// its deadline (checked against the vote's time, in the same
    /// transaction) has not passed; a grant is written with the approval
    /// that makes it.
    pub async fn decide(
        &self,
        r: &ApprovalRecord,
        vote: &Vote,
        decider: &str,
    ) -> Result<ApprovalStatus, ApprovalError> {
        let id = &r.info.id;
        let mut tx = self.pool.begin().await?;
        let locked = sqlx::query(
            "UPDATE approvals SET status = status
             WHERE id = $1 AND status = 'waiting' AND expires_at_ms > $2",
        )
        .bind(id)
        .bind(vote.at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if locked == 0 {
            tx.rollback().await?;
            let status = self.status(id).await?;
            return Err(match status {
                // Its holder times it out at the deadline; a late approval
                // would only leave a grant for a request that never ran.
                Some(ApprovalStatus::Waiting) => ApprovalError::Expired(id.clone()),
                Some(status) => ApprovalError::AlreadyDecided {
                    id: id.clone(),
                    status,
                },
                None => ApprovalError::NotFound(id.clone()),
            });
        }
        let voted: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM approval_decisions WHERE approval_id = $1 AND approver = $2",
        )
        .bind(id)
        .bind(decider)
        .fetch_one(&mut *tx)
        .await?;
        if voted > 0 {
            tx.rollback().await?;
            return Err(ApprovalError::AlreadyVoted(decider.to_string()));
        }
        sqlx::query(
            "INSERT INTO approval_decisions (approval_id, approver, approver_json, decision, reason, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(decider)
        .bind(json(&vote.approver))
        .bind(choice_str(vote.decision))
        .bind(vote.reason.clone())
        .bind(vote.at_ms)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT approval_id, approver_json, decision, reason, at_ms FROM approval_decisions
             WHERE approval_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let votes = rows
            .iter()
            .map(|row| vote_from_row(row).map(|(_, v)| v))
            .collect::<Result<Vec<_>, _>>()?;
        let status = rules::tally(r.min_approvals, &votes);
        if status != ApprovalStatus::Waiting {
            let reason = match status {
                ApprovalStatus::Denied => votes
                    .iter()
                    .find(|v| v.decision == Choice::Deny)
                    .and_then(|v| v.reason.clone()),
                _ => None,
            };
            sqlx::query(
                "UPDATE approvals SET status = $2, decided_at_ms = $3, status_reason = $4 WHERE id = $1",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(vote.at_ms)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            if let (ApprovalStatus::Approved, ApprovalScope::Grant { key, duration_secs }) =
                (status, &r.info.scope)
            {
                let approvers: Vec<&str> = votes
                    .iter()
                    .filter(|v| v.decision == Choice::Approve)
                    .map(|v| v.approver.subject.as_str())
                    .collect();
                sqlx::query(
                    "INSERT INTO approval_grants (approval_id, connection, principal, policy, grant_key,
                        approvers_json, created_at_ms, expires_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(id)
                .bind(&r.info.connection)
                .bind(principal_key(&r.info.requester))
                .bind(&r.info.policy)
                .bind(key)
                .bind(json(&approvers))
                .bind(vote.at_ms)
                .bind(vote.at_ms + i64::from(*duration_secs) * 1000)
                .execute(&mut *tx)
                .await?;
            }
            self.notify(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(status)
    }

    /// Ends a wait without a decision (timed out, abandoned). False when
    /// it had already ended: the status set first stands.
    pub async fn finish(
        &self,
        id: &str,
        status: ApprovalStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE approvals SET status = $2, decided_at_ms = $3, status_reason = $4
             WHERE id = $1 AND status = 'waiting'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            self.notify(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn notify(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
    ) -> Result<(), sqlx::Error> {
        // NOTIFY takes no parameters; ids are Gatehouse's own UUIDs, and
        // anything else is not announced (pollers still find it).
        if self.postgres.is_none() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Ok(());
        }
        sqlx::query(&format!("NOTIFY {CHANNEL}, '{id}'"))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn status(&self, id: &str) -> Result<Option<ApprovalStatus>, sqlx::Error> {
        let s: Option<String> = sqlx::query_scalar("SELECT status FROM approvals WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(s.and_then(|s| ApprovalStatus::parse(&s)))
    }

    /// Of these ids, the ones no longer waiting.
    pub async fn settled_among(&self, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT id FROM approvals WHERE status <> 'waiting' AND id IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    /// The newest live grant for this caller, connection, policy and key.
    pub async fn grant(
        &self,
        connection: &str,
        principal: &str,
        policy: &str,
        key: &str,
        now: i64,
    ) -> Result<Option<GrantRow>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT approval_id, expires_at_ms, approvers_json FROM approval_grants
             WHERE connection = $1 AND principal = $2 AND policy = $3 AND grant_key = $4
               AND expires_at_ms > $5
             ORDER BY expires_at_ms DESC LIMIT 1",
        )
        .bind(connection)
        .bind(principal)
        .bind(policy)
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let approvers: String = r.try_get("approvers_json")?;
            Ok(GrantRow {
                approval_id: r.try_get("approval_id")?,
                expires_at_ms: r.try_get("expires_at_ms")?,
                approvers: serde_json::from_str(&approvers).unwrap_or_default(),
            })
        })
        .transpose()
    }

    pub async fn register_replica(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO gatehouse_replicas (id, started_at_ms, heartbeat_at_ms) VALUES ($1, $2, $2)
             ON CONFLICT (id) DO UPDATE SET started_at_ms = $2, heartbeat_at_ms = $2, stopped_at_ms = NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn heartbeat(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE gatehouse_replicas SET heartbeat_at_ms = $2 WHERE id = $1 AND stopped_at_ms IS NULL",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A running replica's last heartbeat (none once it stopped).
    pub async fn last_heartbeat(&self, id: &str) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT heartbeat_at_ms FROM gatehouse_replicas WHERE id = $1 AND stopped_at_ms IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    pub async fn stop_replica(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE gatehouse_replicas SET stopped_at_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Waiting approvals whose deadline passed before `before`.
    pub async fn expired(&self, before: i64) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM approvals WHERE status = 'waiting' AND expires_at_ms < $1
             ORDER BY created_at_ms LIMIT 1000",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
    }

    /// Waiting approvals no live replica owns: the owner's last heartbeat
    /// is before `stale_before`, it stopped, it never registered, or it is
    /// `mine` (this replica's name, from a run that ended).
    pub async fn orphans(
        &self,
        mine: Option<&str>,
        stale_before: i64,
    ) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT id FROM approvals WHERE status = 'waiting' AND (owner = $1 OR owner NOT IN (
                SELECT id FROM gatehouse_replicas WHERE stopped_at_ms IS NULL AND heartbeat_at_ms >= $2))
             ORDER BY created_at_ms",
        )
        .bind(mine.unwrap_or(""))
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await
    }
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn choice_str(c: Choice) -> &'static str {
    match c {
        Choice::Approve => "approve",
        Choice::Deny => "deny",
    }
}

fn decode_err(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("approvals.{what}: {e}").into())
}

fn from_row(r: &AnyRow) -> Result<ApprovalRecord, sqlx::Error> {
    let requester: String = r.try_get("requester_json")?;
    let request: String = r.try_get("request_json")?;
    let groups: String = r.try_get("approver_groups_json")?;
    let scope: String = r.try_get("scope")?;
    let scope = match scope.as_str() {
        "grant" => ApprovalScope::Grant {
            key: r
                .try_get::<Option<String>, _>("grant_key")?
                .unwrap_or_default(),
            duration_secs: r
                .try_get::<Option<i64>, _>("grant_secs")?
                .unwrap_or(0)
                .clamp(0, i64::from(u32::MAX)) as u32,
        },
        _ => ApprovalScope::Once,
    };
    let status: String = r.try_get("status")?;
    Ok(ApprovalRecord {
        info: ApprovalInfo {
            id: r.try_get("id")?,
            connection: r.try_get("connection")?,
            protocol: r.try_get("protocol")?,
            session_id: r.try_get("session_id")?,
            request_id: r.try_get("request_id")?,
            requester: serde_json::from_str(&requester)
                .map_err(|e| decode_err("requester_json", e))?,
            request: serde_json::from_str(&request).unwrap_or(serde_json::Value::String(request)),
            policy: r.try_get("policy")?,
            reason: r.try_get("reason")?,
            approver_groups: serde_json::from_str(&groups)
                .map_err(|e| decode_err("approver_groups_json", e))?,
            timeout_secs: r
                .try_get::<i64, _>("timeout_secs")?
                .clamp(0, i64::from(u32::MAX)) as u32,
            scope,
            created_at_ms: r.try_get("created_at_ms")?,
        },
        status: ApprovalStatus::parse(&status).ok_or_else(|| decode_err("status", &status))?,
        min_approvals: r.try_get::<i64, _>("min_approvals")?.clamp(1, 1000) as u32,
        expires_at_ms: r.try_get("expires_at_ms")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
        status_reason: r.try_get("status_reason")?,
        owner: r.try_get("owner")?,
        decisions: vec![],
    })
}

fn vote_from_row(r: &AnyRow) -> Result<(String, Vote), sqlx::Error> {
    let approver: String = r.try_get("approver_json")?;
    let decision: String = r.try_get("decision")?;
    Ok((
        r.try_get("approval_id")?,
        Vote {
            approver: serde_json::from_str(&approver)
                .map_err(|e| decode_err("approver_json", e))?,
            decision: match decision.as_str() {
                "approve" => Choice::Approve,
                "deny" => Choice::Deny,
                other => return Err(decode_err("decision", other)),
            },
            reason: r.try_get("reason")?,
            at_ms: r.try_get("at_ms")?,
        },
    ))
}
