//! Notifications of new and decided approvals, posted to a configured
//! webhook as JSON or as a Slack incoming-webhook message with approve/deny
//! links to the console. The data path only queues: one background task
//! delivers, retrying with exponential backoff up to `max_attempts`; when
//! the bounded queue is full a message is dropped (and logged), so a slow,
//! failing or absent receiver never holds a request up.
//!
//! The URL may hold a secret (Slack's do): it is never logged, and delivery
//! errors are logged without it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::{ApprovalRecord, ApprovalStatus};
use crate::config::{WebhookConfig, WebhookFormat};

/// Messages waiting for delivery before new ones are dropped.
const QUEUE: usize = 1024;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How much of a request a Slack message quotes.
const QUOTE_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created,
    Decided,
}

impl Kind {
    pub fn event(self) -> &'static str {
        match self {
            Kind::Created => "approval.created",
            Kind::Decided => "approval.decided",
        }
    }
}

pub struct Webhook {
    tx: mpsc::Sender<Value>,
    format: WebhookFormat,
    console_url: Option<String>,
    /// Messages queued or being delivered, for [`Webhook::drain`].
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Webhook {
    /// Starts the delivery task. It runs until the webhook is dropped.
    pub fn start(config: &WebhookConfig) -> Result<Self, String> {
        let url = config
            .resolve_url()
            .map_err(|e| format!("approvals.webhook.url: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("approvals.webhook: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Notify::new());
        tokio::spawn(deliver_all(
            rx,
            client,
            url,
            config.max_attempts,
            pending.clone(),
            idle.clone(),
        ));
        Ok(Self {
            tx,
            format: config.format,
            console_url: config
                .console_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            pending,
            idle,
        })
    }

    /// Queues a message; never waits.
    pub fn send(&self, kind: Kind, record: &ApprovalRecord) {
        let body = payload(self.format, kind, record, self.console_url.as_deref());
        self.pending.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.tx.try_send(body) {
            self.done();
            tracing::warn!(approval = %record.info.id, event = kind.event(), reason = %e, "approval webhook message dropped");
        }
    }

    /// Waits, at most `max`, until every queued message was delivered or given up.
    pub async fn drain(&self, max: Duration) {
        let _ = tokio::time::timeout(max, async {
            while self.pending.load(Ordering::SeqCst) > 0 {
                let idle = self.idle.notified();
                if self.pending.load(Ordering::SeqCst) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
    }

    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

async fn deliver_all(
    mut rx: mpsc::Receiver<Value>,
    client: reqwest::Client,
    url: String,
    max_attempts: u32,
    pending: Arc<AtomicUsize>,
    idle: Arc<Notify>,
) {
    while let Some(body) = rx.recv().await {
        deliver(&client, &url, &body, max_attempts).await;
        if pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            idle.notify_waiters();
        }
    }
}

/// One message, tried up to `max_attempts` times. A 4xx other than 408 and
/// 429 is the receiver refusing the message; trying again would not help.
async fn deliver(client: &reqwest::Client, url: &str, body: &Value, max_attempts: u32) -> bool {
    let event = body["event"]
        .as_str()
        .unwrap_or("slack message")
        .to_string();
    for attempt in 1..=max_attempts.max(1) {
        let problem = match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(event, attempt, "approval webhook delivered");
                return true;
            }
            Ok(r) if r.status().is_client_error() && !matches!(r.status().as_u16(), 408 | 429) => {
                tracing::warn!(
                    event,
                    status = r.status().as_u16(),
                    "approval webhook refused the message; not retrying"
                );
                return false;
            }
            Ok(r) => format!("status {}", r.status().as_u16()),
            Err(e) => e.without_url().to_string(),
        };
        if attempt == max_attempts {
            tracing::warn!(
                event,
                attempt,
                problem,
                "approval webhook failed; giving up"
            );
            break;
        }
        let wait = jittered(backoff(attempt));
        tracing::info!(
            event,
            attempt,
            problem,
            retry_in_ms = wait.as_millis() as u64,
            "approval webhook failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
    false
}

/// The wait after failed attempt `attempt` (1-based): 0.5 s, doubling, at
/// most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Up to a fifth more, so replicas that failed together do not retry together.
fn jittered(d: Duration) -> Duration {
    let extra = rand::rng().random_range(0..=d.as_millis() as u64 / 5);
    d + Duration::from_millis(extra)
}

/// The message for `format`.
pub fn payload(
    format: WebhookFormat,
    kind: Kind,
    record: &ApprovalRecord,
    console_url: Option<&str>,
) -> Value {
    let id = &record.info.id;
    let link = console_url.map(|c| format!("{}/console/#/approvals/{id}", c.trim_end_matches('/')));
    match format {
        WebhookFormat::Json => {
            let mut approval = json!(record);
            approval["request"] = outward_request(&record.info.request);
            let mut v = json!({"event": kind.event(), "approval": approval});
            if let Some(link) = &link {
                v["links"] = json!({
                    "approval": link,
                    "approve": format!("{link}?action=approve"),
                    "deny": format!("{link}?action=deny"),
                });
            }
            v
        }
        WebhookFormat::Slack => slack(kind, record, link.as_deref()),
    }
}

fn slack(kind: Kind, r: &ApprovalRecord, link: Option<&str>) -> Value {
    let who = match &r.info.requester.acting_for {
        Some(human) => format!("{} (for {human})", r.info.requester.subject),
        None => r.info.requester.subject.clone(),
    };
    let head = match kind {
        Kind::Created => format!(
            "Approval needed: {who} on {} ({} asks: {})",
            r.info.connection, r.info.policy, r.info.reason
        ),
        Kind::Decided => {
            let how = match r.status {
                ApprovalStatus::Approved => format!(
                    "approved by {}",
                    r.decisions
                        .iter()
                        .filter(|v| v.decision == super::Choice::Approve)
                        .map(|v| v.approver.subject.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                ApprovalStatus::Denied => match r.outcome() {
                    super::ApprovalOutcome::Denied { by, reason } => {
                        format!("denied by {by}: {reason}")
                    }
                    _ => "denied".into(),
                },
                ApprovalStatus::TimedOut => "timed out".into(),
                s => format!(
                    "{}: {}",
                    s.as_str(),
                    r.status_reason.as_deref().unwrap_or("")
                ),
            };
            format!("Approval for {who} on {} {how}", r.info.connection)
        }
    };
    let mut text = format!(
        "*{}*\n```{}```",
        escape(&head),
        escape(&quote(&r.info.request))
    );
    if kind == Kind::Created {
        text.push_str(&format!(
            "\napprovers: {} · times out in {} s · id `{}`",
            escape(&r.info.approver_groups.join(", ")),
            r.info.timeout_secs,
            r.info.id
        ));
    }
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})];
    if let Some(link) = link {
        let buttons = match kind {
            Kind::Created => json!([
                {"type": "button", "style": "primary", "action_id": "approve",
                 "text": {"type": "plain_text", "text": "Approve"}, "url": format!("{link}?action=approve")},
                {"type": "button", "style": "danger", "action_id": "deny",
                 "text": {"type": "plain_text", "text": "Deny"}, "url": format!("{link}?action=deny")},
            ]),
            Kind::Decided => json!([
                {"type": "button", "action_id": "view",
                 "text": {"type": "plain_text", "text": "View"}, "url": link},
            ]),
        };
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": escape(&head), "blocks": blocks})
}

/// The fields of a held request that may leave Gatehouse in a notification:
/// what identifies it (a statement, a request line, a tool or resource
/// name). Everything else (statement parameters, bodies, arguments, objects)
/// can hold anything and stays on the admin API and console, where only
/// approvers, the requester and auditors read it; the message lists what it
/// left out.
const OUTWARD_FIELDS: &[&str] = &[
    "database",
    "sql",
    "method",
    "target",
    "content_type",
    "summary",
    "provider",
    "operation",
    "model",
    "tool",
    "verb",
    "resource",
    "namespace",
    "name",
];

fn outward_request(request: &Value) -> Value {
    let Some(fields) = request.as_object() else {
        return json!({"omitted": ["request"]});
    };
    let mut out = serde_json::Map::new();
    let mut omitted = Vec::new();
    for (k, v) in fields {
        if OUTWARD_FIELDS.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        } else {
            omitted.push(Value::String(k.clone()));
        }
    }
    if !omitted.is_empty() {
        out.insert("omitted".into(), Value::Array(omitted));
    }
    Value::Object(out)
}

/// The request in one line: a statement, or an HTTP request line.
fn quote(request: &Value) -> String {
    let s = match (
        request.get("sql").and_then(Value::as_str),
        request.get("method").and_then(Value::as_str),
        request.get("target").and_then(Value::as_str),
    ) {
        (Some(sql), _, _) => sql.to_string(),
        (None, Some(m), Some(t)) => format!("{m} {t}"),
        _ => outward_request(request).to_string(),
    };
    let mut q: String = s.chars().take(QUOTE_CHARS).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    q.replace("```", "'''")
}

/// Slack's mrkdwn control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::{ApprovalInfo, Choice, Vote};
    use crate::audit::PrincipalRecord;
    use crate::policy::decision::ApprovalScope;

    fn record(status: ApprovalStatus) -> ApprovalRecord {
        let who = |s: &str| PrincipalRecord {
            subject: s.into(),
            issuer: "gatehouse".into(),
            kind: "agent".into(),
            groups: vec![],
            acting_for: None,
            person: None,
        };
        ApprovalRecord {
            info: ApprovalInfo {
                id: "0190-ab".into(),
                connection: "shop".into(),
                protocol: "postgres".into(),
                session_id: "s".into(),
                request_id: "r".into(),
                requester: who("bot"),
                request: json!({"sql": "DELETE FROM t WHERE a < 1", "parameters": ["4111 1111 1111 1111"]}),
                policy: "sql-guard".into(),
                reason: "deletes need a DBA".into(),
                approver_groups: vec!["dba".into()],
                timeout_secs: 60,
                scope: ApprovalScope::Once,
                created_at_ms: 1,
            },
            status,
            min_approvals: 1,
            expires_at_ms: 60_001,
            decided_at_ms: None,
            status_reason: None,
            owner: "gw-a".into(),
            decisions: vec![Vote {
                approver: who("dora"),
                decision: Choice::Approve,
                reason: None,
                at_ms: 2,
            }],
        }
    }

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
        for a in 1..10 {
            let j = jittered(backoff(a));
            assert!(j >= backoff(a) && j <= backoff(a) * 6 / 5, "{a}: {j:?}");
        }
    }

    #[test]
    fn json_messages_carry_the_record_and_links() {
        let v = payload(
            WebhookFormat::Json,
            Kind::Created,
            &record(ApprovalStatus::Waiting),
            Some("https://console.example.com"),
        );
        assert_eq!(v["event"], "approval.created");
        assert_eq!(v["approval"]["id"], "0190-ab");
        assert_eq!(v["approval"]["request"]["sql"], "DELETE FROM t WHERE a < 1");
        // Parameters (and bodies) stay home; the message says they exist.
        assert!(!v.to_string().contains("4111"), "{v}");
        assert_eq!(v["approval"]["request"]["omitted"], json!(["parameters"]));
        assert_eq!(
            v["links"]["approve"],
            "https://console.example.com/console/#/approvals/0190-ab?action=approve"
        );
        let v = payload(
            WebhookFormat::Json,
            Kind::Decided,
            &record(ApprovalStatus::Approved),
            None,
        );
        assert_eq!(v["approval"]["status"], "approved");
        assert!(v.get("links").is_none());
    }

    #[test]
    fn slack_messages_link_to_the_console() {
        let v = payload(
            WebhookFormat::Slack,
            Kind::Created,
            &record(ApprovalStatus::Waiting),
            Some("https://c.example"),
        );
        let text = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.contains("DELETE FROM t WHERE a &lt; 1"), "{text}");
        let buttons = &v["blocks"][1]["elements"];
        assert_eq!(
            buttons[0]["url"],
            "https://c.example/console/#/approvals/0190-ab?action=approve"
        );
        assert_eq!(
            buttons[1]["url"],
            "https://c.example/console/#/approvals/0190-ab?action=deny"
        );
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .starts_with("Approval needed: bot")
        );
        let v = payload(
            WebhookFormat::Slack,
            Kind::Decided,
            &record(ApprovalStatus::Approved),
            Some("https://c.example"),
        );
        assert!(
            v["text"].as_str().unwrap().contains("approved by dora"),
            "{v}"
        );
        assert_eq!(
            v["blocks"][1]["elements"][0]["url"],
            "https://c.example/console/#/approvals/0190-ab"
        );
    }
}
