//! Reusing a chain's decision for events of the same shape.
//!
//! A policy may promise that a decision depends only on the event's shape
//! (for PostgreSQL: the statement analysis, or the result's columns), the
//! caller's identity and its own settings — not on literals, parameters,
//! time, session or request ids. It says so by annotating the decision with
//! `gatehouse:cache` = the scope it promises (`statement` or `columns`).
//! When every policy in the chain that has the hook made that promise for
//! an event (or none has it), the combined outcome is kept and reused for
//! the next event with the same shape, identity and policy versions,
//! without calling any guest. A reload
//! (any load or unload) starts a new generation, so no decision outlives the
//! policy versions that made it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::chain::ChainOutcome;

/// The annotation key a policy uses to promise a cacheable decision.
pub const CACHE_ANNOTATION: &str = "gatehouse:cache";
const CAPACITY: usize = 4096;

/// What an event is, for the cache: everything a cacheable decision may depend on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub generation: u64,
    /// The hook, e.g. `postgres.on-query`.
    pub hook: &'static str,
    /// `statement` or `columns`: what the policies promised.
    pub scope: &'static str,
    /// The chain's policy names, in order.
    pub chain: Arc<str>,
    /// Subject, issuer, kind, groups and acting-for of the caller.
    pub principal: Arc<str>,
    /// The event's shape (e.g. the statement analysis as JSON).
    pub shape: Arc<str>,
}

#[derive(Default)]
pub struct DecisionCache {
    /// Kept outcomes are marked `cached` and rendered once, when kept.
    entries: Mutex<HashMap<CacheKey, Arc<ChainOutcome>>>,
}

impl DecisionCache {
    pub fn get(&self, key: &CacheKey) -> Option<Arc<ChainOutcome>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).cloned()
    }

    /// Keeps `outcome` when every policy promised `key.scope` and none failed.
    pub fn put(&self, key: CacheKey, outcome: &ChainOutcome) {
        if !cacheable(outcome, key.scope) {
            return;
        }
        let mut kept = outcome.clone();
        kept.cached = true;
        kept.rendered = serde_json::value::to_raw_value(&kept)
            .ok()
            .map(|body| Arc::new(crate::audit::shared::SharedPart::new(body)));
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, Arc::new(kept));
    }
}

/// No decisions at all means no policy of the chain has the hook (a policy
/// that is configured but not loaded leaves a failed deny): that holds until
/// a reload, which starts a new generation, so it is kept too. Otherwise a
/// chain with no say over an event would still send each new event to a
/// blocking thread.
fn cacheable(outcome: &ChainOutcome, scope: &str) -> bool {
    outcome.decisions.iter().all(|d| {
        d.failure.is_none()
            && d.annotations
                .iter()
                .any(|(k, v)| k == CACHE_ANNOTATION && v == scope)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::chain::combine;
    use crate::policy::decision::{Outcome, PolicyDecision};

    fn decision(annotations: &[(&str, &str)]) -> PolicyDecision {
        PolicyDecision {
            policy: Arc::from("p"),
            version: Arc::from("1"),
            digest: Arc::from("d"),
            outcome: Outcome::Allow,
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            failure: None,
            elapsed: Default::default(),
        }
    }

    fn key(generation: u64) -> CacheKey {
        CacheKey {
            generation,
            hook: "postgres.on-query",
            scope: "statement",
            chain: "p".into(),
            principal: Arc::from("bot"),
            shape: Arc::from("select t"),
        }
    }

    #[test]
    fn only_promised_decisions_are_kept_and_a_new_generation_misses() {
        let cache = DecisionCache::default();
        let promised = combine(vec![decision(&[(CACHE_ANNOTATION, "statement")])]);
        let unpromised = combine(vec![
            decision(&[(CACHE_ANNOTATION, "statement")]),
            decision(&[]),
        ]);
        let other_scope = combine(vec![decision(&[(CACHE_ANNOTATION, "columns")])]);
        cache.put(key(1), &unpromised);
        assert!(cache.get(&key(1)).is_none());
        cache.put(key(1), &other_scope);
        assert!(cache.get(&key(1)).is_none());
        cache.put(key(1), &promised);
        let hit = cache.get(&key(1)).unwrap();
        assert!(hit.cached);
        let rendered: serde_json::Value =
            serde_json::from_str(hit.rendered.as_ref().unwrap().body.get()).unwrap();
        assert_eq!(rendered, serde_json::to_value(&*hit).unwrap());
        assert_eq!(rendered["cached"], true);
        assert!(cache.get(&key(2)).is_none());
    }

    #[test]
    fn a_chain_without_the_hook_is_kept_until_a_reload() {
        let cache = DecisionCache::default();
        let no_say = combine(vec![]);
        assert!(no_say.decisions.is_empty());
        cache.put(key(1), &no_say);
        let hit = cache.get(&key(1)).unwrap();
        assert!(hit.cached);
        assert!(matches!(hit.verdict, crate::policy::chain::Verdict::Allow));
        assert!(cache.get(&key(2)).is_none());
    }

    #[test]
    fn a_policy_that_is_not_loaded_is_never_kept() {
        let cache = DecisionCache::default();
        let mut missing = decision(&[(CACHE_ANNOTATION, "statement")]);
        missing.failure = Some("not loaded".into());
        missing.outcome = Outcome::Deny {
            reason: "policy p is not loaded".into(),
        };
        cache.put(key(1), &combine(vec![missing]));
        assert!(cache.get(&key(1)).is_none());
    }
}
