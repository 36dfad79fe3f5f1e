//! A connection's policies, in order, and the strict rule that combines
//! their answers: any deny wins, then require-approval, then masks
//! accumulate; otherwise allow.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::bindings::types as wit;
use super::cache::{CacheKey, DecisionCache};
use super::decision::{self, ApprovalRequest, Outcome, PolicyDecision};
use super::invoke::CallFailure;
use super::loaded::LoadedPolicy;
use super::registry::PolicyRegistry;
use crate::config::FailureMode;
use crate::mask::MaskRule;
use crate::metrics::Metrics;

/// The combined answer for one event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    Allow,
    Deny {
        policy: Arc<str>,
        reason: String,
    },
    RequireApproval {
        policy: Arc<str>,
        approval: ApprovalRequest,
    },
}

impl Verdict {
    /// The stronger of two verdicts on the same event (the `http` hook's and
    /// a protocol hook's): a deny, then an approval, else allow. Ties keep
    /// `self`.
    pub fn or(self, other: Verdict) -> Verdict {
        match (&self, &other) {
            (Verdict::Deny { .. }, _) => self,
            (_, Verdict::Deny { .. }) => other,
            (Verdict::RequireApproval { .. }, _) => self,
            (_, Verdict::RequireApproval { .. }) => other,
            _ => self,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainOutcome {
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Masks from every policy that asked for them, in chain order.
    pub masks: Vec<MaskRule>,
    pub decisions: Vec<PolicyDecision>,
    /// Reused from an earlier event of the same shape (see [`super::cache`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// This outcome as recorded, rendered once when it was kept in the
    /// decision cache, so each reuse is recorded without serializing it
    /// again.
    /// Recorded by reference (see [`crate::audit::shared`]).
    #[serde(skip)]
    pub rendered: Option<Arc<crate::audit::shared::SharedPart>>,
}

/// The policies of one connection, resolved against the registry at call time
/// so a reload takes effect on the next event.
#[derive(Clone)]
pub struct PolicyChain {
    names: Arc<[String]>,
    registry: Arc<PolicyRegistry>,
    metrics: Arc<Metrics>,
    cache: Arc<DecisionCache>,
    /// The policy names joined, the chain's part of every cache key.
    chain_key: Arc<str>,
}

impl PolicyChain {
    pub fn new(names: Vec<String>, registry: Arc<PolicyRegistry>, metrics: Arc<Metrics>) -> Self {
        Self {
            chain_key: Arc::from(names.join("\u{0}")),
            names: names.into(),
            registry,
            metrics,
            cache: Arc::new(DecisionCache::default()),
        }
    }

    /// The cache key of an event (see [`super::cache`]); look it up with
    /// [`PolicyChain::cached`] before running the chain, and hand the fresh
    /// outcome to [`PolicyChain::remember`].
    pub fn cache_key(
        &self,
        hook: &'static str,
        scope: &'static str,
        principal: Arc<str>,
        shape: Arc<str>,
    ) -> CacheKey {
        CacheKey {
            generation: self.registry.generation(),
            hook,
            scope,
            chain: self.chain_key.clone(),
            principal,
            shape,
        }
    }

    /// A reusable outcome for `key`, if one is kept. Cheap; no guest runs:
    /// the kept outcome is shared, marked `cached`, and already rendered.
    pub fn cached(&self, key: &CacheKey) -> Option<Arc<ChainOutcome>> {
        self.cache.get(key)
    }

    /// Keeps `outcome` for `key` when every policy promised it may be reused.
    pub fn remember(&self, key: CacheKey, outcome: &ChainOutcome) {
        self.cache.put(key, outcome);
    }

    /// [`PolicyChain::run`] on a blocking thread, for callers on the async
    /// workers (policy calls never run there). A chain without policies
    /// calls no guest: its (empty, allowing) outcome is made in place.
    pub async fn run_blocking(
        &self,
        hook: impl Fn(&LoadedPolicy) -> Option<Result<wit::Decision, CallFailure>> + Send + 'static,
    ) -> Result<ChainOutcome, tokio::task::JoinError> {
        if self.names.is_empty() {
            return Ok(self.run(hook));
        }
        let chain = self.clone();
        tokio::task::spawn_blocking(move || chain.run(hook)).await
    }

    /// Asks each policy in turn through `hook`, which returns `None` when the
    /// policy does not export the hook in question. Stops at the first deny.
    /// Blocking: call it from a blocking thread.
    pub fn run(
        &self,
        hook: impl Fn(&LoadedPolicy) -> Option<Result<wit::Decision, CallFailure>>,
    ) -> ChainOutcome {
        let snapshot = self.registry.snapshot();
        let mut decisions = Vec::with_capacity(self.names.len());
        for name in self.names.iter() {
            let Some(policy) = snapshot.get(name.as_str()) else {
                // A configured policy that is not loaded cannot vouch for anything.
                decisions.push(PolicyDecision {
                    policy: Arc::from(name.as_str()),
                    version: Arc::from(""),
                    digest: Arc::from(""),
                    outcome: Outcome::Deny {
                        reason: format!("policy {name} is not loaded"),
                    },
                    annotations: vec![],
                    failure: Some(CallFailure::NotLoaded.to_string()),
                    elapsed: Default::default(),
                });
                self.metrics
                    .policy_failure(name, CallFailure::NotLoaded.kind());
                break;
            };
            let started = Instant::now();
            let Some(result) = hook(policy) else { continue };
            let elapsed = started.elapsed();
            let result = result.and_then(|d| decision::from_wit(d).map_err(CallFailure::BadOutput));
            let d = match result {
                Ok((outcome, annotations)) => PolicyDecision {
                    policy: policy.name.clone(),
                    version: policy.version.clone(),
                    digest: policy.digest.clone(),
                    outcome,
                    annotations,
                    failure: None,
                    elapsed,
                },
                Err(failure) => {
                    tracing::warn!(policy = %policy.name, failure = %failure, "policy call failed");
                    self.metrics.policy_failure(&policy.name, failure.kind());
                    PolicyDecision {
                        policy: policy.name.clone(),
                        version: policy.version.clone(),
                        digest: policy.digest.clone(),
                        outcome: match policy.limits.on_failure {
                            FailureMode::Closed => Outcome::Deny {
                                reason: format!("policy {} failed: {failure}", policy.name),
                            },
                            FailureMode::Open => Outcome::Allow,
                        },
                        annotations: vec![],
                        failure: Some(failure.to_string()),
                        elapsed,
                    }
                }
            };
            self.metrics
                .policy_decision(&policy.name, outcome_label(&d.outcome), elapsed);
            let denied = matches!(d.outcome, Outcome::Deny { .. });
            decisions.push(d);
            if denied {
                break;
            }
        }
        combine(decisions)
    }
}

/// What a chain hides from a listing (MCP `filter-tools`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "hide")]
pub enum Hidden {
    /// These names, from every policy that answered.
    Names {
        names: std::collections::BTreeSet<String>,
    },
    /// Everything: a policy could not answer and fails closed (or is not
    /// loaded), so nothing it might hide may be shown.
    All { policy: Arc<str>, reason: String },
}

impl PolicyChain {
    /// Asks each policy through `hook` for names to hide and unites the
    /// answers. Blocking: call it from a blocking thread.
    pub fn hidden(
        &self,
        hook: impl Fn(&LoadedPolicy) -> Option<Result<Vec<String>, CallFailure>>,
    ) -> Hidden {
        let snapshot = self.registry.snapshot();
        let mut names = std::collections::BTreeSet::new();
        for name in self.names.iter() {
            let Some(policy) = snapshot.get(name.as_str()) else {
                self.metrics
                    .policy_failure(name, CallFailure::NotLoaded.kind());
                return Hidden::All {
                    policy: Arc::from(name.as_str()),
                    reason: format!("policy {name} is not loaded"),
                };
            };
            match hook(policy) {
                None => {}
                Some(Ok(hidden)) => names.extend(hidden),
                Some(Err(failure)) => {
                    tracing::warn!(policy = %policy.name, failure = %failure, "policy call failed");
                    self.metrics.policy_failure(&policy.name, failure.kind());
                    if policy.limits.on_failure == FailureMode::Closed {
                        return Hidden::All {
                            policy: policy.name.clone(),
                            reason: format!("policy {} failed: {failure}", policy.name),
                        };
                    }
                }
            }
        }
        Hidden::Names { names }
    }
}

fn outcome_label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Deny { .. } => "deny",
        Outcome::Mask { .. } => "mask",
        Outcome::RequireApproval(_) => "require_approval",
    }
}

/// The combination rule, on its own so it can be tested without WASM.
pub fn combine(decisions: Vec<PolicyDecision>) -> ChainOutcome {
    let mut deny = None;
    let mut approval = None;
    let mut masks = Vec::new();
    for d in &decisions {
        match &d.outcome {
            Outcome::Deny { reason } if deny.is_none() => {
                deny = Some((d.policy.clone(), reason.clone()))
            }
            Outcome::RequireApproval(a) if approval.is_none() => {
                approval = Some((d.policy.clone(), a.clone()))
            }
            Outcome::Mask { rules } => masks.extend(rules.iter().cloned()),
            _ => {}
        }
    }
    let verdict = match (deny, approval) {
        (Some((policy, reason)), _) => Verdict::Deny { policy, reason },
        (None, Some((policy, approval))) => Verdict::RequireApproval { policy, approval },
        (None, None) => Verdict::Allow,
    };
    ChainOutcome {
        verdict,
        masks,
        decisions,
        cached: false,
        rendered: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskMethod, MaskTarget};

    fn d(policy: &str, outcome: Outcome) -> PolicyDecision {
        PolicyDecision {
            policy: Arc::from(policy),
            version: Arc::from("1"),
            digest: Arc::from("d"),
            outcome,
            annotations: vec![],
            failure: None,
            elapsed: Default::default(),
        }
    }

    fn mask(p: &str) -> Outcome {
        Outcome::Mask {
            rules: vec![MaskRule {
                target: MaskTarget::Pattern(p.into()),
                method: MaskMethod::Redact,
            }],
        }
    }

    fn approval() -> Outcome {
        Outcome::RequireApproval(ApprovalRequest {
            reason: "risky".into(),
            approver_groups: vec!["ops".into()],
            timeout_secs: 60,
            scope: decision::ApprovalScope::Once,
        })
    }

    #[test]
    fn empty_chain_allows() {
        assert!(matches!(combine(vec![]).verdict, Verdict::Allow));
    }

    #[test]
    fn deny_wins_over_everything() {
        let out = combine(vec![
            d("a", approval()),
            d("b", mask("x")),
            d(
                "c",
                Outcome::Deny {
                    reason: "no".into(),
                },
            ),
        ]);
        match out.verdict {
            Verdict::Deny { policy, reason } => {
                assert_eq!(&*policy, "c");
                assert_eq!(reason, "no");
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn approval_wins_over_masks_and_keeps_them() {
        let out = combine(vec![
            d("a", mask("x")),
            d("b", approval()),
            d("c", Outcome::Allow),
        ]);
        assert!(
            matches!(out.verdict, Verdict::RequireApproval { ref policy, .. } if &**policy == "b")
        );
        assert_eq!(out.masks.len(), 1);
    }

    #[test]
    fn masks_accumulate_in_order() {
        let out = combine(vec![
            d("a", mask("one")),
            d("b", Outcome::Allow),
            d("c", mask("two")),
        ]);
        assert!(matches!(out.verdict, Verdict::Allow));
        let pats: Vec<_> = out
            .masks
            .iter()
            .map(|m| match &m.target {
                MaskTarget::Pattern(p) => p.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(pats, ["one", "two"]);
    }

    #[test]
    fn stronger_verdict_wins() {
        let deny = || Verdict::Deny {
            policy: Arc::from("p"),
            reason: "no".into(),
        };
        let held = || Verdict::RequireApproval {
            policy: Arc::from("q"),
            approval: match approval() {
                Outcome::RequireApproval(a) => a,
                _ => unreachable!(),
            },
        };
        assert!(matches!(Verdict::Allow.or(deny()), Verdict::Deny { .. }));
        assert!(matches!(held().or(deny()), Verdict::Deny { .. }));
        assert!(matches!(
            Verdict::Allow.or(held()),
            Verdict::RequireApproval { .. }
        ));
        assert!(matches!(
            held().or(Verdict::Allow),
            Verdict::RequireApproval { .. }
        ));
        assert!(matches!(Verdict::Allow.or(Verdict::Allow), Verdict::Allow));
    }

    #[test]
    fn first_deny_is_reported() {
        let out = combine(vec![
            d(
                "a",
                Outcome::Deny {
                    reason: "first".into(),
                },
            ),
            d(
                "b",
                Outcome::Deny {
                    reason: "second".into(),
                },
            ),
        ]);
        assert!(matches!(out.verdict, Verdict::Deny { ref reason, .. } if reason == "first"));
    }
}
