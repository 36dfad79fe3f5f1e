//! The audit records of a PostgreSQL session: its opening (or refusal) and
//! one event per statement, written once the statement's outcome is known.

use std::sync::Arc;

use serde_json::{Value, json};

use super::pipeline::StatementRun;
use serde::Serialize;

use crate::audit::{AuditEvent, AuditSink, Detail, EventKind, SessionInfo};
use crate::http::event::SessionMeta;
use crate::identity::Principal;
use crate::policy::ChainOutcome;

pub fn session_info(s: &SessionMeta) -> Arc<SessionInfo> {
    Arc::new(SessionInfo {
        id: s.id.clone(),
        connection: s.connection.clone(),
        protocol: "postgres".into(),
        client_addr: s.client_addr.clone(),
        started_at_ms: s.started_at_ms,
    })
}

/// A session that was refused before it reached the server.
pub fn refused(
    audit: &AuditSink,
    session: &SessionMeta,
    principal: Option<&Principal>,
    presented: Option<String>,
    sqlstate: &str,
    message: &str,
    startup: Value,
) {
    audit.record_event(AuditEvent {
        session: session_info(session),
        at_ms: crate::audit::record::now_ms(),
        kind: EventKind::AuthRefused,
        principal: principal.map(|p| Arc::new(p.record())),
        verdict: "refused".into(),
        summary: format!("connect refused: {message}"),
        detail: json!({
            "presented": presented,
            "startup": startup,
            "error": {"sqlstate": sqlstate, "message": message},
        })
        .into(),
    });
}

pub fn connected(
    audit: &AuditSink,
    session: &SessionMeta,
    principal: &Principal,
    presented: String,
    database: &str,
    startup: Value,
    error: Option<(String, String)>,
) {
    let verdict = if error.is_some() { "error" } else { "allow" };
    audit.record_event(AuditEvent {
        session: session_info(session),
        at_ms: crate::audit::record::now_ms(),
        kind: EventKind::PgConnect,
        principal: Some(Arc::new(principal.record())),
        verdict: verdict.into(),
        summary: match &error {
            None => format!("connect {database}"),
            Some((_, m)) => format!("connect {database} failed: {m}"),
        },
        detail: json!({
            "presented": presented,
            "database": database,
            "startup": startup,
            "error": error.map(|(code, message)| json!({"sqlstate": code, "message": message})),
        })
        .into(),
    });
}

/// The detail of a `pg.statement` event, serialized straight from the run.
#[derive(Serialize)]
struct StatementDetail<'a> {
    request_id: &'a str,
    protocol: super::pipeline::QueryProtocol,
    sql: &'a str,
    parameters: &'a [Option<String>],
    analysis: &'a serde_json::value::RawValue,
    decisions: Decisions<'a>,
    rows: u64,
    command_tags: &'a [String],
    masked_columns: &'a [String],
    scanned_columns: &'a [String],
    masked_values: u64,
    suspended: bool,
    not_executed: Option<&'a str>,
    approval: Option<Approval<'a>>,
    error: Option<&'a Value>,
    duration_us: u64,
}

#[derive(Serialize)]
struct Decisions<'a> {
    query: Recorded<'a>,
    result: Vec<Recorded<'a>>,
}

/// A chain outcome as recorded: a reused one was rendered when it was
/// cached and is stored once, referred to by its digest.
struct Recorded<'a>(&'a ChainOutcome);

impl Serialize for Recorded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.rendered {
            Some(part) => part.reference().serialize(s),
            None => self.0.serialize(s),
        }
    }
}

#[derive(Serialize)]
struct Approval<'a> {
    id: &'a str,
    outcome: &'a crate::approval::ApprovalOutcome,
}

/// What became of a statement, gathered by the response side.
#[derive(Debug, Default)]
pub struct StatementResult {
    pub rows: u64,
    pub command_tags: Vec<String>,
    pub masked_columns: Vec<String>,
    pub scanned_columns: Vec<String>,
    pub masked_values: u64,
    pub result_decisions: Vec<Arc<ChainOutcome>>,
    pub error: Option<Value>,
    /// Never reached the server: refused by policy, or skipped after an
    /// earlier error in the same pipeline.
    pub not_executed: Option<String>,
    pub suspended: bool,
}

impl StatementResult {
    /// Records which columns a result's mask plan masks and scans.
    pub fn note_plan(&mut self, plan: &super::masking::MaskPlan) {
        self.masked_columns
            .extend(plan.masked_columns.iter().cloned());
        self.scanned_columns
            .extend(plan.scanned_columns.iter().cloned());
    }
}

/// The event's one-line summary: the statement's first line, cut at 120
/// characters, and its outcome (`SELECT 1 -> 1 rows`). Built in one string:
/// it is made for every statement.
fn summary(sql: &str, result: &StatementResult) -> String {
    const MAX_CHARS: usize = 120;
    let first = sql.lines().next().unwrap_or("");
    let head = match first.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => &first[..cut],
        None => first,
    };
    let mut s = String::with_capacity(head.len() + 24);
    s.push_str(head);
    if head.len() < sql.len() {
        s.push('…');
    }
    s.push_str(" -> ");
    match (&result.error, &result.not_executed) {
        (Some(e), _) => {
            s.push_str("error ");
            s.push_str(e.get("sqlstate").and_then(Value::as_str).unwrap_or(""));
        }
        (None, Some(_)) => s.push_str("not executed"),
        (None, None) => {
            s.push_str(itoa::Buffer::new().format(result.rows));
            s.push_str(" rows");
        }
    }
    s
}

pub fn statement(
    audit: &AuditSink,
    session: &super::session::Session,
    run: &StatementRun,
    result: StatementResult,
    verdict: &str,
) {
    let mut shared: Vec<Arc<crate::audit::shared::SharedPart>> = std::iter::once(&run.outcome)
        .chain(result.result_decisions.iter())
        .filter_map(|o| o.rendered.clone())
        .collect();
    shared.sort_by(|a, b| a.digest.cmp(&b.digest));
    shared.dedup_by(|a, b| a.digest == b.digest);
    audit.record_event(AuditEvent {
        session: session.record.clone(),
        at_ms: run.at_ms,
        kind: EventKind::PgStatement,
        principal: Some(session.principal_record.clone()),
        verdict: verdict.into(),
        summary: summary(&run.sql, &result),
        detail: Detail::serialize_shared(
            &StatementDetail {
                request_id: &run.request_id,
                protocol: run.protocol,
                sql: &run.sql,
                parameters: &run.parameters,
                analysis: run.analysis.rendered(),
                decisions: Decisions {
                    query: Recorded(&run.outcome),
                    result: result
                        .result_decisions
                        .iter()
                        .map(|o| Recorded(o))
                        .collect(),
                },
                rows: result.rows,
                command_tags: &result.command_tags,
                masked_columns: &result.masked_columns,
                scanned_columns: &result.scanned_columns,
                masked_values: result.masked_values,
                suspended: result.suspended,
                not_executed: result.not_executed.as_deref(),
                approval: run
                    .held
                    .as_ref()
                    .map(|(id, outcome)| Approval { id, outcome }),
                error: result.error.as_ref(),
                duration_us: run.started.elapsed().as_micros() as u64,
            },
            shared,
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_the_first_line_cut_at_120_characters_and_the_outcome() {
        let rows = StatementResult {
            rows: 3,
            ..Default::default()
        };
        assert_eq!(summary("SELECT 1", &rows), "SELECT 1 -> 3 rows");
        assert_eq!(
            summary("SELECT 1\r\nFROM t", &rows),
            "SELECT 1… -> 3 rows",
            "only the first line, marked as cut"
        );
        // Cut by characters, not bytes: 130 two-byte characters keep 120.
        let long = format!("SELECT '{}'", "é".repeat(130));
        let s = summary(&long, &rows);
        let head: String = long.chars().take(120).collect();
        assert_eq!(s, format!("{head}… -> 3 rows"));

        let failed = StatementResult {
            error: Some(serde_json::json!({"sqlstate": "42P01", "message": "no table"})),
            ..Default::default()
        };
        assert_eq!(
            summary("DROP TABLE t", &failed),
            "DROP TABLE t -> error 42P01"
        );
        let refused = StatementResult {
            not_executed: Some("denied".into()),
            ..Default::default()
        };
        assert_eq!(
            summary("DROP TABLE t", &refused),
            "DROP TABLE t -> not executed"
        );
    }
}
