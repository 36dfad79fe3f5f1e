//! The MCP adapter: JSON-RPC over the streamable HTTP transport (POST with
//! JSON or SSE answers, sessions by `Mcp-Session-Id`) and over the legacy
//! HTTP+SSE transport (GET /sse, POST /messages/?session_id=...).
//!
//! - Request phase: a POST body is one JSON-RPC message, read whole (up to
//!   `body_limit_bytes`); requests go to the `mcp` hook's `on-request`. A
//!   `tools/call` of a tool the catalogue does not know first makes
//!   Gatehouse ask the server for its tools on the caller's session
//!   ([`lookup`]). A refusal is a JSON-RPC error for the request's id: in
//!   the POST's answer (streamable HTTP) or on the session's event stream
//!   (legacy).
//! - Response phase: answers are matched to requests by id, `tools/list`
//!   results are filtered by `filter-tools` and resource, template and
//!   prompt listings by `mcp-listing.filter` (whose verdict on the one
//!   entry a read or `prompts/get` names also decides that request), every
//!   result goes through `on-result`, and the masks of both phases apply to
//!   it, field by field. Streams are reviewed event by event ([`stream`]).
//!
//! Batches are refused (MCP 2025-06-18 has none; each member would need its
//! own decision before any of it may pass).

pub mod catalog;
pub mod jsonrpc;
pub mod legacy;
pub mod listing;
pub mod lookup;
pub mod request;
pub mod review;
pub mod stream;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::adapter::{
    AdapterError, AdapterExchange, BufferedResponse, ChainHook, Finished, PrepareCx,
    ProtocolAdapter, Refuser, RequestView, ResponseCx, ResponsePlan,
};
use super::body::{BodyTransform, StreamReport};
use super::errors::ProxyError;
use crate::mask::CompiledMasks;
use crate::policy::bindings::mcp::McpRequest;
use crate::policy::bindings::types as wit;
use catalog::ToolCatalog;
use jsonrpc::{Message, code, error_response};
use legacy::{LegacySession, LegacySessions, session_from_query};
use review::{Pending, Reviewer};
use stream::{Answers, EventStream, write_message};

/// The MCP adapter of one connection.
pub struct McpAdapter {
    catalog: Arc<ToolCatalog>,
    entries: Arc<listing::EntryCatalog>,
    sessions: Arc<LegacySessions>,
    /// The largest server answer (one JSON body or one event) read whole.
    answer_limit: usize,
}

impl McpAdapter {
    pub fn new(answer_limit: usize) -> McpAdapter {
        McpAdapter {
            catalog: Arc::default(),
            entries: Arc::default(),
            sessions: Arc::default(),
            answer_limit,
        }
    }
}

impl ProtocolAdapter for McpAdapter {
    fn protocol(&self) -> &'static str {
        "mcp"
    }

    fn wit_protocol(&self) -> wit::Protocol {
        wit::Protocol::Mcp
    }

    fn needs_body(&self, parts: &http::request::Parts) -> bool {
        parts.method == Method::POST
    }

    fn decode(
        &self,
        req: RequestView<'_>,
    ) -> Result<Option<Box<dyn AdapterExchange>>, AdapterError> {
        let mut exchange = McpExchange {
            catalog: self.catalog.clone(),
            entries: self.entries.clone(),
            sessions: self.sessions.clone(),
            answer_limit: self.answer_limit,
            message: None,
            request: None,
            legacy: None,
            ctx: Arc::new(OnceLock::new()),
            request_masks: None,
            session_target: None,
            lookup: None,
        };
        if req.parts.method != Method::POST {
            return Ok(Some(Box::new(exchange)));
        }
        let message =
            Message::parse(req.body).map_err(|e| AdapterError::BadRequest(e.to_string()))?;
        let legacy = session_from_query(req.parts.uri.query());
        let session_id = legacy.clone().or_else(|| {
            req.parts
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        exchange.request =
            request::policy_request(&message, session_id.as_deref(), &self.catalog).map(Arc::new);
        if exchange
            .request
            .as_ref()
            .is_some_and(|r| r.method == "tools/call" && r.tool.is_some() && r.tool_info.is_none())
        {
            // Where to ask for the tools, should the call need it.
            let headers = ["mcp-session-id", "mcp-protocol-version"]
                .into_iter()
                .filter_map(|name| {
                    let value = req.parts.headers.get(name)?.clone();
                    Some((http::HeaderName::from_static(name), value))
                })
                .collect();
            exchange.session_target = Some(lookup::SessionTarget {
                path_and_query: req
                    .parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| "/".to_string(), |p| p.to_string()),
                headers,
                legacy: None,
            });
        }
        exchange.message = Some(message);
        exchange.legacy = legacy;
        Ok(Some(Box::new(exchange)))
    }

    /// Refusals before a message was decoded (bad JSON, a batch, a body over
    /// the limit, a failed login): a JSON-RPC error without an id.
    fn error_body(&self, err: &ProxyError, request_id: &str, _target: &str) -> Value {
        let code = match err {
            ProxyError::BadRequest(m) if m.contains("is not JSON") => code::PARSE_ERROR,
            ProxyError::BadRequest(_) | ProxyError::TooLarge(_) => code::INVALID_REQUEST,
            _ => code::GATEWAY_REFUSED,
        };
        refusal(Value::Null, code, err, request_id).to_value()
    }
}

/// A JSON-RPC error that carries Gatehouse's own error object as its data.
fn refusal(id: Value, code: i64, err: &ProxyError, request_id: &str) -> Message {
    let data = err.body_json(request_id)["error"].take();
    error_response(
        id,
        code,
        &err.to_string(),
        Some(json!({ "gatehouse": data })),
    )
}

/// The key of a caller a legacy session is bound to.
fn owner_key(ctx: &wit::Context) -> String {
    format!("{}\u{0}{}", ctx.principal.issuer, ctx.principal.subject)
}

struct McpExchange {
    catalog: Arc<ToolCatalog>,
    entries: Arc<listing::EntryCatalog>,
    sessions: Arc<LegacySessions>,
    answer_limit: usize,
    /// The POSTed message; `None` for GET and DELETE.
    message: Option<Message>,
    /// The policy's view, for requests.
    request: Option<Arc<McpRequest>>,
    /// The legacy session a POST is for.
    legacy: Option<String>,
    /// The policy context, known from the request phase on.
    ctx: Arc<OnceLock<Arc<wit::Context>>>,
    /// The request phase's masks, once it allowed the request.
    request_masks: Option<Arc<CompiledMasks>>,
    /// For a `tools/call` of a tool the catalogue does not know: the
    /// caller's session, where Gatehouse asks for the tools.
    session_target: Option<lookup::SessionTarget>,
    /// What asking for the tools gave, for the record.
    lookup: Option<Value>,
}

impl McpExchange {
    fn legacy_session(&self) -> Result<Option<Arc<LegacySession>>, AdapterError> {
        let (Some(id), Some(ctx)) = (&self.legacy, self.ctx.get()) else {
            return Ok(None);
        };
        self.sessions
            .get(id, &owner_key(ctx))
            .map(Some)
            .map_err(|e| AdapterError::BadRequest(e.to_string()))
    }

    fn reviewer(&self, cx: &ResponseCx) -> Reviewer {
        Reviewer {
            chain: cx.chain.clone(),
            compiler: cx.compiler.clone(),
            catalog: self.catalog.clone(),
            entries: self.entries.clone(),
        }
    }

    /// The request as described to approvers and the record, before what
    /// a lookup added.
    fn described(&self) -> Value {
        match (&self.message, &self.request) {
            (_, Some(r)) => json!({
                "method": r.method,
                "id": self.message.as_ref().and_then(Message::id),
                "tool": r.tool,
                "target": r.target,
                "tool_info": r.tool_info.as_ref().map(|t| json!({
                    "destructive": t.destructive, "read_only": t.read_only,
                })),
                "session": r.mcp_session_id,
                "transport": if self.legacy.is_some() { "sse" } else { "streamable-http" },
            }),
            (Some(Message::Notification { method, .. }), None) => {
                json!({ "notification": method })
            }
            (Some(m), None) => json!({ "answer_to": m.id() }),
            (None, None) => json!({ "stream": true }),
        }
    }

    fn pending(&self, masks: Arc<CompiledMasks>) -> Option<Pending> {
        let (Some(Message::Request { id, .. }), Some(request), Some(ctx)) =
            (&self.message, &self.request, self.ctx.get())
        else {
            return None;
        };
        Some(Pending {
            id: id.clone(),
            ctx: ctx.clone(),
            request: request.clone(),
            masks,
        })
    }
}

impl AdapterExchange for McpExchange {
    /// A `tools/call` of a tool the catalogue does not know: ask the server
    /// for its tools on the caller's session first, so the policy sees what
    /// the server says about the tool.
    fn prepare<'a>(&'a mut self, cx: PrepareCx) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (Some(mut target), Some(request)) =
                (self.session_target.take(), self.request.clone())
            else {
                return;
            };
            let Some(tool) = request.tool.clone() else {
                return;
            };
            let session = request.mcp_session_id.clone().unwrap_or_default();
            let now = std::time::Instant::now();
            if !self.catalog.may_look_up(&session, now) {
                self.lookup = Some(json!({
                    "skipped": format!(
                        "a lookup on this session came back without its tool less than {} ms ago",
                        catalog::LOOKUP_QUIET.as_millis()
                    ),
                }));
                return;
            }
            if let Some(id) = &self.legacy {
                match self.sessions.get(id, &owner_key(&cx.ctx)) {
                    Ok(s) => target.legacy = Some(s),
                    Err(e) => {
                        self.lookup = Some(json!({ "error": e.to_string() }));
                        return;
                    }
                }
            }
            let done = lookup::list_tools(
                &cx.upstream,
                &target,
                &self.catalog,
                &tool,
                self.answer_limit,
            )
            .await;
            // A lookup that found the tool needs no quiet period: another
            // unknown tool may be on a page it did not read.
            if !done.found {
                self.catalog.looked_up(&session, std::time::Instant::now());
            }
            if let Some(info) = self.catalog.get(&tool) {
                let mut seen = (*request).clone();
                seen.tool_info = Some(info);
                self.request = Some(Arc::new(seen));
            }
            self.lookup = Some(json!(done));
        })
    }

    /// `on-request`; for a request that names a resource or prompt, first
    /// the policy's `mcp-listing.filter` on that one entry: hidden from the
    /// caller, it is denied, as the listing would not have shown it.
    fn request_hook(&self, ctx: Arc<wit::Context>) -> ChainHook {
        let _ = self.ctx.set(ctx.clone());
        let Some(req) = self.request.clone() else {
            return Arc::new(|_| None);
        };
        let Some(entry) = listing::named_by(&req, &self.entries) else {
            return Arc::new(move |p| p.mcp_on_request(&ctx, &req));
        };
        Arc::new(
            move |p| match p.mcp_listing_filter(&ctx, std::slice::from_ref(&entry)) {
                Some(Ok(hidden)) if hidden.contains(&entry.id) => {
                    Some(Ok(listing::hidden_decision(&entry)))
                }
                Some(Err(failure)) => Some(Err(failure)),
                _ => p.mcp_on_request(&ctx, &req),
            },
        )
    }

    /// The arguments go to the tool as the client sent them: request-phase
    /// masks apply to what comes back. For the legacy transport the answer
    /// is expected from here on, before the POST leaves.
    fn mask_request(&mut self, masks: &CompiledMasks) -> Result<Option<Vec<u8>>, AdapterError> {
        let masks = Arc::new(masks.clone());
        self.request_masks = Some(masks.clone());
        if let Some(session) = self.legacy_session()?
            && let Some(pending) = self.pending(masks)
        {
            session
                .expect(jsonrpc::id_key(&pending.id), pending)
                .map_err(|e| AdapterError::BadRequest(e.to_string()))?;
        }
        Ok(None)
    }

    fn describe(&self) -> Value {
        let mut described = self.described();
        if let (Some(lookup), Some(d)) = (&self.lookup, described.as_object_mut()) {
            d.insert("catalog_lookup".into(), lookup.clone());
        }
        described
    }

    fn response(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        cx: ResponseCx,
    ) -> Result<ResponsePlan, AdapterError> {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let events = content_type.starts_with("text/event-stream");
        let json_body = content_type.starts_with("application/json");
        if !status.is_success() || self.legacy.is_some() {
            return Ok(ResponsePlan::PassThrough);
        }
        let reviewer = self.reviewer(&cx);
        if self.message.is_none() {
            // A GET stream: the legacy transport's, or streamable HTTP's
            // stream of server messages.
            if !events {
                return Ok(ResponsePlan::PassThrough);
            }
            let owner = self.ctx.get().map(|c| owner_key(c)).unwrap_or_default();
            let answers = Answers::Legacy {
                sessions: self.sessions.clone(),
                owner,
                session: None,
            };
            let stream = EventStream::new(answers, reviewer, self.answer_limit, cx.masks.clone());
            return Ok(ResponsePlan::Stream(Box::new(stream)));
        }
        let Some(pending) = self.pending(cx.masks.clone()) else {
            return Ok(ResponsePlan::PassThrough);
        };
        if events {
            let stream = EventStream::new(
                Answers::One(Some(pending)),
                reviewer,
                self.answer_limit,
                cx.masks.clone(),
            );
            Ok(ResponsePlan::Stream(Box::new(stream)))
        } else if json_body {
            Ok(ResponsePlan::Buffered(Box::new(JsonAnswer {
                pending,
                reviewer,
            })))
        } else {
            Err(AdapterError::BadUpstream(format!(
                "the MCP server answered a request with content type {content_type:?}, which is neither JSON nor an event stream"
            )))
        }
    }

    fn refuser(&self) -> Option<Box<dyn Refuser>> {
        let Some(Message::Request { id, .. }) = &self.message else {
            return None;
        };
        Some(Box::new(McpRefuser {
            id: id.clone(),
            legacy: self.legacy.clone(),
            sessions: self.sessions.clone(),
            ctx: self.ctx.clone(),
        }))
    }
}

/// Refuses a request in JSON-RPC terms: the error answers the request's id.
struct McpRefuser {
    id: Value,
    legacy: Option<String>,
    sessions: Arc<LegacySessions>,
    ctx: Arc<OnceLock<Arc<wit::Context>>>,
}

impl Refuser for McpRefuser {
    fn refuse(&self, err: &ProxyError, request_id: &str) -> Option<(StatusCode, Value)> {
        let message = refusal(self.id.clone(), code::GATEWAY_REFUSED, err, request_id);
        let body = message.to_value();
        let Some(session_id) = &self.legacy else {
            // Streamable HTTP: the POST's answer is the JSON-RPC error.
            return Some((StatusCode::OK, body));
        };
        // Legacy: answers travel on the session's stream; the POST is
        // accepted as the server would accept it.
        let ctx = self.ctx.get()?;
        let session = self.sessions.get(session_id, &owner_key(ctx)).ok()?;
        let mut event = Vec::new();
        write_message(&message, &mut event);
        session.inject(event).ok()?;
        Some((StatusCode::ACCEPTED, body))
    }
}

/// A JSON answer to one POSTed request (streamable HTTP, JSON mode).
struct JsonAnswer {
    pending: Pending,
    reviewer: Reviewer,
}

impl BufferedResponse for JsonAnswer {
    fn finish(self: Box<Self>, body: Bytes) -> BoxFuture<'static, Result<Finished, ProxyError>> {
        Box::pin(async move {
            let message = Message::parse(&body).map_err(|e| {
                ProxyError::from(AdapterError::BadUpstream(format!(
                    "the MCP server's answer is not a JSON-RPC message: {e}"
                )))
            })?;
            if message.id().map(jsonrpc::id_key) != Some(jsonrpc::id_key(&self.pending.id)) {
                return Err(AdapterError::BadUpstream(
                    "the MCP server answered with another request's id".into(),
                )
                .into());
            }
            let (message, review) = self.reviewer.answer(message, &self.pending).await;
            Ok(Finished {
                body: message.to_value().to_string().into_bytes(),
                // The review already turned a refusal into a JSON-RPC error.
                decision: None,
                detail: json!({ "answers": [review] }),
            })
        })
    }
}

impl BodyTransform for EventStream {
    fn push<'a>(
        &'a mut self,
        chunk: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(EventStream::push(self, chunk, out))
    }

    fn finish<'a>(&'a mut self, _out: &'a mut Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(EventStream::finish(self)))
    }

    fn failure(&mut self, reason: &str) -> Vec<u8> {
        EventStream::failure(self, reason)
    }

    fn masked(&self) -> u64 {
        self.masked
    }

    fn side_channel(&mut self) -> Option<tokio::sync::mpsc::Receiver<Vec<u8>>> {
        self.take_injected()
    }

    fn report(&mut self) -> Option<StreamReport> {
        Some(StreamReport {
            detail: json!({ "answers": self.reviews, "more_answers": self.more_reviews }),
            decision: None,
        })
    }
}
