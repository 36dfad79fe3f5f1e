//! Streamed completions (server-sent events) masked event by event. Each
//! text stream of the answer (a choice's content, a tool call's arguments,
//! an Anthropic content block, a responses output part) is one *channel*
//! with its own [`StreamMasker`] fed the concatenated deltas, so a secret
//! split across deltas is still caught. Each delta event is re-emitted with
//! valid JSON carrying what the masker let go; only the masker's window is
//! held back, and it is flushed in an extra delta event before the event
//! that closes the channel. Every other string of every event is masked in
//! place. The stream's final event (`[DONE]`, `message_stop`,
//! `response.completed`) is held until the `llm` response hook has seen the
//! whole (masked) completion; a deny ends the stream with an error event.

mod rewrite;

use futures_util::future::BoxFuture;
use serde_json::json;

pub use self::rewrite::{MAX_EVENT_BYTES, Rewriter};
use super::errors::stream_error_event;
use super::request::{Conversation, Operation};
use super::response::Completion;
use crate::http::adapter::ResponseCx;
use crate::http::body::{BodyTransform, StreamReport};
use crate::http::sse::encode_event;
use crate::policy::chain::{ChainOutcome, Verdict};

/// The transform for one streamed response.
pub struct LlmStream {
    op: Operation,
    rewriter: Rewriter,
    request: Conversation,
    cx: ResponseCx,
    decision: Option<ChainOutcome>,
    completion: Option<Completion>,
    error: Option<String>,
}

impl LlmStream {
    pub fn new(op: Operation, request: Conversation, cx: ResponseCx) -> Self {
        Self {
            op,
            rewriter: Rewriter::new(op, cx.masks.clone(), cx.started),
            request,
            cx,
            decision: None,
            completion: None,
            error: None,
        }
    }

    fn completion(&self) -> Completion {
        self.rewriter.completion(&self.request.model)
    }
}

impl BodyTransform for LlmStream {
    fn push<'a>(
        &'a mut self,
        chunk: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(self.rewriter.push(chunk, out)))
    }

    fn finish<'a>(&'a mut self, out: &'a mut Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Err(e) = self.rewriter.end() {
                // What the maskers held is masked text: it goes out before
                // the error event, and into the record.
                self.rewriter.flush_all(out);
                self.completion = Some(self.completion());
                return Err(e);
            }
            let completion = self.completion();
            self.completion = Some(completion.clone());
            let (ctx, req, resp) = (
                self.cx.ctx.clone(),
                self.request.to_wit(),
                completion.to_wit(),
            );
            let outcome = self
                .cx
                .run(move |p| p.llm_on_response(&ctx, &req, &resp))
                .await
                .map_err(|e| e.to_string())?;
            let verdict = outcome.verdict.clone();
            self.decision = Some(outcome);
            match verdict {
                Verdict::Allow => {}
                Verdict::Deny { policy, reason } => {
                    return Err(format!("denied by policy {policy}: {reason}"));
                }
                Verdict::RequireApproval { policy, .. } => {
                    return Err(format!(
                        "policy {policy} asked for approval of a completion, which cannot be held once streamed"
                    ));
                }
            }
            for ev in self.rewriter.take_terminal() {
                encode_event(&ev, out);
            }
            Ok(())
        })
    }

    fn failure(&mut self, reason: &str) -> Vec<u8> {
        self.error = Some(reason.to_string());
        let sequence = (self.op == Operation::Responses).then(|| self.rewriter.next_added_seq());
        stream_error_event(self.op.provider(), self.op, reason, sequence)
    }

    fn masked(&self) -> u64 {
        self.rewriter.masked()
    }

    fn report(&mut self) -> Option<StreamReport> {
        let completion = self.completion.clone().unwrap_or_else(|| self.completion());
        Some(StreamReport {
            detail: completion.detail(
                &self.cx,
                json!({
                    "stream": true,
                    "events": self.rewriter.events(),
                    "first_token_ms": self.rewriter.first_token_ms(),
                    "error": self.error,
                }),
            ),
            decision: self.decision.take(),
        })
    }
}
