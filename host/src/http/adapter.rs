//! Protocol adapters on the HTTP path: LLM APIs, MCP and the Kubernetes API
//! ride on HTTP, but policies see them in their own terms. An adapter plugs
//! into [`super::HttpProxy`] at fixed phases; the proxy keeps doing what is
//! common (authentication, the plain `http` hook, approval holds, masks of
//! headers, the upstream call, the audit record).
//!
//! Phase chart of one exchange on a connection with an adapter:
//!
//! ```text
//! authenticate
//!   → read the body: whole, up to `body_limit_bytes`, when the adapter
//!     `needs_body` (over the limit: refused with `too_large`, never passed
//!     through unchecked); else the inspected prefix as for plain HTTP
//!   → adapter `decode` → an `AdapterExchange` (or `None`: plain HTTP only)
//!   → `http` on-request hook; unless it denied, the exchange's `prepare`
//!     (what the adapter must learn first, asking the upstream itself with
//!     the held credential: an MCP tool's annotations), then its
//!     `request_hook`; verdicts combine (deny first, then one approval hold
//!     for both)
//!   → `mask_request` rewrites the decoded body with the request masks
//!   → upstream → `http` on-response hook
//!   → adapter `response` picks a `ResponsePlan`: plain streaming, the body
//!     read whole then `BufferedResponse::finish`, or a streaming
//!     `BodyTransform` (e.g. per server-sent event)
//!   → record: the exchange plus the adapter's details under its protocol name
//! ```
//!
//! Every refusal is rendered by [`ProtocolAdapter::error_body`], so a client
//! sees its own protocol's error shape.
//!
//! A request that switches protocols (`kubectl exec` over WebSocket) is
//! decided like any other; then the exchange's `upgrade` relay takes over
//! both upgraded connections after the upstream's 101 (`proxy/upgrade.rs`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::ProxyBody;
use super::body::BodyTransform;
use super::errors::ProxyError;
use super::upstream::Upstream;
use crate::config::{ConnectionConfig, ProtocolKind};
use crate::mask::{CompiledMasks, MaskCompiler, MaskRule};
use crate::policy::bindings::types as wit;
use crate::policy::chain::ChainOutcome;
use crate::policy::invoke::CallFailure;
use crate::policy::{LoadedPolicy, PolicyChain};

/// One protocol hook call, as [`PolicyChain::run`] takes it.
pub type ChainHook =
    Arc<dyn Fn(&LoadedPolicy) -> Option<Result<wit::Decision, CallFailure>> + Send + Sync>;

/// Runs `hook` over `chain` off the async workers
/// ([`PolicyChain::run_blocking`]).
pub async fn run_chain(
    chain: &PolicyChain,
    hook: impl Fn(&LoadedPolicy) -> Option<Result<wit::Decision, CallFailure>> + Send + 'static,
) -> Result<ChainOutcome, ProxyError> {
    chain
        .run_blocking(hook)
        .await
        .map_err(|e| ProxyError::Internal(format!("policy chain task failed: {e}")))
}

/// What an adapter could not accept.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The client's request does not follow the protocol.
    #[error("{0}")]
    BadRequest(String),
    /// The request is bigger than the adapter may read.
    #[error("{0}")]
    TooLarge(String),
    /// The upstream's answer does not follow the protocol; it is not passed on.
    #[error("{0}")]
    BadUpstream(String),
}

impl From<AdapterError> for ProxyError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::BadRequest(m) => ProxyError::BadRequest(m),
            AdapterError::TooLarge(m) => ProxyError::TooLarge(m),
            AdapterError::BadUpstream(m) => ProxyError::MaskFailed(m),
        }
    }
}

/// The request as the adapter sees it.
pub struct RequestView<'a> {
    pub parts: &'a http::request::Parts,
    pub body: &'a [u8],
    /// False when only a prefix was read (the adapter did not `need_body`).
    pub body_complete: bool,
}

/// A protocol on top of HTTP, one per connection.
pub trait ProtocolAdapter: Send + Sync {
    /// The protocol's name in audit records and approvals (`llm`, `mcp`, ...).
    fn protocol(&self) -> &'static str;
    /// The protocol the policy's context names.
    fn wit_protocol(&self) -> wit::Protocol;
    /// Whether this request must be read whole before `decode`.
    fn needs_body(&self, parts: &http::request::Parts) -> bool;
    /// Decodes a request. `Ok(None)`: not one of the protocol's requests;
    /// only the plain `http` hook applies.
    fn decode(
        &self,
        req: RequestView<'_>,
    ) -> Result<Option<Box<dyn AdapterExchange>>, AdapterError>;
    /// The body of an error response in the protocol's own shape; the status
    /// stays [`ProxyError::status`]'s. `target` is the request's path and
    /// query (the error may come before anything was decoded).
    fn error_body(&self, err: &ProxyError, request_id: &str, target: &str) -> Value {
        let _ = target;
        err.body_json(request_id)
    }
}

/// One decoded exchange of an adapter's protocol.
pub trait AdapterExchange: Send {
    /// Runs once the `http` hook did not deny, before `request_hook`: what
    /// the adapter must know to describe the request to policies, asked of
    /// the upstream if need be. It cannot refuse: what it could not learn
    /// it notes (in `describe`), and the policies decide without it.
    fn prepare<'a>(&'a mut self, _cx: PrepareCx) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
    /// The protocol hook of the request phase.
    fn request_hook(&self, ctx: Arc<wit::Context>) -> ChainHook;
    /// Applies the request phase's masks to the decoded request and returns
    /// the body to send when it changed.
    fn mask_request(&mut self, masks: &CompiledMasks) -> Result<Option<Vec<u8>>, AdapterError>;
    /// The request as approvers and the audit record see it (masked).
    fn describe(&self) -> Value;
    /// How this exchange's refusals are answered, when not in the
    /// adapter's connection-wide shape (an MCP refusal answers the
    /// request's JSON-RPC id). Taken right after `decode`.
    fn refuser(&self) -> Option<Box<dyn Refuser>> {
        None
    }
    /// The upstream's response head arrived: how to carry its body.
    fn response(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        cx: ResponseCx,
    ) -> Result<ResponsePlan, AdapterError>;
    /// Adjusts the request headers for the upstream, after the proxy's own
    /// rewriting (e.g. an `Accept` that asks only for what masks can read).
    fn upstream_headers(&self, _headers: &mut HeaderMap) {}
    /// For a request that switches protocols (`Upgrade`), the relay that
    /// takes over both connections after the upstream's 101. The request
    /// phase has been decided by then. `None`: the upgrade headers are
    /// dropped, as on plain HTTP connections.
    fn upgrade(&mut self) -> Option<Box<dyn UpgradeRelay>> {
        None
    }
}

/// Carries an upgraded connection (WebSocket for `kubectl exec`) after the
/// request phase allowed it; see `proxy/upgrade.rs`.
pub trait UpgradeRelay: Send {
    /// Adjusts the upgrade request's headers for the upstream (e.g. keeps
    /// only subprotocols the relay can read); an error refuses the request.
    fn prepare(&self, headers: &mut HeaderMap) -> Result<(), AdapterError>;
    /// Relays both upgraded connections until they close. `record` takes a
    /// summary and a detail for each part of the stream's audit record.
    fn relay(
        self: Box<Self>,
        client: TokioIo<Upgraded>,
        upstream: TokioIo<Upgraded>,
        masks: Arc<CompiledMasks>,
        record: Box<dyn FnMut(String, Value) + Send>,
    ) -> BoxFuture<'static, ()>;
}

/// Answers a refused exchange in its protocol's terms: the status and body
/// to send instead of [`ProxyError`]'s, or `None` for the adapter's default.
pub trait Refuser: Send + Sync {
    fn refuse(&self, err: &ProxyError, request_id: &str) -> Option<(StatusCode, Value)>;
}

/// What the prepare phase may use.
pub struct PrepareCx {
    pub ctx: Arc<wit::Context>,
    pub upstream: UpstreamCaller,
}

/// Requests of the adapter's own to the upstream, sent as the proxy sends
/// a client's: to the connection's upstream, with the held credential and
/// identity encoding, without the caller's credential.
#[derive(Clone)]
pub struct UpstreamCaller {
    upstream: Arc<Upstream>,
    client_addr: String,
    /// The connection's `upstream_timeout_ms`: no call may take longer.
    pub timeout: std::time::Duration,
}

impl UpstreamCaller {
    pub fn new(
        upstream: Arc<Upstream>,
        client_addr: String,
        timeout: std::time::Duration,
    ) -> UpstreamCaller {
        UpstreamCaller {
            upstream,
            client_addr,
            timeout,
        }
    }

    /// Sends `req`, whose URI is a path and query on the upstream; the
    /// answer's head once it arrives.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, String> {
        let (mut parts, body) = req.into_parts();
        parts.uri = self.upstream.uri_for(&parts.uri)?;
        self.upstream
            .prepare_headers(&mut parts.headers, &self.client_addr);
        parts.version = http::Version::HTTP_11;
        self.upstream
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|e| {
                let mut s = e.to_string();
                let mut cur = std::error::Error::source(&e);
                while let Some(c) = cur {
                    s.push_str(": ");
                    s.push_str(&c.to_string());
                    cur = c.source();
                }
                s
            })
    }
}

/// What a response phase may use.
#[derive(Clone)]
pub struct ResponseCx {
    pub chain: PolicyChain,
    pub ctx: Arc<wit::Context>,
    /// The request's and the `http` response hook's masks, with the held
    /// credential.
    pub masks: Arc<CompiledMasks>,
    /// The rules behind `masks`, and the compiler, for masks a later hook adds.
    pub rules: Arc<[MaskRule]>,
    pub compiler: Arc<MaskCompiler>,
    /// The held credential, masked wherever it would flow back.
    pub literals: Arc<[String]>,
    /// When the request arrived, for latency.
    pub started: Instant,
}

impl ResponseCx {
    /// `masks` plus `extra` (say, from the protocol's response hook).
    pub fn masks_with(&self, extra: &[MaskRule]) -> Result<Arc<CompiledMasks>, AdapterError> {
        if extra.is_empty() {
            return Ok(self.masks.clone());
        }
        let mut rules = self.rules.to_vec();
        rules.extend(extra.iter().cloned());
        self.compiler
            .compile(&rules, &self.literals)
            .map_err(|e| AdapterError::BadUpstream(format!("masks could not be compiled: {e}")))
    }

    /// Runs a protocol hook of the response phase over the chain.
    pub async fn run(
        &self,
        hook: impl Fn(&LoadedPolicy) -> Option<Result<wit::Decision, CallFailure>> + Send + 'static,
    ) -> Result<ChainOutcome, ProxyError> {
        run_chain(&self.chain, hook).await
    }
}

pub enum ResponsePlan {
    /// Streamed as plain HTTP: text masks only.
    PassThrough,
    /// The body read whole (up to `json_mask_limit_bytes`), then finished.
    Buffered(Box<dyn BufferedResponse>),
    /// Streamed through a transform, which also reports at the end.
    Stream(Box<dyn BodyTransform>),
}

/// A response the adapter reads whole before any of it is sent.
pub trait BufferedResponse: Send {
    /// Decodes, asks policies, masks; a deny in `decision` refuses the
    /// response (with the protocol's error shape).
    fn finish(self: Box<Self>, body: Bytes) -> BoxFuture<'static, Result<Finished, ProxyError>>;
}

/// What a finished response phase hands back.
pub struct Finished {
    /// The body to send.
    pub body: Vec<u8>,
    /// The protocol's response hook, when it ran.
    pub decision: Option<ChainOutcome>,
    /// Recorded with the exchange under the protocol's name.
    pub detail: Value,
}

/// The adapter of a connection, if its protocol has one.
pub fn for_connection(c: &ConnectionConfig) -> Result<Option<Arc<dyn ProtocolAdapter>>, String> {
    match c.protocol {
        ProtocolKind::Http | ProtocolKind::Postgres => Ok(None),
        ProtocolKind::Llm => Ok(Some(Arc::new(super::llm::LlmAdapter::new(
            &c.llm.clone().unwrap_or_default(),
        )))),
        ProtocolKind::Mcp => Ok(Some(Arc::new(super::mcp::McpAdapter::new(
            c.json_mask_limit_bytes,
        )))),
        ProtocolKind::Kubernetes => {
            Ok(Some(Arc::new(super::kubernetes::KubernetesAdapter::new(c))))
        }
    }
}

/// Masks a JSON document field by field: `json-pointer` masks, then the text
/// masks in every string value (so a replacement never breaks the JSON).
/// Returns how many values changed.
pub fn mask_json_strings(doc: &mut Value, masks: &CompiledMasks) -> u64 {
    let mut changed =
        crate::mask::json::mask_pointers(doc, &masks.json_pointers, &masks.hash_key) as u64;
    if let Some(text) = &masks.text {
        changed += mask_strings(doc, text, &masks.hash_key);
    }
    changed
}

/// The text masks alone in every string of a JSON document; returns how
/// many strings changed.
pub fn mask_json_text(doc: &mut Value, masks: &CompiledMasks) -> u64 {
    match &masks.text {
        Some(text) => mask_strings(doc, text, &masks.hash_key),
        None => 0,
    }
}

fn mask_strings(
    v: &mut Value,
    text: &Arc<crate::mask::compile::TextMatcher>,
    key: &Arc<[u8]>,
) -> u64 {
    match v {
        Value::String(s) => {
            let masked = crate::mask::stream::mask_all(text, key, s.as_bytes());
            if masked != s.as_bytes() {
                *s = String::from_utf8_lossy(&masked).into_owned();
                1
            } else {
                0
            }
        }
        Value::Array(items) => items.iter_mut().map(|i| mask_strings(i, text, key)).sum(),
        Value::Object(map) => map.values_mut().map(|i| mask_strings(i, text, key)).sum(),
        _ => 0,
    }
}
