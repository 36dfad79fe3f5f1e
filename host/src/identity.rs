//! Who is calling: Gatehouse API keys (`keys`) or OpenID Connect bearer
//! tokens (`oidc`), both producing the same [`Principal`].

pub mod authenticator;
pub mod keys;
pub mod oidc;
pub mod principal;

pub use authenticator::Authenticator;
pub use keys::{ApiKeys, KeyError, NewKey};
pub use oidc::OidcVerifier;
pub use principal::{AuthError, Principal, PrincipalKind};
