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

/// `scheme://host[:port]` of an upstream URL: no user, password, path or query.
pub fn upstream_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        host.to_string()
    } else {
        format!("{scheme}://{host}")
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
        assert_eq!(upstream_origin("host:1"), "host:1");
    }
}
