//! Building [`MaskRule`]s. A new rule redacts; change that with
//! [`MaskRule::partial`] or [`MaskRule::hash`].
//!
//! ```
//! use gatehouse_sdk::MaskRule;
//! use gatehouse_sdk::types::{MaskMethod, MaskTarget};
//!
//! let r = MaskRule::json_pointer("/password").partial(2, 2);
//! assert_eq!(r.target, MaskTarget::JsonPointer("/password".into()));
//! assert!(matches!(r.method, MaskMethod::Partial(_)));
//! assert_eq!(MaskRule::detector("email").method, MaskMethod::Redact);
//! ```

use crate::types::{MaskMethod, MaskRule, MaskTarget, PartialKeep};

impl MaskRule {
    /// A rule for `target`, redacting.
    pub fn new(target: MaskTarget) -> Self {
        MaskRule {
            target,
            method: MaskMethod::Redact,
        }
    }

    /// An HTTP header by name (case-insensitive).
    pub fn header(name: impl Into<String>) -> Self {
        Self::new(MaskTarget::Header(name.into()))
    }

    /// A JSON pointer (RFC 6901) into a JSON body.
    pub fn json_pointer(pointer: impl Into<String>) -> Self {
        Self::new(MaskTarget::JsonPointer(pointer.into()))
    }

    /// A result column by name or `table.column`.
    pub fn column(name: impl Into<String>) -> Self {
        Self::new(MaskTarget::Column(name.into()))
    }

    /// A regular expression (Rust `regex` syntax) over text.
    pub fn pattern(regex: impl Into<String>) -> Self {
        Self::new(MaskTarget::Pattern(regex.into()))
    }

    /// A built-in detector by name, e.g. `email`, `aws-access-key-id`.
    pub fn detector(name: impl Into<String>) -> Self {
        Self::new(MaskTarget::Detector(name.into()))
    }

    /// Replace the value by a marker (the default).
    #[must_use]
    pub fn redact(mut self) -> Self {
        self.method = MaskMethod::Redact;
        self
    }

    /// Keep `prefix` and `suffix` characters, star the rest.
    #[must_use]
    pub fn partial(mut self, prefix: u8, suffix: u8) -> Self {
        self.method = MaskMethod::Partial(PartialKeep { prefix, suffix });
        self
    }

    /// Replace by a keyed hash.
    #[must_use]
    pub fn hash(mut self) -> Self {
        self.method = MaskMethod::Hash;
        self
    }

    /// Use `method`.
    #[must_use]
    pub fn with_method(mut self, method: MaskMethod) -> Self {
        self.method = method;
        self
    }
}
