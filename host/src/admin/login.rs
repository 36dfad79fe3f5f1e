//! `/v1/login`: the discovery document `gatehouse login` reads, open like
//! `/healthz`. It names the connections (name, protocol, listen address) and
//! the issuers that offer a CLI client (issuer, public client id, audience,
//! scopes). Nothing in it is secret: a public OAuth client has no secret, and
//! the rest is what any caller of the gateway must know anyway.
//!
//! The same types are the CLI's view of the document, so server and client
//! cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The discovery document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginDirectory {
    #[serde(default)]
    pub connections: Vec<LoginConnection>,
    /// Issuers with a `cli_client_id`, in configuration order.
    #[serde(default)]
    pub issuers: Vec<LoginIssuer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginConnection {
    pub name: String,
    /// `http`, `postgres`, ...: decides what form the CLI prints a token in.
    pub protocol: String,
    /// The configured listen address (a client may reach it under another name).
    pub listen: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginIssuer {
    pub issuer: String,
    pub client_id: String,
    /// The `aud` Gatehouse requires of this issuer's tokens.
    pub audience: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl LoginDirectory {
    pub fn from_config(config: &Config) -> LoginDirectory {
        LoginDirectory {
            connections: config
                .connections
                .iter()
                .map(|c| LoginConnection {
                    name: c.name.clone(),
                    protocol: c.protocol.name().to_string(),
                    listen: c.listen.to_string(),
                })
                .collect(),
            issuers: config
                .identity
                .oidc
                .iter()
                .filter_map(|o| {
                    Some(LoginIssuer {
                        issuer: o.issuer.clone(),
                        client_id: o.cli_client_id.clone()?,
                        audience: o.audience.clone(),
                        scopes: o.cli_scopes.clone(),
                    })
                })
                .collect(),
        }
    }
}

impl LoginDirectory {
    /// Replaces a configured listen address with the one actually bound
    /// (they differ when the configuration asks for port 0).
    pub fn set_bound(&mut self, connection: &str, addr: std::net::SocketAddr) {
        if let Some(c) = self.connections.iter_mut().find(|c| c.name == connection) {
            c.listen = addr.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_issuers_with_a_cli_client_are_published() {
        let config = Config::parse(
            r#"
            [[identity.oidc]]
            issuer = "https://a.example.com"
            audience = "gatehouse"
            cli_client_id = "gatehouse-cli"
            [[identity.oidc]]
            issuer = "https://b.example.com"
            audience = "gatehouse"
            [[connections]]
            name = "api"
            protocol = "http"
            listen = "127.0.0.1:8080"
            upstream = "http://127.0.0.1:9000"
            "#,
            std::path::Path::new("/etc/gatehouse/gatehouse.toml"),
        )
        .unwrap();
        let d = LoginDirectory::from_config(&config);
        assert_eq!(d.issuers.len(), 1);
        assert_eq!(d.issuers[0].client_id, "gatehouse-cli");
        assert_eq!(d.issuers[0].scopes, ["openid", "offline_access"]);
        assert_eq!(
            d.connections,
            [LoginConnection {
                name: "api".into(),
                protocol: "http".into(),
                listen: "127.0.0.1:8080".into(),
            }]
        );
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert_eq!(serde_json::from_str::<LoginDirectory>(&json).unwrap(), d);
    }
}
