//! `gatehouse sessions list|show|replay|export`: the audit trail through a
//! gateway's admin API, as the caller (an admin or auditor). Tables by
//! default, `--json` for scripts; `replay` prints the transcript
//! `gatehouse audit replay` prints, `export` streams JSON lines.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use gatehouse::audit::timestamp::format_ms;

use super::gateway::{Gateway, RemoteArgs};
use super::table::Table;

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// Search sessions, newest first.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Sessions per page (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page (the cursor it printed).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One session and all its events.
    Show { id: String },
    /// The session as a readable transcript (statements or requests in
    /// order, with decisions, results, masks, errors and timing).
    Replay { id: String },
    /// The session and its events as JSON lines, streamed to stdout.
    Export { id: String },
}

/// Search filters; times are epoch ms, RFC 3339, a date, or a span back
/// from now (`15m`, `2h`, `7d`).
#[derive(Args)]
pub struct Filters {
    /// The caller's subject, exactly.
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    connection: Option<String>,
    /// http, postgres, ...
    #[arg(long)]
    protocol: Option<String>,
    /// Open at or after this time.
    #[arg(long)]
    from: Option<String>,
    /// Open before this time.
    #[arg(long)]
    to: Option<String>,
    /// With an event of this verdict (comma-separated: allow, deny, error, ...).
    #[arg(long)]
    verdict: Option<String>,
    /// With an event of this kind (comma-separated: http.exchange, pg.statement, ...).
    #[arg(long)]
    kind: Option<String>,
    /// With an event whose statement, request or recorded detail contains this text.
    #[arg(long)]
    text: Option<String>,
}

impl Filters {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("principal", &self.principal),
            ("connection", &self.connection),
            ("protocol", &self.protocol),
            ("from", &self.from),
            ("to", &self.to),
            ("verdict", &self.verdict),
            ("kind", &self.kind),
            ("q", &self.text),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

pub async fn run(remote: RemoteArgs, command: SessionsCommand) -> anyhow::Result<ExitCode> {
    let (gateway, token) = remote.connect().await?;
    let mut out = super::terminal::TerminalSafe::new(std::io::stdout().lock());
    match command {
        SessionsCommand::List {
            filters,
            limit,
            cursor,
        } => {
            let limit = limit.to_string();
            let mut pairs = filters.pairs();
            pairs.push(("limit", &limit));
            if let Some(c) = &cursor {
                pairs.push(("cursor", c));
            }
            let path = format!("/v1/sessions?{}", query(&pairs));
            let page = gateway
                .call(Method::GET, &path, &token, None, "listing sessions")
                .await?;
            if remote.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&page)?)?;
            } else {
                let mut t = Table::new(&[
                    "ID",
                    "STARTED",
                    "CONNECTION",
                    "PROTOCOL",
                    "PRINCIPAL",
                    "EVENTS",
                    "CLIENT",
                ]);
                for s in items(&page, "sessions") {
                    t.row(vec![
                        text(&s["id"]),
                        time(&s["started_at_ms"]),
                        text(&s["connection"]),
                        text(&s["protocol"]),
                        text(&s["principal_subject"]),
                        s["event_count"].to_string(),
                        text(&s["client_addr"]),
                    ]);
                }
                if t.is_empty() {
                    eprintln!("no sessions match");
                } else {
                    t.write(&mut out)?;
                }
            }
            if let Some(next) = page["next_cursor"].as_str() {
                eprintln!("more sessions: run again with --cursor {next}");
            }
        }
        SessionsCommand::Show { id } => {
            let id = session_id(&id)?;
            let (session, events) = whole_session(&gateway, &token, id).await?;
            if remote.json {
                let v = serde_json::json!({"session": session, "events": events});
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                write_session(&mut out, &session, &events)?;
            }
        }
        SessionsCommand::Replay { id } => {
            let id = session_id(&id)?;
            let accept = if remote.json {
                "application/json"
            } else {
                "text/plain"
            };
            let resp = gateway
                .get_raw(
                    &format!("/v1/sessions/{id}/replay"),
                    &token,
                    accept,
                    &format!("replaying session {id}"),
                )
                .await?;
            let body = resp.text().await.context("reading the transcript")?;
            if remote.json {
                let v: Value =
                    serde_json::from_str(&body).context("the gateway's transcript was not JSON")?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                out.write_all(body.as_bytes())?;
            }
        }
        SessionsCommand::Export { id } => {
            let id = session_id(&id)?;
            let mut resp = gateway
                .get_raw(
                    &format!("/v1/sessions/{id}/export"),
                    &token,
                    "application/x-ndjson",
                    &format!("exporting session {id}"),
                )
                .await?;
            while let Some(chunk) = resp
                .chunk()
                .await
                .with_context(|| format!("the export of session {id} was cut off"))?
            {
                out.write_all(&chunk)?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The session and every event, following the pages.
async fn whole_session(
    gateway: &Gateway,
    token: &str,
    id: &str,
) -> anyhow::Result<(Value, Vec<Value>)> {
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/sessions/{id}?limit=1000");
        if let Some(c) = &cursor {
            path.push('&');
            path.push_str(&query(&[("cursor", c)]));
        }
        let page = gateway
            .call(
                Method::GET,
                &path,
                token,
                None,
                &format!("reading session {id}"),
            )
            .await?;
        events.extend(items(&page, "events").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok((page["session"].clone(), events)),
        }
    }
}

fn write_session(out: &mut impl Write, s: &Value, events: &[Value]) -> std::io::Result<()> {
    writeln!(
        out,
        "session {} on {} ({}) from {}",
        text(&s["id"]),
        text(&s["connection"]),
        text(&s["protocol"]),
        text(&s["client_addr"])
    )?;
    let p = &s["principal"];
    let principal = if p.is_null() {
        "-".to_string()
    } else {
        let groups: Vec<&str> = p["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let acting = p["acting_for"]
            .as_str()
            .map(|a| format!(" acting for {a}"))
            .unwrap_or_default();
        format!(
            "{} ({}) [{}]{acting}",
            text(&p["subject"]),
            text(&p["kind"]),
            groups.join(",")
        )
    };
    writeln!(out, "principal {principal}")?;
    let ended = match s["ended_at_ms"].as_i64() {
        Some(_) => time(&s["ended_at_ms"]),
        None => "(open)".into(),
    };
    writeln!(out, "started {}  ended {ended}", time(&s["started_at_ms"]))?;
    writeln!(out)?;
    let mut t = Table::new(&["SEQ", "TIME", "VERDICT", "KIND", "SUMMARY"]);
    for e in events {
        t.row(vec![
            e["seq"].to_string(),
            time(&e["at_ms"]),
            text(&e["verdict"]),
            text(&e["kind"]),
            text(&e["summary"]),
        ]);
    }
    t.write(out)
}

fn items<'a>(page: &'a Value, key: &str) -> &'a [Value] {
    page[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

fn time(v: &Value) -> String {
    v.as_i64().map(format_ms).unwrap_or_else(|| "-".into())
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Session ids are UUIDs; anything else is a typo, not a path to send.
fn session_id(id: &str) -> anyhow::Result<&str> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("{id:?} is not a session id (`gatehouse sessions list` shows them)");
    }
    Ok(id)
}
