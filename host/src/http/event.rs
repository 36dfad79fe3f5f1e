//! Builds the policy's view of an HTTP exchange, and its audit form.

use http::HeaderMap;

use crate::identity::{Principal, PrincipalKind};
use crate::policy::bindings::{http as wit_http, types as wit};

/// Headers whose values never reach a policy or the audit trail.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-gatehouse-key",
    "cookie",
    "set-cookie",
];

pub fn context(
    principal: &Principal,
    session: &SessionMeta,
    labels: &[(String, String)],
    request_id: &str,
    protocol: wit::Protocol,
) -> wit::Context {
    wit::Context {
        principal: wit::Principal {
            subject: principal.subject.clone(),
            issuer: principal.issuer.clone(),
            kind: match principal.kind {
                PrincipalKind::Human => wit::PrincipalKind::Human,
                PrincipalKind::Agent => wit::PrincipalKind::Agent,
                PrincipalKind::Service => wit::PrincipalKind::Service,
            },
            groups: principal.groups.clone(),
            acting_for: principal.acting_for.as_ref().map(|s| wit::Delegator {
                subject: s.clone(),
                issuer: principal.issuer.clone(),
            }),
        },
        session: wit::Session {
            id: session.id.clone(),
            connection: session.connection.clone(),
            protocol,
            client_addr: session.client_addr.clone(),
        },
        labels: labels.to_vec(),
        request_id: request_id.to_string(),
    }
}

/// The session a request belongs to.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub id: String,
    pub connection: String,
    pub client_addr: String,
    pub started_at_ms: i64,
}

/// Header pairs for a policy or a record: credential headers dropped.
pub fn visible_headers(headers: &HeaderMap, extra_hidden: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            !CREDENTIAL_HEADERS.contains(&n.as_str())
                && !n.as_str().eq_ignore_ascii_case(extra_hidden)
        })
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

pub fn request(
    parts: &http::request::Parts,
    scheme: &str,
    authority: &str,
    body: &[u8],
    body_complete: bool,
    hidden: &str,
) -> wit_http::HttpRequest {
    wit_http::HttpRequest {
        method: parts.method.as_str().to_string(),
        scheme: scheme.to_string(),
        authority: authority.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: visible_headers(&parts.headers, hidden),
        body: body.to_vec(),
        body_complete,
    }
}
