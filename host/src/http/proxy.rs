//! One HTTP exchange through the phases: admit → authenticate → inspect →
//! request chain → (hold for approval) → forward → response chain → mask →
//! stream back → record.

mod hold;
mod upgrade;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::Instrument;

use super::ProxyBody;
use super::adapter::{
    self, AdapterExchange, ProtocolAdapter, RequestView, ResponseCx, ResponsePlan,
};
use super::body::{self, Capture};
use super::errors::ProxyError;
use super::event::{self, SessionMeta};
use super::upstream::{Upstream, strip_hop_by_hop};
use crate::approval::{ApprovalOutcome, Approvals};
use crate::audit::{AuditEvent, AuditSink, EventKind, SessionInfo};
use crate::config::ConnectionConfig;
use crate::identity::{AuthError, Authenticator, Principal};
use crate::mask::{CompiledMasks, MaskCompiler, MaskRule};
use crate::metrics::Metrics;
use crate::policy::PolicyChain;
use crate::policy::chain::{ChainOutcome, Verdict};

pub struct HttpProxy {
    pub name: String,
    labels: Vec<(String, String)>,
    allowed_groups: Vec<String>,
    upstream: Arc<Upstream>,
    chain: PolicyChain,
    auth: Arc<Authenticator>,
    audit: AuditSink,
    masks: Arc<MaskCompiler>,
    metrics: Arc<Metrics>,
    approvals: Arc<Approvals>,
    inspect_limit: usize,
    json_limit: usize,
    upstream_timeout: std::time::Duration,
    capture_limit: usize,
    /// The protocol on top of HTTP, if any (`protocol = "llm"`, ...).
    adapter: Option<Arc<dyn ProtocolAdapter>>,
    /// `body_limit_bytes`: how much of a body the adapter may read whole.
    body_limit: usize,
    /// `http`, or the adapter's protocol: what records and approvals say.
    protocol: &'static str,
}

/// Everything known about an exchange, gathered as it goes and recorded once.
struct Exchange {
    request_id: String,
    started: Instant,
    at_ms: i64,
    principal: Option<Principal>,
    presented: Option<String>,
    method: String,
    target: String,
    request_headers: Vec<(String, String)>,
    request_body: Option<Capture>,
    request_decision: Option<ChainOutcome>,
    response_decision: Option<ChainOutcome>,
    status: Option<u16>,
    response_headers: Vec<(String, String)>,
    record_masks: Option<Arc<CompiledMasks>>,
    /// When the request was held: the approval it went by and how it ended.
    approval: Option<(String, ApprovalOutcome)>,
    /// The adapter's view of the request (masked), its hook's decision, and
    /// what it reported of the response.
    protocol_request: Option<serde_json::Value>,
    protocol_decision: Option<ChainOutcome>,
    protocol_response: Option<serde_json::Value>,
    protocol_response_decision: Option<ChainOutcome>,
    /// How the adapter answers a refusal of this exchange, if in its own way.
    refuser: Option<Box<dyn adapter::Refuser>>,
}

/// What every HTTP connection shares with the rest of the gateway.
pub struct Shared {
    pub auth: Arc<Authenticator>,
    pub audit: AuditSink,
    pub masks: Arc<MaskCompiler>,
    pub metrics: Arc<Metrics>,
    pub approvals: Arc<Approvals>,
    /// `audit.body_capture_bytes`.
    pub capture_limit: usize,
}

impl HttpProxy {
    pub fn new(c: &ConnectionConfig, chain: PolicyChain, shared: Shared) -> Result<Self, String> {
        let Shared {
            auth,
            audit,
            masks,
            metrics,
            approvals,
            capture_limit,
        } = shared;
        let adapter = adapter::for_connection(c)?;
        Ok(Self {
            protocol: adapter.as_ref().map_or("http", |a| a.protocol()),
            adapter,
            body_limit: c.body_limit_bytes,
            name: c.name.clone(),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            allowed_groups: c.allowed_groups.clone(),
            upstream: Arc::new(Upstream::new(c)?),
            chain,
            auth,
            audit,
            masks,
            metrics,
            approvals,
            inspect_limit: c.inspect_body_bytes,
            upstream_timeout: std::time::Duration::from_millis(c.upstream_timeout_ms),
            json_limit: c.json_mask_limit_bytes,
            capture_limit,
        })
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        session: Arc<SessionMeta>,
    ) -> Response<ProxyBody> {
        let request_id = uuid::Uuid::now_v7().to_string();
        let span = tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.uri().path(), principal = tracing::field::Empty);
        async move {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let mut ex = Exchange::new(request_id.clone(), req.method().to_string(), target);
            match self.exchange(req, &session, &mut ex).await {
                Ok(resp) => resp,
                Err(err) => {
                    tracing::info!(code = err.code(), error = %err, "request refused");
                    // The exchange's own shape first (an MCP refusal answers
                    // the request's id), then the adapter's, then Gatehouse's.
                    let refused = ex
                        .refuser
                        .as_ref()
                        .and_then(|r| r.refuse(&err, &ex.request_id));
                    let (status, body_json) = match (refused, &self.adapter) {
                        (Some((status, body)), _) => (Some(status), body),
                        (None, Some(a)) => (None, a.error_body(&err, &ex.request_id, &ex.target)),
                        (None, None) => (None, err.body_json(&ex.request_id)),
                    };
                    let mut resp = err.into_response_with(&ex.request_id, &body_json);
                    if let Some(status) = status {
                        *resp.status_mut() = status;
                    }
                    ex.status = Some(resp.status().as_u16());
                    let verdict = err.verdict();
                    let kind = match err {
                        ProxyError::Unauthenticated(_) | ProxyError::Forbidden(_) => {
                            EventKind::AuthRefused
                        }
                        ProxyError::AuditUnavailable(_) => EventKind::Rejected,
                        _ => EventKind::HttpExchange,
                    };
                    let mut body = Capture::new(self.capture_limit);
                    body.add(&serde_json::to_vec(&body_json).unwrap_or_default());
                    let backlog_full = matches!(
                        err,
                        ProxyError::AuditUnavailable(crate::audit::AuditUnavailable::BacklogFull(
                            _
                        ))
                    );
                    if !backlog_full {
                        self.record(&session, ex, kind, verdict, Some(body), Some(&err));
                    }
                    self.metrics.request(&self.name, verdict);
                    resp
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn exchange(
        self: &Arc<Self>,
        req: Request<Incoming>,
        session: &Arc<SessionMeta>,
        ex: &mut Exchange,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        self.audit.admit().map_err(ProxyError::AuditUnavailable)?;
        let (mut parts, mut incoming) = req.into_parts();
        let cred_header = self
            .upstream
            .credential
            .as_ref()
            .map(|c| c.header.as_str().to_string())
            .unwrap_or_default();
        ex.request_headers = event::visible_headers(&parts.headers, &cred_header);

        let principal = self.authenticate(&parts.headers, ex).await?;
        tracing::Span::current().record("principal", principal.subject.as_str());
        let needs_body = self.adapter.as_ref().is_some_and(|a| a.needs_body(&parts));
        let limit = if needs_body {
            self.body_limit
        } else {
            self.inspect_limit
        };
        let prefix = body::read_prefix(&mut incoming, limit)
            .await
            .map_err(|e| ProxyError::BadRequest(format!("could not read the request body: {e}")))?;
        if needs_body
            && (!prefix.complete || prefix.chunks.iter().map(Bytes::len).sum::<usize>() > limit)
        {
            return Err(ProxyError::TooLarge(format!(
                "this {} request must be read whole to be checked, and its body is over body_limit_bytes ({limit} bytes)",
                self.protocol
            )));
        }
        let prefix_bytes = prefix.bytes();
        let mut adapted: Option<Box<dyn AdapterExchange>> = match &self.adapter {
            Some(a) => a.decode(RequestView {
                parts: &parts,
                body: &prefix_bytes,
                body_complete: prefix.complete,
            })?,
            None => None,
        };
        ex.refuser = adapted.as_ref().and_then(|a| a.refuser());
        let wit_protocol = self
            .adapter
            .as_ref()
            .map_or(crate::policy::bindings::types::Protocol::Http, |a| {
                a.wit_protocol()
            });
        let ctx = event::context(
            &principal,
            session,
            &self.labels,
            &ex.request_id,
            wit_protocol,
        );
        let wit_req = Arc::new(event::request(
            &parts,
            self.upstream.scheme(),
            self.upstream.authority(),
            &prefix_bytes,
            prefix.complete,
            &cred_header,
        ));
        let ctx = Arc::new(ctx);

        // Request phase: the plain `http` hook, then the protocol's own.
        let outcome = self
            .run_chain({
                let (ctx, r) = (ctx.clone(), wit_req.clone());
                move |p| p.http_on_request(&ctx, &r)
            })
            .await?;
        let mut request_masks = outcome.masks.clone();
        let mut verdict = outcome.verdict.clone();
        ex.request_decision = Some(outcome);
        if let Some(a) = adapted
            .as_mut()
            .filter(|_| !matches!(verdict, Verdict::Deny { .. }))
        {
            a.prepare(adapter::PrepareCx {
                ctx: ctx.clone(),
                upstream: adapter::UpstreamCaller::new(
                    self.upstream.clone(),
                    session.client_addr.clone(),
                    self.upstream_timeout,
                ),
            })
            .await;
            let hook = a.request_hook(ctx.clone());
            let outcome = self.run_chain(move |p| hook(p)).await?;
            request_masks.extend(outcome.masks.iter().cloned());
            verdict = verdict.or(outcome.verdict.clone());
            ex.protocol_decision = Some(outcome);
        }
        // What is recorded from here on is masked like the request itself.
        ex.record_masks = Some(self.compile(&request_masks, true)?);
        let req_compiled = self.compile(&request_masks, false)?;
        // The adapter masks inside its protocol's fields; `None` when it
        // left the body as it was. A denied request is described too, for
        // the record, before its refusal.
        let rewritten = match adapted.as_mut() {
            Some(a) => {
                let b = a.mask_request(&req_compiled);
                ex.protocol_request = Some(a.describe());
                b
            }
            None => Ok(None),
        };
        if let Verdict::Deny { .. } = verdict {
            self.check_verdict(verdict.clone())?;
        }
        let rewritten = rewritten?;
        // Held until people decide; only an approval goes on. What
        // approvers see, and what is recorded, is masked like the request.
        if let Verdict::RequireApproval { policy, approval } = verdict {
            let held = hold::Held {
                session,
                principal: &principal,
                parts: &parts,
                body: rewritten.as_deref().unwrap_or(&prefix_bytes),
                complete: prefix.complete,
                protocol: self.protocol,
                detail: ex.protocol_request.clone(),
            };
            self.hold(held, policy, approval, ex).await?;
        }
        // What the upstream will see, recorded with masks applied.
        let mut captured_req = Capture::new(self.capture_limit);
        captured_req.add(rewritten.as_deref().unwrap_or(&prefix_bytes));
        captured_req.truncated |= !prefix.complete;
        ex.request_body = Some(captured_req);

        for (name, value) in parts.headers.iter_mut() {
            if let Some(masked) = req_compiled.header_value(name.as_str(), value.as_bytes()) {
                *value = HeaderValue::from_bytes(&masked)
                    .unwrap_or(HeaderValue::from_static("[MASKED]"));
            }
        }
        // A switch of protocols (`kubectl exec`) goes on only now that the
        // request phase allowed it; the adapter's relay carries the stream.
        if let Some(relay) = adapted.as_mut().and_then(|a| a.upgrade()) {
            let masks = match ex.record_masks.clone() {
                Some(m) => m,
                None => self.compile(&request_masks, true)?,
            };
            return self.forward_upgrade(parts, relay, session, ex, masks).await;
        }
        if rewritten.is_some() && !prefix.complete {
            return Err(ProxyError::Internal(format!(
                "the {} adapter rewrote a body it had not read whole",
                self.protocol
            )));
        }
        let upstream_body = if adapted.is_some() && prefix.complete {
            // The adapter read the body whole and masked it field by field.
            let bytes = rewritten.unwrap_or(prefix_bytes);
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Full::new(Bytes::from(bytes))
                .map_err(|e| match e {})
                .boxed_unsync()
        } else if req_compiled.json_pointers.is_empty() {
            body::request_body(
                prefix,
                incoming,
                req_compiled
                    .text
                    .clone()
                    .map(|t| (t, req_compiled.hash_key.clone())),
            )
        } else {
            if !prefix.complete {
                return Err(ProxyError::TooLarge(format!(
                    "a policy masks fields of this request body, which must then be at most {} bytes",
                    self.inspect_limit
                )));
            }
            let masked = mask_json(&prefix_bytes, &req_compiled).map_err(ProxyError::BadRequest)?;
            Full::new(Bytes::from(masked))
                .map_err(|e| match e {})
                .boxed_unsync()
        };
        ex.request_headers = event::visible_headers(&parts.headers, &cred_header);
        if req_compiled.text.is_some() || !req_compiled.json_pointers.is_empty() {
            // Masking changes the length; hyper frames the new body itself.
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        self.aim_upstream(&mut parts, session)?;
        if let Some(a) = adapted.as_ref() {
            a.upstream_headers(&mut parts.headers);
        }
        let upstream_req = Request::from_parts(parts, upstream_body);

        let resp = tokio::time::timeout(
            self.upstream_timeout,
            self.upstream.client.request(upstream_req),
        )
        .await
        .map_err(|_| ProxyError::UpstreamTimeout(self.upstream_timeout.as_millis() as u64))?
        .map_err(|e| ProxyError::Upstream(error_chain(&e)))?;
        let (mut rparts, rbody) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        ex.status = Some(rparts.status.as_u16());

        // Response phase.
        let wit_resp = super::super::policy::bindings::http::HttpResponse {
            status: rparts.status.as_u16(),
            headers: event::visible_headers(&rparts.headers, ""),
        };
        let outcome = self
            .run_chain({
                let (ctx, r) = (ctx.clone(), wit_req.clone());
                move |p| p.http_on_response(&ctx, &r, &wit_resp)
            })
            .await?;
        let mut all_masks = request_masks;
        all_masks.extend(outcome.masks.iter().cloned());
        let verdict = outcome.verdict.clone();
        ex.response_decision = Some(outcome);
        self.check_verdict(verdict)?;
        let compiled = self.compile(&all_masks, true)?;
        ex.record_masks = Some(compiled.clone());

        for (name, value) in rparts.headers.iter_mut() {
            if let Some(masked) = compiled.header_value(name.as_str(), value.as_bytes()) {
                *value = HeaderValue::from_bytes(&masked)
                    .unwrap_or(HeaderValue::from_static("[MASKED]"));
            }
        }
        ex.response_headers = event::visible_headers(&rparts.headers, "");
        let encoded = rparts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded && (compiled.text.is_some() || !compiled.json_pointers.is_empty()) {
            return Err(ProxyError::MaskFailed(
                "the upstream sent a compressed body although identity encoding was asked for; it cannot be masked".into(),
            ));
        }
        if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
            rparts.headers.insert("x-gatehouse-request-id", v);
        }
        let plan = match adapted.as_mut() {
            Some(a) => a.response(
                rparts.status,
                &rparts.headers,
                ResponseCx {
                    chain: self.chain.clone(),
                    ctx: ctx.clone(),
                    masks: compiled.clone(),
                    rules: all_masks.clone().into(),
                    compiler: self.masks.clone(),
                    literals: self.credential_literals().into(),
                    started: ex.started,
                },
            )?,
            None => ResponsePlan::PassThrough,
        };
        if encoded && !matches!(plan, ResponsePlan::PassThrough) {
            return Err(ProxyError::MaskFailed(format!(
                "the upstream sent a compressed body although identity encoding was asked for; the {} adapter cannot read it",
                self.protocol
            )));
        }

        let this = self.clone();
        let session = session.clone();
        let allowed = if ex.approval.is_some() {
            "approved"
        } else {
            "allow"
        };
        match plan {
            ResponsePlan::PassThrough => {}
            ResponsePlan::Buffered(buffered) => {
                let bytes = Limited::new(rbody, self.json_limit)
                    .collect()
                    .await
                    .map_err(|e| {
                        ProxyError::MaskFailed(format!(
                            "the {} adapter reads this response whole, which must then be at most {} bytes (json_mask_limit_bytes): {e}",
                            self.protocol, self.json_limit
                        ))
                    })?
                    .to_bytes();
                let finished = buffered.finish(bytes).await?;
                ex.protocol_response = Some(finished.detail);
                let verdict = finished.decision.as_ref().map(|d| d.verdict.clone());
                ex.protocol_response_decision = finished.decision;
                if let Some(v) = verdict {
                    self.check_verdict(v)?;
                }
                let ex_owned = std::mem::replace(ex, ex.placeholder());
                return Ok(self.whole_response(&session, ex_owned, rparts, finished.body, allowed));
            }
            ResponsePlan::Stream(transform) => {
                rparts.headers.remove(http::header::CONTENT_LENGTH);
                let mut ex_owned = std::mem::replace(ex, ex.placeholder());
                let body = body::stream_transformed(
                    rbody,
                    Some(transform),
                    self.capture_limit,
                    move |capture, report| {
                        let mut verdict = if capture.error.is_some() {
                            "error"
                        } else {
                            allowed
                        };
                        if let Some(report) = report {
                            if report
                                .decision
                                .as_ref()
                                .is_some_and(|d| matches!(d.verdict, Verdict::Deny { .. }))
                            {
                                verdict = "deny";
                            }
                            ex_owned.protocol_response = Some(report.detail);
                            ex_owned.protocol_response_decision = report.decision;
                        }
                        this.metrics.request(&this.name, verdict);
                        this.record(
                            &session,
                            ex_owned,
                            EventKind::HttpExchange,
                            verdict,
                            Some(capture),
                            None,
                        );
                    },
                );
                return Ok(Response::from_parts(rparts, body));
            }
        }
        let ex_owned = std::mem::replace(ex, ex.placeholder());
        if !compiled.json_pointers.is_empty() {
            let limited = Limited::new(rbody, self.json_limit);
            let bytes = limited.collect().await.map_err(|e| {
                ProxyError::MaskFailed(format!(
                    "a policy masks fields of this JSON response, which must then be at most {} bytes: {e}",
                    self.json_limit
                ))
            })?;
            let masked = mask_json(&bytes.to_bytes(), &compiled).map_err(ProxyError::MaskFailed)?;
            return Ok(self.whole_response(&session, ex_owned, rparts, masked, allowed));
        }
        if compiled.text.is_some() {
            rparts.headers.remove(http::header::CONTENT_LENGTH);
        }
        let matcher = compiled
            .text
            .clone()
            .map(|t| (t, compiled.hash_key.clone()));
        let body = body::stream_masked(rbody, matcher, self.capture_limit, move |capture| {
            let verdict = if capture.error.is_some() {
                "error"
            } else {
                allowed
            };
            this.metrics.request(&this.name, verdict);
            this.record(
                &session,
                ex_owned,
                EventKind::HttpExchange,
                verdict,
                Some(capture),
                None,
            );
        });
        Ok(Response::from_parts(rparts, body))
    }

    async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        ex: &mut Exchange,
    ) -> Result<Principal, ProxyError> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| headers.get("x-gatehouse-key").and_then(|v| v.to_str().ok()))
            .map(str::trim);
        let Some(presented) = presented else {
            return Err(ProxyError::Unauthenticated(AuthError::Missing));
        };
        // Record which credential was presented, never the secret part.
        ex.presented = Some(Authenticator::describe(presented));
        let principal = self
            .auth
            .authenticate(presented)
            .await
            .map_err(ProxyError::Unauthenticated)?;
        ex.principal = Some(principal.clone());
        principal
            .may_use(&self.name, &self.allowed_groups)
            .map_err(ProxyError::Forbidden)?;
        Ok(principal)
    }

    async fn run_chain(
        &self,
        hook: impl Fn(
            &crate::policy::LoadedPolicy,
        ) -> Option<
            Result<crate::policy::bindings::types::Decision, crate::policy::invoke::CallFailure>,
        > + Send
        + 'static,
    ) -> Result<ChainOutcome, ProxyError> {
        adapter::run_chain(&self.chain, hook).await
    }

    fn check_verdict(&self, verdict: Verdict) -> Result<(), ProxyError> {
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Deny { policy, reason } => Err(ProxyError::Denied {
                policy: policy.to_string(),
                reason,
            }),
            Verdict::RequireApproval { policy, approval } => Err(ProxyError::ApprovalRequired {
                policy: policy.to_string(),
                approval,
            }),
        }
    }

    fn compile(
        &self,
        rules: &[MaskRule],
        with_credential: bool,
    ) -> Result<Arc<CompiledMasks>, ProxyError> {
        let literals = if with_credential {
            self.credential_literals()
        } else {
            vec![]
        };
        self.masks
            .compile(rules, &literals)
            .map_err(|e| ProxyError::MaskFailed(e.to_string()))
    }

    /// A response whose (masked) body is whole: recorded, then sent.
    fn whole_response(
        &self,
        session: &SessionMeta,
        ex: Exchange,
        mut parts: http::response::Parts,
        body: Vec<u8>,
        verdict: &str,
    ) -> Response<ProxyBody> {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        let mut capture = Capture::new(self.capture_limit);
        capture.add(&body);
        self.metrics.request(&self.name, verdict);
        self.record(
            session,
            ex,
            EventKind::HttpExchange,
            verdict,
            Some(capture),
            None,
        );
        Response::from_parts(
            parts,
            Full::new(Bytes::from(body))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
    }

    /// The held credential, as a literal mask.
    fn credential_literals(&self) -> Vec<String> {
        self.upstream
            .credential
            .as_ref()
            .map(|c| vec![c.secret.clone()])
            .unwrap_or_default()
    }

    fn record(
        &self,
        session: &SessionMeta,
        ex: Exchange,
        kind: EventKind,
        verdict: &str,
        response: Option<Capture>,
        err: Option<&ProxyError>,
    ) {
        let masks = ex
            .record_masks
            .clone()
            .or_else(|| self.compile(&[], true).ok());
        let show = |c: &Capture| -> serde_json::Value {
            let text = match masks.as_ref().and_then(|m| m.text.as_ref()) {
                Some(t) => crate::mask::stream::mask_all(
                    t,
                    &masks
                        .as_ref()
                        .map(|m| m.hash_key.clone())
                        .unwrap_or_else(|| Arc::from(&b""[..])),
                    &c.body,
                ),
                None => c.body.clone(),
            };
            json!({
                "bytes": c.bytes,
                "body": String::from_utf8_lossy(&text),
                "truncated": c.truncated,
                "masked": c.masked,
                "error": c.error,
            })
        };
        let mask_headers = |headers: &[(String, String)]| -> Vec<(String, String)> {
            headers
                .iter()
                .map(|(k, v)| {
                    let v = masks
                        .as_ref()
                        .and_then(|m| m.header_value(k, v.as_bytes()))
                        .map(|m| String::from_utf8_lossy(&m).into_owned())
                        .unwrap_or_else(|| v.clone());
                    (k.clone(), v)
                })
                .collect()
        };
        let status = ex
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        let mut detail = json!({
            "request_id": ex.request_id,
            "presented": ex.presented,
            "request": {
                "method": ex.method,
                "target": ex.target,
                "headers": mask_headers(&ex.request_headers),
                "body": ex.request_body.as_ref().map(show),
            },
            "decisions": {
                "request": ex.request_decision,
                "response": ex.response_decision,
            },
            "response": {
                "status": ex.status,
                "headers": mask_headers(&ex.response_headers),
                "body": response.as_ref().map(show),
            },
            "error": err.map(|e| json!({"code": e.code(), "message": e.to_string()})),
            "duration_us": ex.started.elapsed().as_micros() as u64,
        });
        if let Some((id, outcome)) = &ex.approval {
            detail["approval"] = json!({"id": id, "outcome": outcome});
        }
        if self.adapter.is_some() {
            detail["decisions"]["protocol_request"] = json!(ex.protocol_decision);
            detail["decisions"]["protocol_response"] = json!(ex.protocol_response_decision);
            let mut protocol = json!({
                "request": ex.protocol_request,
                "response": ex.protocol_response,
            });
            // Adapters describe with the request's masks; the record's also
            // hold the credential.
            if let Some(m) = masks.as_ref() {
                adapter::mask_json_strings(&mut protocol, m);
            }
            detail[self.protocol] = protocol;
        }
        self.audit.record_event(AuditEvent {
            session: std::sync::Arc::new(self.session_info(session)),
            at_ms: ex.at_ms,
            kind,
            principal: ex
                .principal
                .as_ref()
                .map(|p| std::sync::Arc::new(p.record())),
            verdict: verdict.to_string(),
            summary: format!("{} {} -> {}", ex.method, ex.target, status),
            detail: detail.into(),
        });
    }
}

impl Exchange {
    /// An empty stand-in left behind when the exchange moves into the
    /// response task.
    fn placeholder(&self) -> Exchange {
        Exchange::new(self.request_id.clone(), String::new(), String::new())
    }

    fn new(request_id: String, method: String, target: String) -> Exchange {
        Exchange {
            request_id,
            started: Instant::now(),
            at_ms: crate::audit::record::now_ms(),
            principal: None,
            presented: None,
            method,
            target,
            request_headers: vec![],
            request_body: None,
            request_decision: None,
            response_decision: None,
            status: None,
            response_headers: vec![],
            record_masks: None,
            approval: None,
            protocol_request: None,
            protocol_decision: None,
            protocol_response: None,
            protocol_response_decision: None,
            refuser: None,
        }
    }
}

fn mask_json(bytes: &[u8], masks: &CompiledMasks) -> Result<Vec<u8>, String> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("a policy masks JSON fields but the body is not JSON: {e}"))?;
    crate::mask::json::mask_pointers(&mut doc, &masks.json_pointers, &masks.hash_key);
    let out = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
    Ok(match &masks.text {
        Some(t) => crate::mask::stream::mask_all(t, &masks.hash_key, &out),
        None => out,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl HttpProxy {
    /// Points a request at the upstream: its URI, its headers rewritten
    /// (the held credential in, hop-by-hop and Gatehouse's out), HTTP/1.1.
    fn aim_upstream(
        &self,
        parts: &mut http::request::Parts,
        session: &SessionMeta,
    ) -> Result<(), ProxyError> {
        parts.uri = self
            .upstream
            .uri_for(&parts.uri)
            .map_err(ProxyError::BadRequest)?;
        self.upstream
            .prepare_headers(&mut parts.headers, &session.client_addr);
        parts.version = http::Version::HTTP_11;
        Ok(())
    }

    /// The session as audit records name it.
    fn session_info(&self, session: &SessionMeta) -> SessionInfo {
        SessionInfo {
            id: session.id.clone(),
            connection: session.connection.clone(),
            protocol: self.protocol.into(),
            client_addr: session.client_addr.clone(),
            started_at_ms: session.started_at_ms,
        }
    }

    pub fn end_session(&self, session_id: &str) {
        self.audit.end_session(session_id.to_string());
    }
}
