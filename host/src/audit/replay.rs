//! A session as a transcript a person can read top to bottom: what was
//! sent, what each policy decided, what came back (row counts, masked
//! columns, errors) and when. `gatehouse audit replay` prints it, and the
//! admin API serves it as text or as JSON steps; both come from here, so
//! they say the same thing.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::{StoredEvent, StoredSession};

#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub session: StoredSession,
    /// Who called: `subject (kind) [groups] acting for X`, or `unauthenticated`.
    pub caller: String,
    pub steps: Vec<Step>,
    /// The closing line: how long the session lasted, or that it is open.
    pub end: String,
}

/// One event in the transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub seq: i64,
    pub at_ms: i64,
    /// Milliseconds since the session started.
    pub offset_ms: i64,
    pub kind: String,
    pub verdict: String,
    /// What happened; a statement keeps its own line breaks.
    pub text: String,
    /// What followed from it: parameters, the decision, rows, masks, errors, time.
    pub notes: Vec<String>,
}

impl Transcript {
    pub fn new(session: &StoredSession, events: &[StoredEvent]) -> Transcript {
        let start = session.started_at_ms;
        let mut prompt = format!("{}=>", session.connection);
        let steps = events
            .iter()
            .map(|e| {
                let (text, notes) = describe(e, &mut prompt);
                Step {
                    seq: e.seq,
                    at_ms: e.at_ms,
                    offset_ms: e.at_ms - start,
                    kind: e.kind.clone(),
                    verdict: e.verdict.clone(),
                    text,
                    notes,
                }
            })
            .collect();
        let end = match session.ended_at_ms {
            Some(end) => format!("session ended after {:.3}s", (end - start) as f64 / 1000.0),
            None => "session still open (or the gateway stopped before recording its end)".into(),
        };
        Transcript {
            session: session.clone(),
            caller: caller(session.principal.as_ref()),
            steps,
            end,
        }
    }

    pub fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let s = &self.session;
        writeln!(
            out,
            "-- session {} on {} ({}) from {}",
            s.id, s.connection, s.protocol, s.client_addr
        )?;
        writeln!(out, "-- caller {}", self.caller)?;
        for step in &self.steps {
            let t = format!("[+{:>8.3}s]", step.offset_ms as f64 / 1000.0);
            let mut lines = step.text.lines();
            let first = lines.next().unwrap_or("");
            writeln!(out, "{t} {first}")?;
            // Continuation lines line up under the statement, after its prompt.
            let indent = t.len() + 1 + first.find(' ').map_or(0, |i| i + 1);
            for l in lines {
                writeln!(out, "{:>indent$}{l}", "")?;
            }
            for n in &step.notes {
                writeln!(out, "    -- {n}")?;
            }
        }
        writeln!(out, "-- {}", self.end)
    }

    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_text(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn caller(principal: Option<&Value>) -> String {
    let Some(p) = principal else {
        return "unauthenticated".into();
    };
    let groups = p["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let acting = p["acting_for"]
        .as_str()
        .map(|a| format!(" acting for {a}"))
        .unwrap_or_default();
    format!(
        "{} ({}) [{groups}]{acting}",
        p["subject"].as_str().unwrap_or("?"),
        p["kind"].as_str().unwrap_or("?")
    )
}

/// The step's text and notes; `prompt` follows the database a PostgreSQL
/// session connected to.
fn describe(e: &StoredEvent, prompt: &mut String) -> (String, Vec<String>) {
    match e.kind.as_str() {
        "pg.connect" => {
            let db = e.detail["database"].as_str().unwrap_or("?");
            *prompt = format!("{db}=>");
            let text = match e.detail.get("error").filter(|v| !v.is_null()) {
                None => format!("-- connected to database {db}"),
                Some(err) => format!("-- connection to {db} failed: {}", error_text(err)),
            };
            (text, vec![])
        }
        "pg.statement" => statement(prompt, e),
        "auth.refused" => (
            format!(
                "-- refused: {}",
                e.detail["error"]["message"]
                    .as_str()
                    .or(e.detail["error"].as_str())
                    .unwrap_or(&e.summary)
            ),
            vec![],
        ),
        // How a held request was settled; its statement follows.
        "approval" => (format!("-- {}", e.summary), vec![]),
        "http.exchange" => (
            format!("[{}] {} {}", e.verdict, e.kind, e.summary),
            http_notes(&e.detail),
        ),
        "stream.frames" => (format!("-- {}", e.summary), stream_notes(&e.detail)),
        _ => (format!("[{}] {} {}", e.verdict, e.kind, e.summary), vec![]),
    }
}

fn statement(prompt: &str, e: &StoredEvent) -> (String, Vec<String>) {
    let d = &e.detail;
    let sql = d["sql"].as_str().unwrap_or("");
    let text = format!("{prompt} {sql}");
    let mut notes = Vec::new();
    if let Some(params) = d["parameters"].as_array().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, p)| match p.as_str() {
                Some(s) => format!("${} = '{}'", i + 1, s.replace('\'', "''")),
                None => format!("${} = NULL", i + 1),
            })
            .collect();
        notes.push(shown.join(", "));
    }
    let query = &d["decisions"]["query"];
    let outcome = match query["verdict"].as_str() {
        Some("deny") => format!(
            "DENIED by {}: {}",
            query["policy"].as_str().unwrap_or("?"),
            query["reason"].as_str().unwrap_or("")
        ),
        Some("require_approval") => format!(
            "HELD for approval by {}: {}",
            query["policy"].as_str().unwrap_or("?"),
            query["approval"]["reason"].as_str().unwrap_or("")
        ),
        _ => "allowed".to_string(),
    };
    let mut facts = vec![outcome];
    if let Some(approval) = d.get("approval").filter(|a| !a.is_null()) {
        facts.push(format!(
            "approval {}: {}",
            approval["id"].as_str().unwrap_or("?"),
            approval["outcome"]["outcome"]
                .as_str()
                .or(approval["outcome"].as_str())
                .unwrap_or("?")
        ));
    }
    if let Some(reason) = d["not_executed"].as_str() {
        facts.push(format!("not executed ({reason})"));
    } else {
        let tags: Vec<&str> = d["command_tags"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        facts.push(format!("{} rows", d["rows"].as_u64().unwrap_or(0)));
        if !tags.is_empty() {
            facts.push(tags.join(", "));
        }
    }
    if let Some(cols) = d["masked_columns"].as_array().filter(|c| !c.is_empty()) {
        let names: Vec<&str> = cols.iter().filter_map(Value::as_str).collect();
        facts.push(format!("masked: {}", names.join(", ")));
    }
    if let Some(n) = d["masked_values"].as_u64().filter(|n| *n > 0) {
        facts.push(format!("{n} values masked"));
    }
    if let Some(err) = d.get("error").filter(|v| !v.is_null()) {
        facts.push(format!("ERROR {}", error_text(err)));
    }
    if let Some(us) = d["duration_us"].as_u64() {
        facts.push(format!("{:.1} ms", us as f64 / 1000.0));
    }
    notes.push(facts.join(" · "));
    (text, notes)
}

/// A refused or failed HTTP exchange says who refused it and why.
fn http_notes(d: &Value) -> Vec<String> {
    let mut notes = Vec::new();
    for phase in ["request", "response"] {
        let decision = &d["decisions"][phase];
        if decision["verdict"].as_str() == Some("deny") {
            notes.push(format!(
                "{phase} DENIED by {}: {}",
                decision["policy"].as_str().unwrap_or("?"),
                decision["reason"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(err) = d.get("error").filter(|v| !v.is_null()) {
        notes.push(format!(
            "ERROR {}",
            err["message"].as_str().unwrap_or(&err.to_string())
        ));
    }
    if let Some(us) = d["duration_us"].as_u64() {
        notes.push(format!("{:.1} ms", us as f64 / 1000.0));
    }
    notes
}

/// The frames of an upgraded stream, one line each with its time since
/// the stream opened: `+0.012s stdout: total 0`.
fn stream_notes(d: &Value) -> Vec<String> {
    let mut notes: Vec<String> = d["frames"]
        .as_array()
        .map(|frames| {
            frames
                .iter()
                .map(|f| {
                    let t = f["t_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
                    let arrow = if f["dir"] == "in" { ">" } else { "<" };
                    let channel = f["channel"].as_str().unwrap_or("?");
                    match f["data"].as_str() {
                        Some(data) => {
                            format!("+{t:.3}s {arrow} {channel}: {}", data.escape_debug())
                        }
                        None => format!(
                            "+{t:.3}s {arrow} {channel}: ({} bytes, over the recording limit)",
                            f["bytes"].as_u64().unwrap_or(0)
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let end = &d["end"];
    if end.is_object() {
        let mut facts = vec![format!(
            "closed by {} after {:.3}s",
            end["closed_by"].as_str().unwrap_or("?"),
            end["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
        )];
        if let Some(status) = end["status"]["status"].as_str() {
            facts.push(match end["status"]["message"].as_str() {
                Some(m) => format!("{status}: {m}"),
                None => status.to_string(),
            });
        }
        facts.push(format!(
            "{} bytes in, {} bytes out",
            end["bytes_in"].as_u64().unwrap_or(0),
            end["bytes_out"].as_u64().unwrap_or(0)
        ));
        if end["truncated"].as_bool() == Some(true) {
            facts.push("recording limit reached".into());
        }
        // A port-forward's ports, and a transport other than WebSocket.
        for p in end["ports"].as_array().into_iter().flatten() {
            facts.push(format!(
                "port {}: {} connections, {} bytes in, {} bytes out",
                p["port"].as_str().unwrap_or("?"),
                p["connections"].as_u64().unwrap_or(0),
                p["bytes_in"].as_u64().unwrap_or(0),
                p["bytes_out"].as_u64().unwrap_or(0)
            ));
        }
        if let Some(t) = end["transport"].as_str().filter(|t| *t != "websocket") {
            facts.push(format!("over {t}"));
        }
        if let Some(err) = end["error"].as_str() {
            facts.push(format!("ERROR {err}"));
        }
        notes.push(facts.join(" · "));
    }
    notes
}

fn error_text(err: &Value) -> String {
    format!(
        "{} {}",
        err["sqlstate"].as_str().unwrap_or(""),
        err["message"].as_str().unwrap_or("")
    )
    .trim()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: i64, kind: &str, verdict: &str, summary: &str, detail: Value) -> StoredEvent {
        StoredEvent {
            session_id: "s1".into(),
            seq,
            at_ms: 1_000 + seq * 250,
            kind: kind.into(),
            principal_subject: "bot".into(),
            verdict: verdict.into(),
            summary: summary.into(),
            detail_text: detail.to_string(),
            detail,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// A one-event session on a Kubernetes connection.
    fn kubernetes_session(id: &str) -> StoredSession {
        StoredSession {
            id: id.into(),
            connection: "cluster".into(),
            protocol: "kubernetes".into(),
            client_addr: "127.0.0.1:5001".into(),
            principal_subject: Some("bot".into()),
            principal: None,
            started_at_ms: 1_000,
            ended_at_ms: None,
            event_count: 1,
        }
    }

    #[test]
    fn an_exec_stream_replays_frame_by_frame() {
        let session = kubernetes_session("s2");
        let events = [event(
            1,
            "stream.frames",
            "allow",
            "exec default/web: cat (part 1)",
            json!({"frames": [
                {"t_ms": 5, "dir": "in", "channel": "stdin", "bytes": 3, "data": "hi\n"},
                {"t_ms": 7, "dir": "out", "channel": "stdout", "bytes": 3, "data": "hi\n"},
                {"t_ms": 9, "dir": "out", "channel": "stdout", "bytes": 9000}],
                "end": {"closed_by": "upstream", "duration_ms": 20, "bytes_in": 3, "bytes_out": 9003,
                        "truncated": true, "status": {"status": "Success"}}}),
        )];
        let text = Transcript::new(&session, &events).to_text();
        assert!(
            text.contains(
                "[+   0.250s] -- exec default/web: cat (part 1)
    -- +0.005s > stdin: hi\\n
    -- +0.007s < stdout: hi\\n
    -- +0.009s < stdout: (9000 bytes, over the recording limit)
    -- closed by upstream after 0.020s · Success · 3 bytes in, 9003 bytes out · recording limit reached
"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_port_forward_replays_its_ports() {
        let session = kubernetes_session("s3");
        let events = [event(
            1,
            "stream.frames",
            "allow",
            "portforward default/db (part 1, end)",
            json!({"frames": [
                {"t_ms": 5, "dir": "in", "channel": "portforward", "bytes": 30,
                 "data": "port 5432: connection 0 opened"}],
                "end": {"closed_by": "client", "duration_ms": 900, "bytes_in": 120, "bytes_out": 4000,
                        "truncated": false, "transport": "spdy",
                        "ports": [{"port": "5432", "connections": 1, "bytes_in": 120, "bytes_out": 4000}]}}),
        )];
        let text = Transcript::new(&session, &events).to_text();
        assert!(
            text.contains(
                "    -- +0.005s > portforward: port 5432: connection 0 opened
    -- closed by client after 0.900s · 120 bytes in, 4000 bytes out · port 5432: 1 connections, 120 bytes in, 4000 bytes out · over spdy
"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_postgres_session_reads_like_a_psql_transcript() {
        let session = StoredSession {
            id: "s1".into(),
            connection: "shop".into(),
            protocol: "postgres".into(),
            client_addr: "127.0.0.1:5000".into(),
            principal_subject: Some("bot".into()),
            principal: Some(
                json!({"subject": "bot", "kind": "agent", "groups": ["dev", "ops"], "acting_for": "alice"}),
            ),
            started_at_ms: 1_000,
            ended_at_ms: Some(3_500),
            event_count: 3,
        };
        let events = [
            event(1, "pg.connect", "allow", "", json!({"database": "shop"})),
            event(
                2,
                "pg.statement",
                "allow",
                "",
                json!({"sql": "SELECT email\nFROM customers WHERE id = $1", "parameters": ["it's"],
                       "decisions": {"query": {"verdict": "allow"}}, "rows": 1,
                       "command_tags": ["SELECT 1"], "masked_columns": ["email"], "duration_us": 1500}),
            ),
            event(
                3,
                "pg.statement",
                "deny",
                "",
                json!({"sql": "DROP TABLE customers", "decisions": {"query": {"verdict": "deny",
                       "policy": "sql-guard", "reason": "schema changes need a DBA"}},
                       "not_executed": "denied"}),
            ),
        ];
        let t = Transcript::new(&session, &events);
        assert_eq!(t.steps[1].offset_ms, 500);
        assert_eq!(
            t.to_text(),
            "-- session s1 on shop (postgres) from 127.0.0.1:5000
-- caller bot (agent) [dev,ops] acting for alice
[+   0.250s] -- connected to database shop
[+   0.500s] shop=> SELECT email
                    FROM customers WHERE id = $1
    -- $1 = 'it''s'
    -- allowed · 1 rows · SELECT 1 · masked: email · 1.5 ms
[+   0.750s] shop=> DROP TABLE customers
    -- DENIED by sql-guard: schema changes need a DBA · not executed (denied)
-- session ended after 2.500s
"
        );
    }
}
