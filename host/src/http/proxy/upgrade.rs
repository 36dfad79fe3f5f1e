//! Switching protocols (`kubectl exec`/`attach`): the request was decided
//! like any other, and only then is the upgrade forwarded, over HTTP/1.1.
//! The upstream's 101 goes back to the caller, and both upgraded
//! connections go to the adapter's relay, which records the stream as
//! parts in the caller's session. An upstream that refuses the upgrade is
//! answered as any other response.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::Instrument;

use super::super::ProxyBody;
use super::super::adapter::UpgradeRelay;
use super::super::body::Capture;
use super::super::errors::ProxyError;
use super::super::event::{self, SessionMeta};
use super::{Exchange, HttpProxy, error_chain};
use crate::audit::{AuditEvent, EventKind};
use crate::mask::CompiledMasks;

impl HttpProxy {
    pub(super) async fn forward_upgrade(
        self: &Arc<Self>,
        mut parts: http::request::Parts,
        relay: Box<dyn UpgradeRelay>,
        session: &Arc<SessionMeta>,
        ex: &mut Exchange,
        masks: Arc<CompiledMasks>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let client_side = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            ProxyError::BadRequest(
                "this request asks to switch protocols, which needs HTTP/1.1".into(),
            )
        })?;
        let upgrade =
            parts.headers.get(header::UPGRADE).cloned().ok_or_else(|| {
                ProxyError::BadRequest("an upgrade without an Upgrade header".into())
            })?;
        relay.prepare(&mut parts.headers)?;
        self.aim_upstream(&mut parts, session)?;
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        parts.headers.insert(header::UPGRADE, upgrade);
        parts.headers.remove(header::CONTENT_LENGTH);
        let req = Request::from_parts(parts, Empty::new().map_err(|e| match e {}).boxed_unsync());
        let mut resp = tokio::time::timeout(
            self.upstream_timeout,
            self.upstream.upgrade_client.request(req),
        )
        .await
        .map_err(|_| ProxyError::UpstreamTimeout(self.upstream_timeout.as_millis() as u64))?
        .map_err(|e| ProxyError::Upstream(error_chain(&e)))?;
        ex.status = Some(resp.status().as_u16());
        ex.response_headers = event::visible_headers(resp.headers(), "");
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // The upstream refused (a `Status` from the API server): passed
            // on as it is, masked like any answer.
            let (rparts, body) = resp.into_parts();
            let bytes = Limited::new(body, self.json_limit)
                .collect()
                .await
                .map_err(|e| {
                    ProxyError::Upstream(format!(
                        "the upstream refused the upgrade and its answer could not be read: {e}"
                    ))
                })?
                .to_bytes();
            let masked = match &masks.text {
                Some(t) => crate::mask::stream::mask_all(t, &masks.hash_key, &bytes),
                None => bytes.to_vec(),
            };
            let mut capture = Capture::new(self.capture_limit);
            capture.add(&masked);
            let ex_owned = std::mem::replace(ex, ex.placeholder());
            self.metrics.request(&self.name, "allow");
            self.record(
                session,
                ex_owned,
                EventKind::HttpExchange,
                "allow",
                Some(capture),
                None,
            );
            let mut rparts = rparts;
            super::super::upstream::strip_hop_by_hop(&mut rparts.headers);
            rparts.headers.remove(header::CONTENT_LENGTH);
            return Ok(Response::from_parts(
                rparts,
                Full::new(Bytes::from(masked))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            ));
        }
        let upstream_side = hyper::upgrade::on(&mut resp);
        let mut out = Response::new(Empty::new().map_err(|e| match e {}).boxed_unsync());
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for (name, value) in resp.headers() {
            out.headers_mut().append(name.clone(), value.clone());
        }
        if let Ok(v) = HeaderValue::from_str(&ex.request_id) {
            out.headers_mut().insert("x-gatehouse-request-id", v);
        }
        let allowed = if ex.approval.is_some() {
            "approved"
        } else {
            "allow"
        };
        let request_id = ex.request_id.clone();
        let principal = ex
            .principal
            .as_ref()
            .map(|p| std::sync::Arc::new(p.record()));
        let ex_owned = std::mem::replace(ex, ex.placeholder());
        self.metrics.request(&self.name, allowed);
        self.record(
            session,
            ex_owned,
            EventKind::HttpExchange,
            allowed,
            None,
            None,
        );

        let this = self.clone();
        let session = session.clone();
        let span = tracing::info_span!("stream", id = %request_id);
        tokio::spawn(
            async move {
                let record = {
                    let this = this.clone();
                    let session = session.clone();
                    let request_id = request_id.clone();
                    move |summary: String, mut detail: serde_json::Value| {
                        detail["request_id"] = serde_json::json!(request_id);
                        this.audit.record_event(AuditEvent {
                            session: std::sync::Arc::new(this.session_info(&session)),
                            at_ms: crate::audit::record::now_ms(),
                            kind: EventKind::StreamFrames,
                            principal: principal.clone(),
                            verdict: allowed.to_string(),
                            summary,
                            detail: detail.into(),
                        });
                    }
                };
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((client, upstream)) => {
                        relay
                            .relay(
                                TokioIo::new(client),
                                TokioIo::new(upstream),
                                masks,
                                Box::new(record),
                            )
                            .await
                    }
                    Err(e) => tracing::info!(error = %e, "the upgrade did not complete"),
                }
                // The session lasted as long as its stream.
                this.audit.end_session(session.id.clone());
            }
            .instrument(span),
        );
        Ok(out)
    }
}
