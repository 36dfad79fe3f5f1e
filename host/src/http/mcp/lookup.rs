//! Gatehouse asks the server for its tools itself. The catalogue
//! ([`super::catalog`]) learns from the `tools/list` answers that pass
//! through, so after a restart, or on a session whose listing went through
//! another replica, a `tools/call` would name a tool Gatehouse knows nothing
//! about. Before deciding such a call, Gatehouse sends `tools/list` on the
//! caller's MCP session (its `Mcp-Session-Id`, or its legacy session) with
//! the held credential, follows `nextCursor`, and learns every page. It is
//! bounded in time, pages and size; whatever goes wrong is reported, and the
//! policy decides without the tool's annotations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Value, json};

use super::catalog::ToolCatalog;
use super::jsonrpc::{Message, id_key};
use super::legacy::LegacySession;
use crate::http::adapter::UpstreamCaller;
use crate::http::sse::{Decoder, Item};

/// The longest a lookup may take, all pages together (less when the
/// connection's `upstream_timeout_ms` is shorter).
pub const MAX_LOOKUP_TIME: Duration = Duration::from_secs(5);

/// Pages followed at most (`nextCursor`).
pub const MAX_PAGES: u32 = 16;

/// Where the caller's session is, to ask on it.
pub struct SessionTarget {
    /// The path and query the client POSTs its messages to.
    pub path_and_query: String,
    /// Streamable HTTP: the headers that name the session and its protocol
    /// revision (`Mcp-Session-Id`, `Mcp-Protocol-Version`), as the client
    /// sent them.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
    /// The legacy transport: answers come on the session's stream.
    pub legacy: Option<Arc<LegacySession>>,
}

/// What a lookup did, for the audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Lookup {
    pub pages: u32,
    /// Tools the server listed, all pages together.
    pub tools: usize,
    /// Whether the tool the call names was among them.
    pub found: bool,
    pub elapsed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("the server did not answer tools/list within {0} ms")]
    Timeout(u64),
    #[error("tools/list could not reach the server: {0}")]
    Upstream(String),
    #[error("the server answered tools/list with HTTP {0}")]
    Status(u16),
    #[error(
        "the server answered tools/list with content type {0:?}, neither JSON nor an event stream"
    )]
    ContentType(String),
    #[error("the server's answer to tools/list is not a JSON-RPC answer to it: {0}")]
    NotAnAnswer(String),
    #[error("the server refused tools/list: {0}")]
    Refused(String),
    #[error("the server's answer to tools/list is over the {0}-byte limit")]
    TooLarge(usize),
    #[error("the server's answer to tools/list ended before the answer")]
    Ended,
    #[error("the legacy session cannot take Gatehouse's request: {0}")]
    Session(String),
}

/// Asks the server for its tools on `target`, learning every page into
/// `catalog`; `tool` is the name the call is for. `limit` bounds one
/// answer.
pub async fn list_tools(
    upstream: &UpstreamCaller,
    target: &SessionTarget,
    catalog: &ToolCatalog,
    tool: &str,
    limit: usize,
) -> Lookup {
    let started = Instant::now();
    let budget = MAX_LOOKUP_TIME.min(upstream.timeout);
    let mut lookup = Lookup {
        pages: 0,
        tools: 0,
        found: false,
        elapsed_ms: 0,
        error: None,
    };
    let pages = async {
        let mut cursor: Option<String> = None;
        while lookup.pages < MAX_PAGES {
            let result = ask(upstream, target, cursor.as_deref(), limit).await?;
            lookup.pages += 1;
            let listed = catalog.learn(&result);
            lookup.tools += listed.len();
            lookup.found |= listed.iter().any(|t| t.name == tool);
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() || lookup.found {
                break;
            }
        }
        Ok::<(), LookupError>(())
    };
    let outcome = match tokio::time::timeout(budget, pages).await {
        Ok(r) => r,
        Err(_) => Err(LookupError::Timeout(budget.as_millis() as u64)),
    };
    lookup.elapsed_ms = started.elapsed().as_millis() as u64;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, tool, "could not ask the MCP server for its tools");
        lookup.error = Some(e.to_string());
    }
    lookup
}

/// One `tools/list` request and its result.
async fn ask(
    upstream: &UpstreamCaller,
    target: &SessionTarget,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Value, LookupError> {
    let id = json!(format!("gatehouse-tools-list-{}", uuid::Uuid::now_v7()));
    let mut request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
    if let Some(c) = cursor {
        request["params"] = json!({ "cursor": c });
    }
    let key = id_key(&id);
    // The legacy transport answers on the session's stream: wait there.
    let own = match &target.legacy {
        Some(session) => Some(
            session
                .expect_own(key.clone())
                .map_err(|e| LookupError::Session(e.to_string()))?,
        ),
        None => None,
    };
    let forget = Forget {
        session: target.legacy.as_deref(),
        key: &key,
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(target.path_and_query.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    for (name, value) in &target.headers {
        builder = builder.header(name, value);
    }
    let body = Full::new(Bytes::from(request.to_string()))
        .map_err(|e| match e {})
        .boxed_unsync();
    let req = builder
        .body(body)
        .map_err(|e| LookupError::Upstream(e.to_string()))?;
    let resp = upstream.send(req).await.map_err(LookupError::Upstream)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(LookupError::Status(status.as_u16()));
    }
    let message = match own {
        Some(rx) => {
            drop(resp);
            let m = rx.await.map_err(|_| LookupError::Ended)?;
            drop(forget);
            m
        }
        None => {
            let content_type = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if content_type.starts_with("text/event-stream") {
                answer_on_stream(resp.into_body(), &key, limit).await?
            } else if content_type.starts_with("application/json") {
                let body = read_limited(resp.into_body(), limit).await?;
                Message::parse(&body).map_err(|e| LookupError::NotAnAnswer(e.to_string()))?
            } else {
                return Err(LookupError::ContentType(content_type));
            }
        }
    };
    match message {
        Message::Response { id: got, result } if id_key(&got) == key => Ok(result),
        Message::Error { id: got, error } if id_key(&got) == key => Err(LookupError::Refused(
            error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .chars()
                .take(200)
                .collect(),
        )),
        _ => Err(LookupError::NotAnAnswer(
            "it answers another request".into(),
        )),
    }
}

/// Stops waiting on a legacy session when the lookup ends early.
struct Forget<'a> {
    session: Option<&'a LegacySession>,
    key: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session {
            s.forget_own(self.key);
        }
    }
}

async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, LookupError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| LookupError::Upstream(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(LookupError::TooLarge(limit));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The answer with id `key` on an event stream; other messages (the
/// server's notifications) are passed over.
async fn answer_on_stream(
    mut body: Incoming,
    key: &str,
    limit: usize,
) -> Result<Message, LookupError> {
    let mut decoder = Decoder::new(limit);
    let mut items = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| LookupError::Upstream(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        decoder
            .push(&data, &mut items)
            .map_err(|e| LookupError::NotAnAnswer(e.to_string()))?;
        for item in items.drain(..) {
            match item {
                Item::Event(e) if e.kind() == "message" && !e.data.trim().is_empty() => {
                    let m = Message::parse(e.data.as_bytes())
                        .map_err(|e| LookupError::NotAnAnswer(e.to_string()))?;
                    if m.id().map(id_key).as_deref() == Some(key) {
                        return Ok(m);
                    }
                }
                Item::Oversized(_) => return Err(LookupError::TooLarge(limit)),
                _ => {}
            }
        }
    }
    Err(LookupError::Ended)
}
