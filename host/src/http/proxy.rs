//! One HTTP exchange through the phases: admit → authenticate → inspect →
//! request chain → (hold for approval) → forward → response chain → mask →
//! stream back → record.

mod hold;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::Instrument;

use super::ProxyBody;
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
    upstream: Upstream,
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
        Ok(Self {
            name: c.name.clone(),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            allowed_groups: c.allowed_groups.clone(),
            upstream: Upstream::new(c)?,
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
                    let resp = err.into_response(&ex.request_id);
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
                    body.add(
                        &serde_json::to_vec(&err.body_json(&ex.request_id)).unwrap_or_default(),
                    );
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
        let prefix = body::read_prefix(&mut incoming, self.inspect_limit)
            .await
            .map_err(|e| ProxyError::BadRequest(format!("could not read the request body: {e}")))?;
        let prefix_bytes = prefix.bytes();
        let ctx = event::context(&principal, session, &self.labels, &ex.request_id);
        let wit_req = Arc::new(event::request(
            &parts,
            self.upstream.scheme(),
            self.upstream.authority(),
            &prefix_bytes,
            prefix.complete,
            &cred_header,
        ));
        let ctx = Arc::new(ctx);

        // Request phase.
        let outcome = self
            .run_chain({
                let (ctx, r) = (ctx.clone(), wit_req.clone());
                move |p| p.http_on_request(&ctx, &r)
            })
            .await?;
        let request_masks = outcome.masks.clone();
        let verdict = outcome.verdict.clone();
        ex.request_decision = Some(outcome);
        match verdict {
            // Held until people decide; only an approval goes on. What
            // approvers see, and what is recorded, is masked like the request.
            Verdict::RequireApproval { policy, approval } => {
                ex.record_masks = Some(self.compile(&request_masks, true)?);
                let held = hold::Held {
                    session,
                    principal: &principal,
                    parts: &parts,
                    body: &prefix_bytes,
                    complete: prefix.complete,
                };
                self.hold(held, policy, approval, ex).await?;
            }
            v => self.check_verdict(v)?,
        }
        let req_compiled = self.compile(&request_masks, false)?;
        // What is recorded from here on is masked like the request itself.
        ex.record_masks = Some(self.compile(&request_masks, true)?);

        // What the upstream will see, recorded with masks applied.
        let mut captured_req = Capture::new(self.capture_limit);
        captured_req.add(&prefix_bytes);
        captured_req.truncated |= !prefix.complete;
        ex.request_body = Some(captured_req);

        for (name, value) in parts.headers.iter_mut() {
            if let Some(masked) = req_compiled.header_value(name.as_str(), value.as_bytes()) {
                *value = HeaderValue::from_bytes(&masked)
                    .unwrap_or(HeaderValue::from_static("[MASKED]"));
            }
        }
        let upstream_body = if req_compiled.json_pointers.is_empty() {
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
        parts.uri = self
            .upstream
            .uri_for(&parts.uri)
            .map_err(ProxyError::BadRequest)?;
        self.upstream
            .prepare_headers(&mut parts.headers, &session.client_addr);
        parts.version = http::Version::HTTP_11;
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

        let this = self.clone();
        let session = session.clone();
        let allowed = if ex.approval.is_some() {
            "approved"
        } else {
            "allow"
        };
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
            rparts.headers.remove(http::header::CONTENT_LENGTH);
            let mut capture = Capture::new(self.capture_limit);
            capture.add(&masked);
            this.metrics.request(&this.name, allowed);
            this.record(
                &session,
                ex_owned,
                EventKind::HttpExchange,
                allowed,
                Some(capture),
                None,
            );
            return Ok(Response::from_parts(
                rparts,
                Full::new(Bytes::from(masked))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            ));
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
        let chain = self.chain.clone();
        tokio::task::spawn_blocking(move || chain.run(hook))
            .await
            .map_err(|e| ProxyError::Internal(format!("policy chain task failed: {e}")))
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
        let literals: Vec<String> = match (&self.upstream.credential, with_credential) {
            (Some(c), true) => vec![c.secret.clone()],
            _ => vec![],
        };
        self.masks
            .compile(rules, &literals)
            .map_err(|e| ProxyError::MaskFailed(e.to_string()))
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
        self.audit.record_event(AuditEvent {
            session: SessionInfo {
                id: session.id.clone(),
                connection: session.connection.clone(),
                protocol: "http".into(),
                client_addr: session.client_addr.clone(),
                started_at_ms: session.started_at_ms,
            },
            at_ms: ex.at_ms,
            kind,
            principal: ex.principal.as_ref().map(Principal::record),
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
    pub fn end_session(&self, session_id: &str) {
        self.audit.end_session(session_id.to_string());
    }
}
