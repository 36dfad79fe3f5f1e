//! The LLM adapter (`protocol = "llm"`): OpenAI-compatible chat
//! completions, responses and embeddings, and Anthropic messages. Requests
//! are decoded into the `llm` hook's view and masked field by field before
//! they leave; answers are read whole (JSON) or masked event by event
//! (server-sent events); refusals take the provider's error shape.

pub mod errors;
pub mod request;
pub mod response;
pub mod stream;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use self::request::{Conversation, Operation, Provider};
use super::adapter::{
    AdapterError, AdapterExchange, BufferedResponse, ChainHook, Finished, ProtocolAdapter,
    RequestView, ResponseCx, ResponsePlan, mask_json_strings,
};
use super::errors::ProxyError;
use crate::config::{LlmProvider, LlmSettings};
use crate::mask::CompiledMasks;
use crate::policy::bindings::types as wit;

pub struct LlmAdapter {
    provider: LlmProvider,
    pass_unknown_paths: bool,
}

impl LlmAdapter {
    pub fn new(settings: &LlmSettings) -> Self {
        Self {
            provider: settings.provider,
            pass_unknown_paths: settings.pass_unknown_paths,
        }
    }

    /// The operation a path names, if this connection serves its provider.
    fn operation(&self, path: &str) -> Option<Operation> {
        let op = Operation::from_path(path)?;
        match (self.provider, op.provider()) {
            (LlmProvider::Auto, _)
            | (LlmProvider::OpenAi, Provider::OpenAi)
            | (LlmProvider::Anthropic, Provider::Anthropic) => Some(op),
            _ => None,
        }
    }

    /// The provider whose shapes answer a request to `target`.
    fn provider_for(&self, target: &str) -> Provider {
        let path = target.split('?').next().unwrap_or("");
        match (self.provider, Operation::from_path(path)) {
            (LlmProvider::OpenAi, _) => Provider::OpenAi,
            (LlmProvider::Anthropic, _) => Provider::Anthropic,
            (LlmProvider::Auto, Some(op)) => op.provider(),
            (LlmProvider::Auto, None) => Provider::OpenAi,
        }
    }
}

impl ProtocolAdapter for LlmAdapter {
    fn protocol(&self) -> &'static str {
        "llm"
    }

    fn wit_protocol(&self) -> wit::Protocol {
        wit::Protocol::Llm
    }

    fn needs_body(&self, parts: &http::request::Parts) -> bool {
        parts.method == Method::POST && self.operation(parts.uri.path()).is_some()
    }

    fn decode(
        &self,
        req: RequestView<'_>,
    ) -> Result<Option<Box<dyn AdapterExchange>>, AdapterError> {
        let path = req.parts.uri.path();
        if req.parts.method != Method::POST {
            // Listings and reads (`GET /v1/models`) carry no prompt.
            return Ok(None);
        }
        let Some(op) = self.operation(path) else {
            if self.pass_unknown_paths {
                return Ok(None);
            }
            return Err(AdapterError::BadRequest(format!(
                "the llm adapter does not know POST {path}; it reads chat completions, responses, embeddings and messages (set llm.pass_unknown_paths = true to forward other paths with only the http hook)"
            )));
        };
        let (conversation, doc) =
            request::parse(op, req.body).map_err(|e| AdapterError::BadRequest(e.to_string()))?;
        Ok(Some(Box::new(LlmExchange {
            op,
            conversation,
            doc,
        })))
    }

    fn error_body(&self, err: &ProxyError, request_id: &str, target: &str) -> Value {
        errors::error_body(self.provider_for(target), err, request_id)
    }
}

struct LlmExchange {
    op: Operation,
    conversation: Conversation,
    doc: Value,
}

impl AdapterExchange for LlmExchange {
    fn request_hook(&self, ctx: Arc<wit::Context>) -> ChainHook {
        let req = self.conversation.to_wit();
        Arc::new(move |p| p.llm_on_request(&ctx, &req))
    }

    fn mask_request(&mut self, masks: &CompiledMasks) -> Result<Option<Vec<u8>>, AdapterError> {
        if mask_json_strings(&mut self.doc, masks) == 0 {
            return Ok(None);
        }
        self.conversation = request::from_doc(self.op, &self.doc)
            .map_err(|e| AdapterError::BadRequest(e.to_string()))?;
        serde_json::to_vec(&self.doc)
            .map(Some)
            .map_err(|e| AdapterError::BadRequest(e.to_string()))
    }

    fn describe(&self) -> Value {
        json!(self.conversation)
    }

    fn response(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        cx: ResponseCx,
    ) -> Result<ResponsePlan, AdapterError> {
        if !status.is_success() {
            // The provider's own errors: streamed with the text masks.
            return Ok(ResponsePlan::PassThrough);
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("text/event-stream") {
            return Ok(ResponsePlan::Stream(Box::new(stream::LlmStream::new(
                self.op,
                self.conversation.clone(),
                cx,
            ))));
        }
        Ok(ResponsePlan::Buffered(Box::new(LlmAnswer {
            op: self.op,
            conversation: self.conversation.clone(),
            cx,
        })))
    }
}

/// A whole (non-streamed) answer.
struct LlmAnswer {
    op: Operation,
    conversation: Conversation,
    cx: ResponseCx,
}

impl BufferedResponse for LlmAnswer {
    fn finish(self: Box<Self>, body: Bytes) -> BoxFuture<'static, Result<Finished, ProxyError>> {
        Box::pin(async move {
            let mut doc: Value = serde_json::from_slice(&body).map_err(|e| {
                AdapterError::BadUpstream(format!("the upstream's answer is not JSON: {e}"))
            })?;
            if !doc.is_object() {
                return Err(AdapterError::BadUpstream(
                    "the upstream's answer is not a JSON object".into(),
                )
                .into());
            }
            let seen = response::parse(self.op, &doc);
            let (ctx, req, resp) = (
                self.cx.ctx.clone(),
                self.conversation.to_wit(),
                seen.to_wit(),
            );
            let outcome = self
                .cx
                .run(move |p| p.llm_on_response(&ctx, &req, &resp))
                .await?;
            let masks = self.cx.masks_with(&outcome.masks)?;
            let masked = mask_json_strings(&mut doc, &masks);
            let completion = response::parse(self.op, &doc);
            let body =
                serde_json::to_vec(&doc).map_err(|e| AdapterError::BadUpstream(e.to_string()))?;
            Ok(Finished {
                body,
                decision: Some(outcome),
                detail: completion.detail(&self.cx, json!({"stream": false, "masked": masked})),
            })
        })
    }
}
