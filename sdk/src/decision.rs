//! Building a [`Decision`].
//!
//! ```
//! use gatehouse_sdk::{allow, deny, mask, require_approval, MaskRule};
//!
//! let d = deny("admin API is read-only").annotate("rule", "deny[0]");
//! assert_eq!(d.deny_reason(), Some("admin API is read-only"));
//! assert_eq!(d.annotation("rule"), Some("deny[0]"));
//!
//! let d = require_approval("deploys need approval")
//!     .approvers(["ops"])
//!     .timeout_secs(300)
//!     .grant("POST /deploy", 600)
//!     .build();
//! assert!(d.approval().is_some());
//!
//! let d = mask([MaskRule::header("x-token").hash()]);
//! assert_eq!(d.mask_rules().map(<[_]>::len), Some(1));
//! assert!(allow().is_allow());
//! ```

use crate::types::{Approval, ApprovalScope, Decision, Grant, MaskRule, Verdict};

/// The approval timeout used when none is set: five minutes.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u32 = 300;

/// The longest deny or approval reason the host accepts; a longer one makes
/// the decision "bad output" (the policy's failure mode). Reasons built from
/// request data (SQL text, paths) should go through [`clip_reason`].
pub const MAX_REASON_BYTES: usize = 2048;

/// Cuts `reason` to [`MAX_REASON_BYTES`] on a character boundary, ending
/// with `…` when it was cut.
///
/// ```
/// use gatehouse_sdk::decision::{MAX_REASON_BYTES, clip_reason};
///
/// assert_eq!(clip_reason("short".into()), "short");
/// let long = clip_reason("é".repeat(MAX_REASON_BYTES));
/// assert!(long.len() <= MAX_REASON_BYTES && long.ends_with('…'));
/// ```
pub fn clip_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES - '…'.len_utf8();
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

/// Let the request through unchanged.
pub fn allow() -> Decision {
    Decision::from_verdict(Verdict::Allow)
}

/// Refuse the request; `reason` is shown to the caller.
pub fn deny(reason: impl Into<String>) -> Decision {
    Decision::from_verdict(Verdict::Deny(reason.into()))
}

/// Let the request through with these masks applied.
pub fn mask(rules: impl IntoIterator<Item = MaskRule>) -> Decision {
    Decision::from_verdict(Verdict::Mask(rules.into_iter().collect()))
}

/// Hold the request until a person approves; finish with [`ApprovalBuilder::build`].
pub fn require_approval(reason: impl Into<String>) -> ApprovalBuilder {
    ApprovalBuilder {
        approval: Approval {
            reason: reason.into(),
            approver_groups: Vec::new(),
            timeout_secs: DEFAULT_APPROVAL_TIMEOUT_SECS,
            scope: ApprovalScope::Once,
        },
        annotations: Vec::new(),
    }
}

/// Builds a `require-approval` decision. Scope defaults to `once`.
#[derive(Clone, Debug)]
#[must_use = "call .build() to get a Decision"]
pub struct ApprovalBuilder {
    approval: Approval,
    annotations: Vec<(String, String)>,
}

impl ApprovalBuilder {
    /// Adds groups whose members may approve.
    pub fn approvers<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.approval
            .approver_groups
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// Adds one approver group.
    pub fn approver(mut self, group: impl Into<String>) -> Self {
        self.approval.approver_groups.push(group.into());
        self
    }

    /// How long to wait for an approval before denying.
    pub fn timeout_secs(mut self, secs: u32) -> Self {
        self.approval.timeout_secs = secs;
        self
    }

    /// The approval covers this request only (the default).
    pub fn once(mut self) -> Self {
        self.approval.scope = ApprovalScope::Once;
        self
    }

    /// The approval covers requests with the same `key` for `duration_secs`.
    pub fn grant(mut self, key: impl Into<String>, duration_secs: u32) -> Self {
        self.approval.scope = ApprovalScope::Grant(Grant {
            key: key.into(),
            duration_secs,
        });
        self
    }

    /// A grant keyed `key` for `duration_secs` when that is above zero,
    /// else [`once`](Self::once): the shape of the `grant_secs` setting the
    /// shipped policies share (0 means "this request only").
    ///
    /// ```
    /// use gatehouse_sdk::require_approval;
    /// use gatehouse_sdk::types::ApprovalScope;
    ///
    /// let held = |grant_secs| require_approval("deploys need approval")
    ///     .grant_or_once("POST /deploy", grant_secs)
    ///     .build();
    /// assert_eq!(held(0).approval().unwrap().scope, ApprovalScope::Once);
    /// assert!(matches!(held(600).approval().unwrap().scope, ApprovalScope::Grant(_)));
    /// ```
    pub fn grant_or_once(self, key: impl Into<String>, duration_secs: u32) -> Self {
        if duration_secs > 0 {
            self.grant(key, duration_secs)
        } else {
            self.once()
        }
    }

    /// Adds an audit annotation.
    pub fn annotate(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// The finished decision.
    pub fn build(self) -> Decision {
        Decision {
            verdict: Verdict::RequireApproval(self.approval),
            annotations: self.annotations,
        }
    }
}

impl From<ApprovalBuilder> for Decision {
    fn from(b: ApprovalBuilder) -> Self {
        b.build()
    }
}

/// The annotation key of [`Decision::cacheable`].
pub const CACHE_ANNOTATION: &str = "gatehouse:cache";
/// See [`Decision::cacheable`].
pub const CACHE_SCOPE_STATEMENT: &str = "statement";
/// See [`Decision::cacheable`].
pub const CACHE_SCOPE_COLUMNS: &str = "columns";

impl Decision {
    /// A decision with no annotations.
    pub fn from_verdict(verdict: Verdict) -> Self {
        Decision {
            verdict,
            annotations: Vec::new(),
        }
    }

    /// Adds an audit annotation (kept in order; keys may repeat).
    #[must_use]
    pub fn annotate(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Promises the host that this decision depends only on the event's
    /// shape for `scope`, the caller's identity (subject, issuer, kind,
    /// groups, acting-for) and the policy's settings — never on SQL
    /// literals, parameters, time, labels, session or request ids. The host
    /// may then reuse it for the next event of the same shape without
    /// calling the policy (until any policy reloads). Scopes:
    /// [`CACHE_SCOPE_STATEMENT`] for `postgres.on-query` (the statement
    /// analysis and parse error), [`CACHE_SCOPE_COLUMNS`] for
    /// `postgres.on-result-columns` (that, plus the columns' names, tables
    /// and types).
    #[must_use]
    pub fn cacheable(self, scope: &str) -> Self {
        self.annotate(CACHE_ANNOTATION, scope)
    }

    /// The first annotation value for `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True for `allow`.
    pub fn is_allow(&self) -> bool {
        matches!(self.verdict, Verdict::Allow)
    }

    /// The reason, for `deny`.
    pub fn deny_reason(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Deny(r) => Some(r),
            _ => None,
        }
    }

    /// The rules, for `mask`.
    pub fn mask_rules(&self) -> Option<&[MaskRule]> {
        match &self.verdict {
            Verdict::Mask(r) => Some(r),
            _ => None,
        }
    }

    /// The approval, for `require-approval`.
    pub fn approval(&self) -> Option<&Approval> {
        match &self.verdict {
            Verdict::RequireApproval(a) => Some(a),
            _ => None,
        }
    }
}
