//! Questions about the caller.
//!
//! ```
//! use gatehouse_sdk::testing;
//! use gatehouse_sdk::types::PrincipalKind;
//!
//! let ctx = testing::context()
//!     .subject("agent-7")
//!     .kind(PrincipalKind::Agent)
//!     .groups(["ops", "dev"])
//!     .acting_for("alice", "https://idp.example")
//!     .label("env", "prod")
//!     .build();
//! assert!(ctx.in_any_group(&["ops"]));
//! assert!(ctx.is_agent());
//! assert_eq!(ctx.acting_for().map(|d| d.subject.as_str()), Some("alice"));
//! assert_eq!(ctx.label("env"), Some("prod"));
//! ```

use crate::types::{Context, Delegator, PrincipalKind, Protocol};

impl Context {
    /// The caller's subject.
    pub fn subject(&self) -> &str {
        &self.principal.subject
    }

    /// True if the caller is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.principal.groups.iter().any(|g| g == group)
    }

    /// True if the caller is in any of `groups`.
    pub fn in_any_group<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        groups.iter().any(|g| self.in_group(g.as_ref()))
    }

    /// True if the caller is in all of `groups`.
    pub fn in_all_groups<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        groups.iter().all(|g| self.in_group(g.as_ref()))
    }

    /// What kind of caller this is.
    pub fn principal_kind(&self) -> PrincipalKind {
        self.principal.kind
    }

    /// True for a human caller.
    pub fn is_human(&self) -> bool {
        self.principal.kind == PrincipalKind::Human
    }

    /// True for an agent caller.
    pub fn is_agent(&self) -> bool {
        self.principal.kind == PrincipalKind::Agent
    }

    /// True for a service caller.
    pub fn is_service(&self) -> bool {
        self.principal.kind == PrincipalKind::Service
    }

    /// The person an agent acts for, if any.
    pub fn acting_for(&self) -> Option<&Delegator> {
        self.principal.acting_for.as_ref()
    }

    /// The connection's label `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The connection name.
    pub fn connection(&self) -> &str {
        &self.session.connection
    }

    /// The session's protocol.
    pub fn protocol(&self) -> Protocol {
        self.session.protocol
    }
}
