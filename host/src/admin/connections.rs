//! `GET /v1/connections`: the configured connections as an operator needs
//! them: name, protocol, the address bound, the upstream (scheme, host and
//! port only: credentials, paths and queries stay out), the policy chain,
//! and how many client sessions are open now.

use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::{AdminResponse, AdminState, json_reply};
use crate::config::ConnectionConfig;

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    pub name: String,
    pub protocol: String,
    /// The address bound (the configured one until the listener is up).
    pub listen: String,
    /// `scheme://host:port` of the upstream.
    pub upstream: String,
    pub policies: Vec<String>,
    pub allowed_groups: Vec<String>,
}

impl ConnectionInfo {
    pub fn from_config(c: &ConnectionConfig) -> ConnectionInfo {
        ConnectionInfo {
            name: c.name.clone(),
            protocol: c.protocol.name().to_string(),
            listen: c.listen.to_string(),
            upstream: upstream_origin(&c.upstream),
            policies: c.policies.clone(),
            allowed_groups: c.allowed_groups.clone(),
        }
    }
}

/// `scheme://host[:port]` of an upstream URL: no user, password, path or
/// query, whatever characters a password holds. A URL that does not parse
/// shows as nothing rather than as text that might hold a secret.
pub fn upstream_origin(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return "(unparsable upstream URL)".into();
    };
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match u.port() {
        Some(port) => format!("{}://{host}:{port}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    }
}

pub fn list(state: &AdminState) -> AdminResponse {
    let connections: Vec<serde_json::Value> = state
        .connections
        .iter()
        .map(|c| {
            let mut v = json!(c);
            v["live_sessions"] = json!(state.metrics.open_sessions(&c.name));
            v
        })
        .collect();
    json_reply(StatusCode::OK, json!({ "connections": connections }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_lose_their_credentials_paths_and_queries() {
        assert_eq!(
            upstream_origin("postgres://app:s3cret@db.internal:5432/shop?sslmode=require"),
            "postgres://db.internal:5432"
        );
        assert_eq!(
            upstream_origin("https://api.example.com/v2?token=x"),
            "https://api.example.com"
        );
        assert_eq!(upstream_origin("http://[::1]:9000"), "http://[::1]:9000");
        // Passwords with characters that end an authority elsewhere.
        assert_eq!(
            upstream_origin("postgres://app:pa%2Fss/w?rd@db:5432/x"),
            "(unparsable upstream URL)"
        );
        let o = upstream_origin("postgres://app:p%40ss%23w@db.internal:5432/shop");
        assert_eq!(o, "postgres://db.internal:5432");
        assert_eq!(
            upstream_origin("no url at all"),
            "(unparsable upstream URL)"
        );
    }
}
