//! A policy's answer in host terms, checked for size and sense when it comes
//! out of the guest. A decision that fails these checks is "bad output" and
//! is handled by the policy's failure mode like a trap.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::bindings::types as wit;
use crate::mask::{MaskMethod, MaskRule, MaskTarget};

pub const MAX_REASON_BYTES: usize = 2048;
pub const MAX_ANNOTATIONS: usize = 32;
pub const MAX_ANNOTATION_BYTES: usize = 1024;
pub const MAX_MASK_RULES: usize = 128;
pub const MAX_PATTERN_BYTES: usize = 1024;
pub const MAX_APPROVAL_TIMEOUT_SECS: u32 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ApprovalScope {
    Once,
    Grant { key: String, duration_secs: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub reason: String,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub scope: ApprovalScope,
}

/// What one policy decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    Allow,
    Deny { reason: String },
    Mask { rules: Vec<MaskRule> },
    RequireApproval(ApprovalRequest),
}

/// One policy's decision with what is needed to audit it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyDecision {
    pub policy: Arc<str>,
    pub version: Arc<str>,
    pub digest: Arc<str>,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<(String, String)>,
    /// Set when the call failed (trap, timeout, bad output, not loaded) and the
    /// outcome is the policy's failure mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(serialize_with = "micros")]
    pub elapsed: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// Converts and checks a guest decision.
pub fn from_wit(d: wit::Decision) -> Result<(Outcome, Vec<(String, String)>), String> {
    if d.annotations.len() > MAX_ANNOTATIONS {
        return Err(format!(
            "{} annotations (at most {MAX_ANNOTATIONS})",
            d.annotations.len()
        ));
    }
    for (k, v) in &d.annotations {
        if k.len() + v.len() > MAX_ANNOTATION_BYTES {
            return Err(format!(
                "annotation {:?} is over {MAX_ANNOTATION_BYTES} bytes",
                clip(k)
            ));
        }
    }
    let outcome = match d.verdict {
        wit::Verdict::Allow => Outcome::Allow,
        wit::Verdict::Deny(reason) => {
            if reason.len() > MAX_REASON_BYTES {
                return Err(format!(
                    "deny reason is {} bytes (at most {MAX_REASON_BYTES})",
                    reason.len()
                ));
            }
            Outcome::Deny { reason }
        }
        wit::Verdict::Mask(rules) => {
            if rules.len() > MAX_MASK_RULES {
                return Err(format!(
                    "{} mask rules (at most {MAX_MASK_RULES})",
                    rules.len()
                ));
            }
            let rules = rules
                .into_iter()
                .map(mask_rule)
                .collect::<Result<Vec<_>, _>>()?;
            Outcome::Mask { rules }
        }
        wit::Verdict::RequireApproval(a) => {
            if a.reason.len() > MAX_REASON_BYTES {
                return Err(format!(
                    "approval reason is {} bytes (at most {MAX_REASON_BYTES})",
                    a.reason.len()
                ));
            }
            if a.timeout_secs == 0 || a.timeout_secs > MAX_APPROVAL_TIMEOUT_SECS {
                return Err(format!(
                    "approval timeout {}s is outside 1..={MAX_APPROVAL_TIMEOUT_SECS}",
                    a.timeout_secs
                ));
            }
            if a.approver_groups.is_empty() {
                return Err("approval names no approver groups".into());
            }
            Outcome::RequireApproval(ApprovalRequest {
                reason: a.reason,
                approver_groups: a.approver_groups,
                timeout_secs: a.timeout_secs,
                scope: match a.scope {
                    wit::ApprovalScope::Once => ApprovalScope::Once,
                    wit::ApprovalScope::Grant(g) => ApprovalScope::Grant {
                        key: g.key,
                        duration_secs: g.duration_secs,
                    },
                },
            })
        }
    };
    Ok((outcome, d.annotations))
}

fn mask_rule(r: wit::MaskRule) -> Result<MaskRule, String> {
    let target = match r.target {
        wit::MaskTarget::Header(h) => {
            http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("mask header {:?} is not a header name", clip(&h)))?;
            MaskTarget::Header(h.to_ascii_lowercase())
        }
        wit::MaskTarget::JsonPointer(p) => {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err(format!(
                    "JSON pointer {:?} must be empty or start with '/'",
                    clip(&p)
                ));
            }
            MaskTarget::JsonPointer(p)
        }
        wit::MaskTarget::Column(c) => MaskTarget::Column(c),
        wit::MaskTarget::Pattern(p) => {
            if p.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    "mask pattern is {} bytes (at most {MAX_PATTERN_BYTES})",
                    p.len()
                ));
            }
            MaskTarget::Pattern(p)
        }
        wit::MaskTarget::Detector(d) => {
            if crate::mask::detectors::find(&d).is_none() {
                return Err(format!(
                    "unknown detector {:?}; known: {}",
                    clip(&d),
                    crate::mask::detectors::names().join(", ")
                ));
            }
            MaskTarget::Detector(d)
        }
    };
    let method = match r.method {
        wit::MaskMethod::Redact => MaskMethod::Redact,
        wit::MaskMethod::Partial(k) => MaskMethod::Partial {
            prefix: k.prefix,
            suffix: k.suffix,
        },
        wit::MaskMethod::Hash => MaskMethod::Hash,
    };
    Ok(MaskRule { target, method })
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(verdict: wit::Verdict) -> wit::Decision {
        wit::Decision {
            verdict,
            annotations: vec![],
        }
    }

    #[test]
    fn oversized_reason_is_bad_output() {
        let d = decision(wit::Verdict::Deny("x".repeat(MAX_REASON_BYTES + 1)));
        assert!(from_wit(d).unwrap_err().contains("deny reason"));
    }

    #[test]
    fn too_many_annotations_is_bad_output() {
        let mut d = decision(wit::Verdict::Allow);
        d.annotations = (0..=MAX_ANNOTATIONS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(from_wit(d).is_err());
    }

    #[test]
    fn unknown_detector_is_bad_output() {
        let d = decision(wit::Verdict::Mask(vec![wit::MaskRule {
            target: wit::MaskTarget::Detector("no-such".into()),
            method: wit::MaskMethod::Redact,
        }]));
        assert!(from_wit(d).unwrap_err().contains("unknown detector"));
    }

    #[test]
    fn approval_needs_groups_and_a_sane_timeout() {
        let approval = |groups: Vec<String>, timeout_secs| {
            decision(wit::Verdict::RequireApproval(wit::Approval {
                reason: "r".into(),
                approver_groups: groups,
                timeout_secs,
                scope: wit::ApprovalScope::Once,
            }))
        };
        assert!(from_wit(approval(vec![], 60)).is_err());
        assert!(from_wit(approval(vec!["ops".into()], 0)).is_err());
        assert!(matches!(
            from_wit(approval(vec!["ops".into()], 60)).unwrap().0,
            Outcome::RequireApproval(_)
        ));
    }

    #[test]
    fn header_mask_names_are_normalised() {
        let d = decision(wit::Verdict::Mask(vec![wit::MaskRule {
            target: wit::MaskTarget::Header("X-Token".into()),
            method: wit::MaskMethod::Hash,
        }]));
        let (o, _) = from_wit(d).unwrap();
        assert_eq!(
            o,
            Outcome::Mask {
                rules: vec![MaskRule {
                    target: MaskTarget::Header("x-token".into()),
                    method: MaskMethod::Hash
                }]
            }
        );
    }
}
