//! The authenticated caller, as adapters, policies and the audit trail see it.

use serde::Serialize;

use crate::audit::PrincipalRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Human,
    Agent,
    Service,
}

impl PrincipalKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(Self::Human),
            "agent" => Some(Self::Agent),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Agent => "agent",
            Self::Service => "service",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub subject: String,
    pub issuer: String,
    pub kind: PrincipalKind,
    pub groups: Vec<String>,
    /// The human an agent acts for, when known.
    pub acting_for: Option<String>,
    /// The person accountable for this credential, written the way key
    /// owners are (an email address when known): a key's owner, whatever
    /// the key's kind, or a person's verified `email` claim. Approval rules
    /// compare it so nobody approves their own request through a second
    /// credential.
    pub person: Option<String>,
    /// Connections this credential may use; empty means any.
    #[serde(skip)]
    pub allowed_connections: Vec<String>,
}

impl Principal {
    pub fn record(&self) -> PrincipalRecord {
        PrincipalRecord {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            kind: self.kind.as_str().to_string(),
            groups: self.groups.clone(),
            acting_for: self.acting_for.clone(),
            person: self.person.clone(),
        }
    }

    /// Whether this caller may use `connection`, given the groups it allows.
    pub fn may_use(&self, connection: &str, allowed_groups: &[String]) -> Result<(), AuthError> {
        if !self.allowed_connections.is_empty()
            && !self.allowed_connections.iter().any(|c| c == connection)
        {
            return Err(AuthError::NotAllowed(format!(
                "this credential is not valid for connection {connection}"
            )));
        }
        if !allowed_groups.is_empty() && !self.groups.iter().any(|g| allowed_groups.contains(g)) {
            return Err(AuthError::NotAllowed(format!(
                "connection {connection} is open to the groups {}; {} is in none of them",
                allowed_groups.join(", "),
                self.subject
            )));
        }
        Ok(())
    }
}

/// Why a caller was refused. Messages never contain the credential.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credential: send `Authorization: Bearer <Gatehouse API key or OIDC token>`")]
    Missing,
    #[error("the credential is neither a Gatehouse API key nor a token from a trusted issuer")]
    Malformed,
    #[error("unknown or wrong API key")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key expired")]
    Expired,
    #[error("{0}")]
    NotAllowed(String),
    #[error("identity store unavailable: {0}")]
    Store(String),
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
}

impl AuthError {
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::Unknown => "unknown",
            AuthError::Revoked => "revoked",
            AuthError::Expired => "expired",
            AuthError::NotAllowed(_) => "not_allowed",
            AuthError::Store(_) => "store",
            AuthError::InvalidToken(_) => "invalid_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(groups: &[&str], conns: &[&str]) -> Principal {
        Principal {
            subject: "bot".into(),
            issuer: "gatehouse".into(),
            kind: PrincipalKind::Agent,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            acting_for: None,
            person: None,
            allowed_connections: conns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn connection_and_group_rules() {
        assert!(p(&[], &[]).may_use("api", &[]).is_ok());
        assert!(p(&["dev"], &[]).may_use("api", &["dev".into()]).is_ok());
        assert!(p(&["dev"], &[]).may_use("api", &["ops".into()]).is_err());
        assert!(p(&[], &["other"]).may_use("api", &[]).is_err());
    }
}
