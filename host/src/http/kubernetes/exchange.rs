//! One Kubernetes API request on the adapter framework (`http/adapter.rs`):
//! the classified request for the `kubernetes` hook, the request object
//! masked field by field, and the response carried per its framing: whole
//! objects, lists and tables read and masked per object, watch streams
//! masked event by event, anything else passed through.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::objects;
use super::request_info::RequestInfo;
use super::watch::WatchMasker;
use crate::http::adapter::{
    AdapterError, AdapterExchange, BufferedResponse, ChainHook, Finished, ResponseCx, ResponsePlan,
    UpgradeRelay,
};
use crate::http::body::{BodyTransform, StreamReport};
use crate::http::errors::ProxyError;
use crate::mask::CompiledMasks;
use crate::policy::bindings::kubernetes::KubernetesRequest;
use crate::policy::bindings::types as wit;

pub struct KubeExchange {
    pub info: RequestInfo,
    pub request: Arc<KubernetesRequest>,
    /// The request object, parsed, for writes sent as JSON.
    pub object: Option<Value>,
    /// `json_mask_limit_bytes`: the most of one response (or one watch
    /// event) that is held to mask it.
    pub json_limit: usize,
    /// For `exec`/`attach`/`portforward` upgrades: the relay that takes
    /// over after the 101.
    pub relay: Option<Box<dyn UpgradeRelay>>,
}

impl AdapterExchange for KubeExchange {
    fn request_hook(&self, ctx: Arc<wit::Context>) -> ChainHook {
        let request = self.request.clone();
        Arc::new(move |p| p.kubernetes_on_request(&ctx, &request))
    }

    fn mask_request(&mut self, masks: &CompiledMasks) -> Result<Option<Vec<u8>>, AdapterError> {
        if masks.json_pointers.is_empty() && masks.text.is_none() {
            return Ok(None);
        }
        let Some(object) = self.object.as_mut() else {
            return Ok(None);
        };
        objects::mask_document(object, masks);
        crate::http::adapter::mask_json_text(object, masks);
        let body = serde_json::to_vec(object)
            .map_err(|e| AdapterError::BadRequest(format!("the request object: {e}")))?;
        Ok(Some(body))
    }

    /// Answers must come as JSON, which masks can read.
    fn upstream_headers(&self, headers: &mut HeaderMap) {
        let accept = super::json_accept(headers.get(http::header::ACCEPT));
        headers.insert(http::header::ACCEPT, accept);
    }

    fn upgrade(&mut self) -> Option<Box<dyn UpgradeRelay>> {
        self.relay.take()
    }

    fn describe(&self) -> Value {
        let i = &self.info;
        let mut d = json!({
            "verb": self.request.verb,
            "api_verb": i.verb,
            "api_group": i.api_group,
            "api_version": i.api_version,
            "resource": i.resource,
            "subresource": i.subresource,
            "namespace": i.namespace,
            "name": i.name,
        });
        if !self.request.command.is_empty() {
            d["command"] = json!(self.request.command);
        }
        if let Some(o) = &self.object {
            d["object"] = o.clone();
        }
        d
    }

    fn response(
        &mut self,
        _status: StatusCode,
        headers: &HeaderMap,
        cx: ResponseCx,
    ) -> Result<ResponsePlan, AdapterError> {
        if cx.masks.json_pointers.is_empty() {
            return Ok(ResponsePlan::PassThrough);
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.is_empty() && !content_type.contains("json") {
            // Gatehouse asked for JSON; anything else cannot be masked.
            return Err(AdapterError::BadUpstream(format!(
                "a policy masks fields of Kubernetes objects, but the API server answered {content_type}"
            )));
        }
        if self.info.verb == "watch" {
            return Ok(ResponsePlan::Stream(Box::new(WatchTransform {
                masker: WatchMasker::new(self.json_limit),
                masks: cx.masks,
            })));
        }
        Ok(ResponsePlan::Buffered(Box::new(WholeObjects {
            masks: cx.masks,
        })))
    }
}

/// An object, a list or a table, masked per object once read whole.
struct WholeObjects {
    masks: Arc<CompiledMasks>,
}

impl BufferedResponse for WholeObjects {
    fn finish(self: Box<Self>, body: Bytes) -> BoxFuture<'static, Result<Finished, ProxyError>> {
        let result = objects::mask_body(&body, &self.masks)
            .map(|(body, masked)| Finished {
                body,
                decision: None,
                detail: json!({"masked_values": masked}),
            })
            .map_err(|e| ProxyError::MaskFailed(e.to_string()));
        Box::pin(std::future::ready(result))
    }
}

/// A watch stream, masked event by event as it streams.
struct WatchTransform {
    masker: WatchMasker,
    masks: Arc<CompiledMasks>,
}

impl BodyTransform for WatchTransform {
    fn push<'a>(
        &'a mut self,
        chunk: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let r = self
            .masker
            .push(chunk, &self.masks, out)
            .map_err(|e| e.to_string());
        Box::pin(std::future::ready(r))
    }

    fn finish<'a>(&'a mut self, out: &'a mut Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        let r = self
            .masker
            .finish(&self.masks, out)
            .map_err(|e| e.to_string());
        Box::pin(std::future::ready(r))
    }

    /// The watch ends with an `ERROR` event carrying a `Status`, which is
    /// how the API server itself ends a watch that fails.
    fn failure(&mut self, reason: &str) -> Vec<u8> {
        let status = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("gatehouse: {reason}"), "reason": "InternalError", "code": 502}});
        let mut line = serde_json::to_vec(&status).unwrap_or_default();
        line.push(b'\n');
        line
    }

    fn masked(&self) -> u64 {
        self.masker.masked
    }

    fn report(&mut self) -> Option<StreamReport> {
        Some(StreamReport {
            detail: json!({"masked_values": self.masker.masked}),
            decision: None,
        })
    }
}
