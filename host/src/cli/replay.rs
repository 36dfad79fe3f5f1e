//! `gatehouse audit replay SESSION`: a session as a transcript a person can
//! read top to bottom — what was sent, what each policy decided, what came
//! back (row counts, masked columns, errors) and when.

use std::io::Write;

use serde_json::Value;

use gatehouse::audit::{StoredEvent, StoredSession};

pub fn write_transcript(
    out: &mut impl Write,
    session: &StoredSession,
    events: &[StoredEvent],
) -> std::io::Result<()> {
    let who = session
        .principal
        .as_ref()
        .map(|p| {
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
        })
        .unwrap_or_else(|| "unauthenticated".into());
    writeln!(
        out,
        "-- session {} on {} ({}) from {}",
        session.id, session.connection, session.protocol, session.client_addr
    )?;
    writeln!(out, "-- caller {who}")?;
    let start = session.started_at_ms;
    let mut prompt = format!("{}=>", session.connection);
    for e in events {
        let t = format!("[+{:>8.3}s]", (e.at_ms - start) as f64 / 1000.0);
        match e.kind.as_str() {
            "pg.connect" => {
                let db = e.detail["database"].as_str().unwrap_or("?");
                prompt = format!("{db}=>");
                match e.detail.get("error").filter(|v| !v.is_null()) {
                    None => writeln!(out, "{t} -- connected to database {db}")?,
                    Some(err) => {
                        writeln!(out, "{t} -- connection to {db} failed: {}", error_text(err))?
                    }
                }
            }
            "pg.statement" => write_statement(out, &t, &prompt, e)?,
            "auth.refused" => writeln!(
                out,
                "{t} -- refused: {}",
                e.detail["error"]["message"]
                    .as_str()
                    .or(e.detail["error"].as_str())
                    .unwrap_or(&e.summary)
            )?,
            _ => writeln!(out, "{t} [{}] {} {}", e.verdict, e.kind, e.summary)?,
        }
    }
    match session.ended_at_ms {
        Some(end) => writeln!(
            out,
            "-- session ended after {:.3}s",
            (end - start) as f64 / 1000.0
        ),
        None => writeln!(
            out,
            "-- session still open (or the gateway stopped before recording its end)"
        ),
    }
}

fn write_statement(
    out: &mut impl Write,
    t: &str,
    prompt: &str,
    e: &StoredEvent,
) -> std::io::Result<()> {
    let d = &e.detail;
    let sql = d["sql"].as_str().unwrap_or("");
    let mut lines = sql.lines();
    writeln!(out, "{t} {prompt} {}", lines.next().unwrap_or(""))?;
    for l in lines {
        writeln!(out, "{:>w$} {l}", "", w = t.len() + prompt.len() + 1)?;
    }
    if let Some(params) = d["parameters"].as_array().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params
            .iter()
            .enumerate()
            .map(|(i, p)| match p.as_str() {
                Some(s) => format!("${} = '{}'", i + 1, s.replace('\'', "''")),
                None => format!("${} = NULL", i + 1),
            })
            .collect();
        writeln!(out, "    -- {}", shown.join(", "))?;
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
            approval["outcome"].as_str().unwrap_or("?")
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
    writeln!(out, "    -- {}", facts.join(" · "))
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
