//! Who is calling. This identity source is Gatehouse API keys; OIDC
//! tokens plug in beside them and produce the same [`Principal`].

pub mod keys;
pub mod principal;

pub use keys::{ApiKeys, KeyError, NewKey};
pub use principal::{AuthError, Principal, PrincipalKind};
