//! `gatehouse audit sessions|show|replay|export|verify`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use gatehouse::audit::AuditStore;
use gatehouse::audit::replay::Transcript;
use gatehouse::audit::store::SessionFilter;
use gatehouse::audit::timestamp::format_ms as fmt_ms;
use gatehouse::config::Config;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List recent sessions.
    Sessions {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Print one session and its events, with every decision.
    Show { session: String },
    /// Replay a session as a readable transcript: statements or requests in
    /// order, with decisions, results, masks, errors and timing.
    Replay { session: String },
    /// Export sessions and events.
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// One session only.
        #[arg(long)]
        session: Option<String>,
    },
    /// Check the hash chains; exits non-zero when any is broken.
    Verify { session: Option<String> },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
}

pub async fn run(config: &Config, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = AuditStore::connect(&config.audit.database).await?;
    let mut out = super::terminal::TerminalSafe::new(std::io::stdout().lock());
    match command {
        AuditCommand::Sessions {
            principal,
            connection,
            limit,
        } => {
            let filter = SessionFilter {
                principal,
                connection,
                since_ms: None,
                limit,
            };
            for s in store.sessions(&filter).await? {
                writeln!(
                    out,
                    "{}  {}  {:<12} {:<20} {} events  {}",
                    s.id,
                    fmt_ms(s.started_at_ms),
                    s.connection,
                    s.principal_subject.as_deref().unwrap_or("-"),
                    s.event_count,
                    s.client_addr
                )?;
            }
        }
        AuditCommand::Show { session } => {
            let Some(s) = store.session(&session).await? else {
                anyhow::bail!("no session {session}");
            };
            writeln!(
                out,
                "session {} on {} ({}) from {}",
                s.id, s.connection, s.protocol, s.client_addr
            )?;
            writeln!(
                out,
                "principal {}",
                s.principal
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into())
            )?;
            for e in store.events(&session).await? {
                writeln!(
                    out,
                    "#{} {} [{}] {} {}",
                    e.seq,
                    fmt_ms(e.at_ms),
                    e.verdict,
                    e.kind,
                    e.summary
                )?;
                if let Some(decisions) = e.detail.get("decisions") {
                    for phase in ["request", "response", "query"] {
                        let Some(list) = decisions
                            .get(phase)
                            .and_then(|d| d.get("decisions"))
                            .and_then(|d| d.as_array())
                        else {
                            continue;
                        };
                        for d in list {
                            writeln!(
                                out,
                                "    {phase}: {} {} -> {}{}",
                                d["policy"].as_str().unwrap_or("?"),
                                d["version"].as_str().unwrap_or(""),
                                d["outcome"].as_str().unwrap_or("?"),
                                d.get("reason")
                                    .and_then(|r| r.as_str())
                                    .map(|r| format!(" ({r})"))
                                    .unwrap_or_default()
                            )?;
                        }
                    }
                }
                if let Some(body) = e
                    .detail
                    .pointer("/response/body/body")
                    .and_then(|b| b.as_str())
                    .filter(|b| !b.is_empty())
                {
                    let shown: String = body.chars().take(400).collect();
                    writeln!(out, "    response: {shown}")?;
                }
            }
        }
        AuditCommand::Replay { session } => {
            let Some(s) = store.session(&session).await? else {
                anyhow::bail!("no session {session}; `gatehouse audit sessions` lists them");
            };
            let events = store.events(&session).await?;
            Transcript::new(&s, &events).write_text(&mut out)?;
        }
        AuditCommand::Export {
            format: ExportFormat::Jsonl,
            session,
        } => {
            let ids = match session {
                Some(s) => vec![s],
                None => store.session_ids().await?,
            };
            for id in ids {
                let Some(s) = store.session(&id).await? else {
                    continue;
                };
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"type": "session", "session": s})
                )?;
                for e in store.events(&id).await? {
                    writeln!(out, "{}", serde_json::json!({"type": "event", "event": e}))?;
                }
            }
        }
        AuditCommand::Verify { session } => {
            let ids = match session {
                Some(s) => vec![s],
                None => store.session_ids().await?,
            };
            let mut broken = 0;
            let mut events = 0;
            for id in &ids {
                let r = store.verify_session(id).await?;
                events += r.events;
                if let Some(p) = &r.problem {
                    broken += 1;
                    writeln!(out, "BROKEN {id}: {p}")?;
                }
            }
            writeln!(
                out,
                "{} sessions, {events} events checked, {broken} broken",
                ids.len()
            )?;
            if broken > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
