//! `gatehouse approvals list|show|approve|deny`: requests held for a person,
//! through a gateway's admin API as the caller. The gateway applies the
//! rules (approver groups, never one's own request, a reason to deny).

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use gatehouse::audit::timestamp::format_ms;

use super::gateway::RemoteArgs;
use super::table::Table;

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// Requests held for a decision (newest first).
    List {
        /// waiting (the default), approved, denied, timed_out, abandoned or all.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// One approval: who asked, the exact request, the policy's reason,
    /// who may decide, and the decisions so far.
    Show { id: String },
    /// Approve a held request.
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a held request; the requester is told the reason.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(remote: RemoteArgs, command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let (gateway, token) = remote.connect().await?;
    let mut out = super::terminal::TerminalSafe::new(std::io::stdout().lock());
    match command {
        ApprovalsCommand::List { status, limit } => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = &status {
                q.append_pair("status", s);
            }
            if let Some(l) = limit {
                q.append_pair("limit", &l.to_string());
            }
            let q = q.finish();
            let path = if q.is_empty() {
                "/v1/approvals".to_string()
            } else {
                format!("/v1/approvals?{q}")
            };
            let list = gateway
                .call(Method::GET, &path, &token, None, "listing approvals")
                .await?;
            if remote.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let approvals = list["approvals"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if approvals.is_empty() {
                eprintln!("no approvals {}", status.as_deref().unwrap_or("waiting"));
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&[
                "ID",
                "STATUS",
                "CREATED",
                "CONNECTION",
                "REQUESTER",
                "POLICY",
                "APPROVERS",
                "REQUEST",
            ]);
            for a in approvals {
                t.row(vec![
                    text(&a["id"]),
                    a["status"].as_str().unwrap_or("waiting").to_string(),
                    a["created_at_ms"]
                        .as_i64()
                        .map(format_ms)
                        .unwrap_or_else(|| "-".into()),
                    text(&a["connection"]),
                    requester(&a["requester"]),
                    text(&a["policy"]),
                    list_of(&a["approver_groups"]),
                    request_line(&a["request"]),
                ]);
            }
            t.write(&mut out)?;
        }
        ApprovalsCommand::Show { id } => {
            let id = approval_id(&id)?;
            let a = gateway
                .call(
                    Method::GET,
                    &format!("/v1/approvals/{id}"),
                    &token,
                    None,
                    &format!("reading approval {id}"),
                )
                .await?;
            if remote.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&a)?)?;
            } else {
                write_approval(&mut out, &a)?;
            }
        }
        ApprovalsCommand::Approve { id, reason } => {
            let id = approval_id(&id)?;
            let body = reason.map(|r| json!({ "reason": r }));
            let done = gateway
                .call(
                    Method::POST,
                    &format!("/v1/approvals/{id}/approve"),
                    &token,
                    body.as_ref(),
                    &format!("approving {id}"),
                )
                .await?;
            report(&mut out, remote.json, id, "approved", &done)?;
        }
        ApprovalsCommand::Deny { id, reason } => {
            let id = approval_id(&id)?;
            if reason.trim().is_empty() {
                bail!("--reason: say why; the requester is told");
            }
            let done = gateway
                .call(
                    Method::POST,
                    &format!("/v1/approvals/{id}/deny"),
                    &token,
                    Some(&json!({ "reason": reason })),
                    &format!("denying {id}"),
                )
                .await?;
            report(&mut out, remote.json, id, "denied", &done)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    out: &mut impl Write,
    json: bool,
    id: &str,
    what: &str,
    done: &Value,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(done)?)?;
        return Ok(());
    }
    let mut line = format!("{what} {id}");
    if let Some(by) = done["by"].as_str() {
        line.push_str(&format!(" as {by}"));
    }
    if let (Some(n), Some(min)) = (done["approvals"].as_u64(), done["min_approvals"].as_u64()) {
        line.push_str(&format!(" ({n} of {min} approvals)"));
    }
    if let Some(status) = done["status"].as_str() {
        line.push_str(&format!("; the request is now {status}"));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

fn write_approval(out: &mut impl Write, a: &Value) -> std::io::Result<()> {
    let field = |out: &mut dyn Write, name: &str, v: String| writeln!(out, "{name:<11}{v}");
    field(out, "id", text(&a["id"]))?;
    field(
        out,
        "status",
        a["status"].as_str().unwrap_or("waiting").into(),
    )?;
    field(
        out,
        "connection",
        format!("{} ({})", text(&a["connection"]), text(&a["protocol"])),
    )?;
    field(out, "session", text(&a["session_id"]))?;
    field(out, "requester", requester(&a["requester"]))?;
    field(
        out,
        "policy",
        format!("{}: {}", text(&a["policy"]), text(&a["reason"])),
    )?;
    field(out, "approvers", list_of(&a["approver_groups"]))?;
    if let Some(c) = a["created_at_ms"].as_i64() {
        field(out, "created", format_ms(c))?;
    }
    if let Some(e) = a["expires_at_ms"].as_i64() {
        field(out, "expires", format_ms(e))?;
    }
    if let Some(r) = a["status_reason"].as_str() {
        field(out, "outcome", r.to_string())?;
    }
    for d in a["decisions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let reason = d["reason"]
            .as_str()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        field(
            out,
            "decision",
            format!(
                "{} by {}{reason}",
                text(&d["decision"]),
                text(&d["approver"]["subject"])
            ),
        )?;
    }
    writeln!(out, "request")?;
    let pretty = serde_json::to_string_pretty(&a["request"]).unwrap_or_default();
    for l in pretty.lines() {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}

fn requester(p: &Value) -> String {
    let who = text(&p["subject"]);
    match p["acting_for"].as_str() {
        Some(h) => format!("{who} (for {h})"),
        None => who,
    }
}

/// The request in one line: a statement, or an HTTP request line.
fn request_line(r: &Value) -> String {
    if let Some(sql) = r["sql"].as_str() {
        return sql.to_string();
    }
    match (r["method"].as_str(), r["target"].as_str()) {
        (Some(m), Some(t)) => format!("{m} {t}"),
        _ => r.to_string(),
    }
}

fn list_of(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

/// Approval ids are UUIDs; anything else is a typo, not a path to send.
fn approval_id(id: &str) -> anyhow::Result<&str> {
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("{id:?} is not an approval id (`gatehouse approvals list` shows them)");
    }
    Ok(id)
}
