//! The Kubernetes API adapter, on top of the HTTP path (`http/adapter.rs`):
//! requests classified as the API server does (`request_info`) and shown to
//! the `kubernetes` hook; Secret masks applied per object in every framing
//! the API uses (`objects`, `watch`, through `exchange`); refusals as
//! `Status` objects (`status`); `exec`/`attach` and `portforward` decided
//! before the upgrade and relayed and recorded after it, over WebSocket or
//! SPDY/3.1 (`exec`, `portforward`, `spdy`, `spdy_relay`, `record`).
//!
//! Gatehouse asks the API server for JSON (a protobuf `Accept` is rewritten)
//! so that no answer reaches a caller in a form its masks cannot read.

pub mod exchange;
pub mod exec;
pub mod objects;
pub mod portforward;
pub mod record;
pub mod request_info;
pub mod spdy;
pub mod spdy_relay;
pub mod status;
pub mod watch;

use std::sync::Arc;

use http::HeaderValue;
use serde_json::Value;

use super::adapter::{AdapterError, AdapterExchange, ProtocolAdapter, RequestView, UpgradeRelay};
use super::errors::ProxyError;
use crate::config::ConnectionConfig;
use crate::policy::bindings::kubernetes::KubernetesRequest;
use crate::policy::bindings::types as wit;
use exchange::KubeExchange;
use exec::{ExecRelay, Transport};
use portforward::PortForwardRelay;
use request_info::RequestInfo;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

pub struct KubernetesAdapter {
    json_limit: usize,
    stream_record_limit: u64,
}

impl KubernetesAdapter {
    pub fn new(c: &ConnectionConfig) -> Self {
        Self {
            json_limit: c.json_mask_limit_bytes,
            stream_record_limit: c.stream_record_bytes,
        }
    }
}

fn classify(parts: &http::request::Parts) -> RequestInfo {
    request_info::classify(parts.method.as_str(), parts.uri.path(), parts.uri.query())
}

impl ProtocolAdapter for KubernetesAdapter {
    fn protocol(&self) -> &'static str {
        "kubernetes"
    }

    fn wit_protocol(&self) -> wit::Protocol {
        wit::Protocol::Kubernetes
    }

    /// Every resource request with a body (writes, and deletes with their
    /// `DeleteOptions`) is read whole: the policy sees the request object.
    fn needs_body(&self, parts: &http::request::Parts) -> bool {
        classify(parts).is_resource_request
            && !matches!(parts.method, http::Method::GET | http::Method::HEAD)
    }

    fn decode(
        &self,
        req: RequestView<'_>,
    ) -> Result<Option<Box<dyn AdapterExchange>>, AdapterError> {
        let info = classify(req.parts);
        if !info.is_resource_request {
            // Discovery, `/version`, `/openapi`: plain HTTP to policies.
            return Ok(None);
        }
        let content_type = req
            .parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let object = if info.has_request_object() || !req.body.is_empty() {
            request_object(req.body, content_type)?
        } else {
            None
        };
        let command = if info.is_exec_or_attach() {
            request_info::exec_command(req.parts.uri.query())
        } else {
            vec![]
        };
        let relay = if req.parts.headers.contains_key(http::header::UPGRADE) {
            // Which upgrades can be relayed is checked after the request
            // phase (`UpgradeRelay::prepare`): a policy's refusal comes
            // first, whatever transport the client asked for.
            let transport = Transport::of(&req.parts.headers);
            let pod = format!(
                "{}/{}",
                info.namespace.as_deref().unwrap_or("-"),
                info.name.as_deref().unwrap_or("-")
            );
            let verb = info.policy_verb();
            let relay: Box<dyn UpgradeRelay> = if info.is_exec_or_attach() {
                let label = if command.is_empty() {
                    format!("{verb} {pod}")
                } else {
                    format!("{verb} {pod}: {}", command.join(" "))
                };
                Box::new(ExecRelay {
                    label,
                    record_limit: self.stream_record_limit,
                    transport,
                })
            } else if info.is_port_forward() {
                Box::new(PortForwardRelay {
                    label: format!("{verb} {pod}"),
                    record_limit: self.stream_record_limit,
                    transport,
                })
            } else {
                return Err(AdapterError::BadRequest(format!(
                    "Gatehouse relays upgraded streams for exec, attach and portforward only, not for {verb} of {}",
                    info.resource
                )));
            };
            Some(relay)
        } else {
            None
        };
        let request = KubernetesRequest {
            verb: info.policy_verb().to_string(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            object: object.as_ref().map(Value::to_string),
            command,
        };
        Ok(Some(Box::new(KubeExchange {
            info,
            request: Arc::new(request),
            object,
            json_limit: self.json_limit,
            relay,
        })))
    }

    fn error_body(&self, err: &ProxyError, request_id: &str, _target: &str) -> Value {
        status::status_body(err, request_id)
    }
}

/// The request object of a write: JSON (every patch type kubectl sends is
/// JSON, server-side apply included). Protobuf is refused: a policy could
/// not read it.
fn request_object(body: &[u8], content_type: &str) -> Result<Option<Value>, AdapterError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if content_type.starts_with(PROTOBUF) {
        return Err(AdapterError::BadRequest(format!(
            "Gatehouse reads Kubernetes request objects as JSON, and this one was sent as {PROTOBUF}; send JSON (as kubectl does)"
        )));
    }
    match serde_json::from_slice(body) {
        Ok(v) => Ok(Some(v)),
        Err(e) if content_type.contains("yaml") => {
            // YAML that is not JSON: the policy sees no object and decides so.
            tracing::debug!(error = %e, "request object is YAML, not JSON");
            Ok(None)
        }
        Err(e) => Err(AdapterError::BadRequest(format!(
            "the request object is not valid JSON: {e}"
        ))),
    }
}

/// `Accept` for the upstream: protobuf ranges removed, so answers come as
/// JSON that masks can read (`application/json` when nothing else is left).
pub fn json_accept(accept: Option<&HeaderValue>) -> HeaderValue {
    let Some(s) = accept.and_then(|v| v.to_str().ok()) else {
        return HeaderValue::from_static("application/json");
    };
    let kept: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty() && !r.starts_with(PROTOBUF))
        .collect();
    if kept.is_empty() {
        return HeaderValue::from_static("application/json");
    }
    HeaderValue::from_str(&kept.join(",")).unwrap_or(HeaderValue::from_static("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_is_never_asked_for() {
        let v = |s: &str| json_accept(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(
            v("application/vnd.kubernetes.protobuf,application/json"),
            "application/json"
        );
        assert_eq!(
            v(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
            ),
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        );
        assert_eq!(
            v("application/vnd.kubernetes.protobuf;stream=watch"),
            "application/json"
        );
        assert_eq!(json_accept(None), "application/json");
        assert_eq!(v("application/json, */*"), "application/json,*/*");
    }

    #[test]
    fn request_objects_must_be_readable() {
        assert!(
            request_object(b"{\"kind\":\"Pod\"}", "application/json")
                .unwrap()
                .is_some()
        );
        assert!(request_object(b"", "application/json").unwrap().is_none());
        let err = request_object(b"\x0a\x02k8s", PROTOBUF).unwrap_err();
        assert!(err.to_string().contains("send JSON"), "{err}");
        assert!(request_object(b"{oops", "application/json").is_err());
        assert!(
            request_object(b"kind: Pod\n", "application/apply-patch+yaml")
                .unwrap()
                .is_none()
        );
    }
}
