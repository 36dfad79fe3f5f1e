//! Turns a list of mask rules into matchers, once per distinct list. The
//! text matcher is one multi-pattern regex: a match reports which rule it
//! belongs to, so each rule keeps its own method and label.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use regex_automata::meta::Regex;

use super::{MaskMethod, MaskRule, MaskTarget, detectors};

/// Used as the match window for patterns with no upper bound on their length.
pub const UNBOUNDED_PATTERN_WINDOW: usize = 4096;
/// No single match is held back longer than this.
pub const MAX_WINDOW: usize = 64 * 1024;
const CACHE_CAPACITY: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("mask pattern {pattern:?} is invalid: {message}")]
    Pattern { pattern: String, message: String },
}

/// The lazy DFA's cache per searching thread (grown only as needed). The
/// `secrets` plugin's whole rule list (about 100 detectors) needs more
/// states than 2 MiB hold on ordinary source code: the cache was cleared
/// over and over and the search fell back to the slow NFA simulation, 5 to
/// 10 times slower than with 8 MiB (measured on 60 KB of this repository's
/// sources, debug build).
const HYBRID_CACHE_BYTES: usize = 8 << 20;

/// One text rule inside the combined regex.
pub struct TextRule {
    pub label: String,
    pub method: MaskMethod,
    pub validate: Option<detectors::Check>,
    /// The part of a match to mask (see [`detectors::Detector::value`]).
    pub value: Option<detectors::ValueSpan>,
}

/// All text rules of one rule list, combined.
pub struct TextMatcher {
    pub regex: Regex,
    pub rules: Vec<TextRule>,
    /// The longest match any rule can produce: how much a stream holds back.
    pub window: usize,
}

/// Compiled masks for one event.
#[derive(Clone)]
pub struct CompiledMasks {
    pub headers: Vec<(String, MaskMethod)>,
    pub json_pointers: Vec<(String, MaskMethod)>,
    pub columns: Vec<(String, MaskMethod)>,
    pub text: Option<Arc<TextMatcher>>,
    pub hash_key: Arc<[u8]>,
}

impl CompiledMasks {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.json_pointers.is_empty() && self.text.is_none()
    }

    /// Masks one header value: by name, then by text rules.
    pub fn header_value(&self, name: &str, value: &[u8]) -> Option<Vec<u8>> {
        if let Some((_, method)) = self
            .headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(name))
        {
            let mut out = Vec::new();
            super::method::apply(*method, value, "header", &self.hash_key, &mut out);
            return Some(out);
        }
        let text = self.text.as_ref()?;
        let masked = super::stream::mask_all(text, &self.hash_key, value);
        (masked != value).then_some(masked)
    }
}

/// Rules plus literal secrets: what one compilation depends on.
type CacheKey = (Vec<MaskRule>, Vec<String>);

/// Compiles rule lists and caches the result by the list itself.
pub struct MaskCompiler {
    hash_key: Arc<[u8]>,
    cache: Mutex<HashMap<CacheKey, Arc<CompiledMasks>>>,
}

impl MaskCompiler {
    pub fn new(hash_key: Vec<u8>) -> Self {
        Self {
            hash_key: hash_key.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `literals` are values that must never pass (the connection's held
    /// credential); they are redacted wherever they appear.
    pub fn compile(
        &self,
        rules: &[MaskRule],
        literals: &[String],
    ) -> Result<Arc<CompiledMasks>, MaskError> {
        let key = (rules.to_vec(), literals.to_vec());
        if let Ok(cache) = self.cache.lock()
            && let Some(hit) = cache.get(&key)
        {
            return Ok(hit.clone());
        }
        let compiled = Arc::new(self.build(rules, literals)?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    fn build(&self, rules: &[MaskRule], literals: &[String]) -> Result<CompiledMasks, MaskError> {
        let mut headers = Vec::new();
        let mut json_pointers = Vec::new();
        let mut columns = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut text_rules = Vec::new();
        let mut window = 0usize;
        let mut add_pattern = |pattern: String, rule: TextRule| -> Result<(), MaskError> {
            let hir = regex_syntax::parse(&pattern).map_err(|e| MaskError::Pattern {
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let max = hir
                .properties()
                .maximum_len()
                .unwrap_or(UNBOUNDED_PATTERN_WINDOW);
            // One byte more than the longest match, for look-ahead (`\b`).
            window = window.max(max.min(MAX_WINDOW) + 1);
            patterns.push(pattern);
            text_rules.push(rule);
            Ok(())
        };
        // Text rules are compiled once each: a chain whose decisions repeat a
        // rule list (a request and a response decision of the same policy,
        // two policies naming the same detectors) would otherwise multiply
        // the combined automaton, up to the NFA size limit. The first
        // occurrence keeps its place, so which rule wins at a position does
        // not change.
        let mut text_seen: HashSet<(&MaskTarget, MaskMethod)> = HashSet::new();
        for rule in rules {
            if matches!(
                rule.target,
                MaskTarget::Pattern(_) | MaskTarget::Detector(_)
            ) && !text_seen.insert((&rule.target, rule.method))
            {
                continue;
            }
            match &rule.target {
                MaskTarget::Header(h) => headers.push((h.clone(), rule.method)),
                MaskTarget::JsonPointer(p) => json_pointers.push((p.clone(), rule.method)),
                MaskTarget::Column(c) => columns.push((c.clone(), rule.method)),
                MaskTarget::Pattern(p) => add_pattern(
                    p.clone(),
                    TextRule {
                        label: "pattern".into(),
                        method: rule.method,
                        validate: None,
                        value: None,
                    },
                )?,
                MaskTarget::Detector(name) => {
                    let d = detectors::find(name).ok_or_else(|| MaskError::Pattern {
                        pattern: name.clone(),
                        message: "unknown detector".into(),
                    })?;
                    add_pattern(
                        d.pattern.to_string(),
                        TextRule {
                            label: d.name.into(),
                            method: rule.method,
                            validate: d.validate,
                            value: d.value,
                        },
                    )?
                }
            }
        }
        for literal in literals.iter().filter(|l| l.len() >= 4) {
            add_pattern(
                regex_syntax::escape(literal),
                TextRule {
                    label: "credential".into(),
                    method: MaskMethod::Redact,
                    validate: None,
                    value: None,
                },
            )?;
        }
        let text = if patterns.is_empty() {
            None
        } else {
            let regex = Regex::builder()
                .configure(
                    Regex::config()
                        .nfa_size_limit(Some(8 << 20))
                        .hybrid_cache_capacity(HYBRID_CACHE_BYTES),
                )
                .build_many(&patterns)
                .map_err(|e| MaskError::Pattern {
                    pattern: patterns.join(" | "),
                    message: e.to_string(),
                })?;
            Some(Arc::new(TextMatcher {
                regex,
                rules: text_rules,
                window: window.max(1),
            }))
        };
        Ok(CompiledMasks {
            headers,
            json_pointers,
            columns,
            text,
            hash_key: self.hash_key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(target: MaskTarget) -> MaskRule {
        MaskRule {
            target,
            method: MaskMethod::Redact,
        }
    }

    #[test]
    fn identical_rule_lists_share_one_compilation() {
        let c = MaskCompiler::new(b"k".to_vec());
        let rules = vec![rule(MaskTarget::Detector("email".into()))];
        let a = c.compile(&rules, &[]).unwrap();
        let b = c.compile(&rules, &[]).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn window_follows_the_longest_bounded_pattern() {
        let c = MaskCompiler::new(b"k".to_vec());
        let m = c
            .compile(&[rule(MaskTarget::Pattern("ab{2,10}".into()))], &[])
            .unwrap();
        assert_eq!(m.text.as_ref().unwrap().window, 12);
        let m = c
            .compile(&[rule(MaskTarget::Pattern("a+".into()))], &[])
            .unwrap();
        assert_eq!(
            m.text.as_ref().unwrap().window,
            UNBOUNDED_PATTERN_WINDOW + 1
        );
    }

    #[test]
    fn bad_patterns_are_reported() {
        let c = MaskCompiler::new(b"k".to_vec());
        assert!(
            c.compile(&[rule(MaskTarget::Pattern("(".into()))], &[])
                .is_err()
        );
    }

    #[test]
    fn header_masks_apply_by_name_and_literals_everywhere() {
        let c = MaskCompiler::new(b"k".to_vec());
        let m = c
            .compile(
                &[rule(MaskTarget::Header("x-token".into()))],
                &["hunter2-secret".into()],
            )
            .unwrap();
        assert_eq!(
            m.header_value("X-Token", b"abc").unwrap(),
            b"[MASKED:header]"
        );
        assert_eq!(
            m.header_value("x-other", b"Bearer hunter2-secret").unwrap(),
            b"Bearer [MASKED:credential]"
        );
        assert!(m.header_value("x-other", b"fine").is_none());
    }
}
