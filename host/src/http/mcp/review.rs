//! What happens to a server's answer before the client sees it: a
//! `tools/list` result is learnt and filtered (`filter-tools`), resource,
//! template and prompt listings likewise (`mcp-listing.filter`), every
//! result goes through `on-result`, and the masks of both phases apply. An
//! answer that cannot be checked is replaced by a JSON-RPC error, never
//! passed on.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::catalog::ToolCatalog;
use super::jsonrpc::{Message, code, error_response};
use super::listing::{self, EntryCatalog};
use crate::http::adapter::{mask_json_strings, run_chain};
use crate::mask::{CompiledMasks, MaskCompiler};
use crate::policy::PolicyChain;
use crate::policy::bindings::mcp::McpRequest;
use crate::policy::bindings::types as wit;
use crate::policy::chain::{ChainOutcome, Hidden, Verdict};

/// A request that went to the server and waits for its answer.
pub struct Pending {
    pub id: Value,
    pub ctx: Arc<wit::Context>,
    pub request: Arc<McpRequest>,
    /// The request phase's masks (with the held credential): everything that
    /// comes back for this request is masked with them.
    pub masks: Arc<CompiledMasks>,
}

/// The parts every review needs; one per connection.
#[derive(Clone)]
pub struct Reviewer {
    pub chain: PolicyChain,
    pub compiler: Arc<MaskCompiler>,
    pub catalog: Arc<ToolCatalog>,
    pub entries: Arc<EntryCatalog>,
}

/// What the review did, for the audit record.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub id: Value,
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<ChainOutcome>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden_tools: Vec<String>,
    /// Resources, templates or prompts hidden from a listing, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden_entries: Vec<String>,
    pub masked: u64,
    /// Why the answer was replaced by an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl Reviewer {
    /// The server's answer to `pending`, as the client may see it.
    pub async fn answer(&self, message: Message, pending: &Pending) -> (Message, Review) {
        let mut review = Review {
            id: pending.id.clone(),
            method: pending.request.method.clone(),
            tool: pending.request.tool.clone(),
            decision: None,
            hidden_tools: vec![],
            hidden_entries: vec![],
            masked: 0,
            refused: None,
        };
        let result = match message {
            Message::Response { result, .. } => result,
            Message::Error { id, mut error } => {
                review.masked = mask_json_strings(&mut error, &pending.masks);
                return (Message::Error { id, error }, review);
            }
            other => return (other, review),
        };
        match self.review_result(result, pending, &mut review).await {
            Ok(result) => (
                Message::Response {
                    id: pending.id.clone(),
                    result,
                },
                review,
            ),
            Err(refusal) => {
                review.refused = Some(refusal.message.clone());
                (refusal.into_message(pending), review)
            }
        }
    }

    async fn review_result(
        &self,
        mut result: Value,
        pending: &Pending,
        review: &mut Review,
    ) -> Result<Value, Refusal> {
        if pending.request.method == "tools/list" {
            let listed = self.catalog.learn(&result);
            let filter = {
                let (chain, ctx) = (self.chain.clone(), pending.ctx.clone());
                tokio::task::spawn_blocking(move || {
                    chain.hidden(|p| p.mcp_filter_tools(&ctx, &listed))
                })
                .await
                .map_err(|e| Refusal::internal(format!("policy task failed: {e}")))?
            };
            review.hidden_tools = hide_tools(&mut result, &filter);
        }
        if let Some((kind, key)) = listing::listing_of(&pending.request.method) {
            let listed = listing::entries(kind, &result, key);
            self.entries.learn(&listed);
            let filter = {
                let (chain, ctx) = (self.chain.clone(), pending.ctx.clone());
                tokio::task::spawn_blocking(move || {
                    chain.hidden(|p| p.mcp_listing_filter(&ctx, &listed))
                })
                .await
                .map_err(|e| Refusal::internal(format!("policy task failed: {e}")))?
            };
            review.hidden_entries = listing::hide(&mut result, kind, key, &filter);
        }
        let text = result.to_string();
        let outcome = run_chain(&self.chain, {
            let (ctx, req) = (pending.ctx.clone(), pending.request.clone());
            move |p| p.mcp_on_result(&ctx, &req, &text)
        })
        .await
        .map_err(|e| Refusal::internal(e.to_string()))?;
        let verdict = outcome.verdict.clone();
        let rules = outcome.masks.clone();
        review.decision = Some(outcome);
        match verdict {
            Verdict::Allow => {}
            Verdict::Deny { policy, reason } => {
                return Err(Refusal {
                    message: format!("denied by policy {policy}: {reason}"),
                    data: json!({"code": "policy_denied", "policy": &*policy, "reason": reason}),
                });
            }
            Verdict::RequireApproval { policy, approval } => {
                return Err(Refusal {
                    message: format!(
                        "policy {policy} asked for approval of the result, which cannot be held; the result was withheld"
                    ),
                    data: json!({"code": "approval_required", "policy": &*policy, "reason": approval.reason}),
                });
            }
        }
        if !rules.is_empty() {
            let masks = self
                .compiler
                .compile(&rules, &[])
                .map_err(|e| Refusal::mask(e.to_string()))?;
            review.masked += mask_json_strings(&mut result, &masks);
        }
        review.masked += mask_json_strings(&mut result, &pending.masks);
        Ok(result)
    }

    /// A notification or server request tied to `pending` (progress, log
    /// lines): the request's masks apply to its params.
    pub fn related(&self, message: Message, masks: &CompiledMasks) -> Message {
        match message {
            Message::Notification {
                method,
                params: Some(mut p),
            } => {
                mask_json_strings(&mut p, masks);
                Message::Notification {
                    method,
                    params: Some(p),
                }
            }
            Message::Request {
                id,
                method,
                params: Some(mut p),
            } => {
                mask_json_strings(&mut p, masks);
                Message::Request {
                    id,
                    method,
                    params: Some(p),
                }
            }
            other => other,
        }
    }
}

/// Drops the tools `filter` hides from a `tools/list` result; returns their names.
fn hide_tools(result: &mut Value, filter: &Hidden) -> Vec<String> {
    let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
        return vec![];
    };
    let mut hidden = vec![];
    tools.retain(|t| {
        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
        let hide = match filter {
            Hidden::Names { names } => names.contains(name),
            Hidden::All { .. } => true,
        };
        if hide {
            hidden.push(name.to_string());
        }
        !hide
    });
    hidden
}

/// Why an answer is withheld, and what the client is told.
#[derive(Debug)]
pub struct Refusal {
    pub message: String,
    pub data: Value,
}

impl Refusal {
    fn internal(message: String) -> Refusal {
        Refusal {
            data: json!({"code": "internal"}),
            message,
        }
    }

    fn mask(message: String) -> Refusal {
        Refusal {
            message: format!("the result could not be masked: {message}"),
            data: json!({"code": "mask_failed"}),
        }
    }

    /// A refusal of an upstream answer that could not be read.
    pub fn bad_upstream(message: String) -> Refusal {
        Refusal {
            data: json!({"code": "bad_upstream"}),
            message,
        }
    }

    pub fn into_message(self, pending: &Pending) -> Message {
        let mut data = self.data;
        data["request_id"] = json!(pending.ctx.request_id);
        error_response(
            pending.id.clone(),
            code::GATEWAY_REFUSED,
            &self.message,
            Some(json!({ "gatehouse": data })),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn hidden_tools_are_dropped_from_the_listing() {
        let mut result = json!({"tools": [{"name": "a"}, {"name": "b"}, {"name": "c"}]});
        let filter = Hidden::Names {
            names: BTreeSet::from(["b".to_string()]),
        };
        assert_eq!(hide_tools(&mut result, &filter), vec!["b"]);
        assert_eq!(result, json!({"tools": [{"name": "a"}, {"name": "c"}]}));
        let all = Hidden::All {
            policy: Arc::from("p"),
            reason: "not loaded".into(),
        };
        assert_eq!(hide_tools(&mut result, &all).len(), 2);
        assert_eq!(result, json!({"tools": []}));
    }
}
