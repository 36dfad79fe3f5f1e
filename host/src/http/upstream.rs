//! The upstream side: one pooled client per connection, URI rewriting,
//! hop-by-hop header removal, and injection of the held credential.

use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::ProxyBody;
use crate::config::ConnectionConfig;
use crate::tls;

pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// The held credential: header and full value. Never logged.
#[derive(Clone)]
pub struct Credential {
    pub header: HeaderName,
    pub value: HeaderValue,
    /// The secret part alone, masked wherever it would flow back.
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: ***)", self.header)
    }
}

pub struct Upstream {
    pub base: Uri,
    pub client: UpstreamClient,
    /// HTTP/1.1 only, unpooled: for requests that switch protocols.
    pub upgrade_client: UpstreamClient,
    pub credential: Option<Credential>,
}

impl Upstream {
    pub fn new(c: &ConnectionConfig) -> Result<Self, String> {
        let base: Uri = c.upstream.parse().map_err(|e| format!("upstream: {e}"))?;
        let tls = tls::client_config(c.upstream_ca_file.as_deref()).map_err(|e| e.to_string())?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http.clone());
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        // Upgrades (WebSocket) need HTTP/1.1 even where ALPN would pick h2.
        let http1_only = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let upgrade_client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(http1_only);
        let credential = match &c.credential {
            Some(cred) => {
                let secret = cred.secret.resolve()?;
                let header =
                    HeaderName::from_bytes(cred.header.as_bytes()).map_err(|e| e.to_string())?;
                let mut value = HeaderValue::from_str(&format!("{}{}", cred.prefix, secret))
                    .map_err(|_| "credential.secret: not a valid header value".to_string())?;
                value.set_sensitive(true);
                Some(Credential {
                    header,
                    value,
                    secret,
                })
            }
            None => None,
        };
        Ok(Self {
            base,
            client,
            upgrade_client,
            credential,
        })
    }

    pub fn scheme(&self) -> &str {
        self.base.scheme_str().unwrap_or("http")
    }

    pub fn authority(&self) -> &str {
        self.base.authority().map(|a| a.as_str()).unwrap_or("")
    }

    /// The upstream URI for a client request path and query.
    pub fn uri_for(&self, uri: &Uri) -> Result<Uri, String> {
        let base_path = self.base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        Uri::builder()
            .scheme(self.scheme())
            .authority(self.authority())
            .path_and_query(format!("{base_path}{pq}"))
            .build()
            .map_err(|e| e.to_string())
    }

    /// Rewrites client headers for the upstream: no hop-by-hop headers, no
    /// Gatehouse credential, the held credential added, identity encoding
    /// asked for so that responses can be masked.
    pub fn prepare_headers(&self, headers: &mut HeaderMap, client_addr: &str) {
        for h in HOP_BY_HOP {
            headers.remove(*h);
        }
        headers.remove(header::AUTHORIZATION);
        headers.remove("x-gatehouse-key");
        headers.remove(header::HOST);
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let client_ip = client_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| client_addr.to_string());
        if let Ok(v) = HeaderValue::from_str(&client_ip) {
            headers.append("x-forwarded-for", v);
        }
        if let Some(c) = &self.credential {
            headers.insert(c.header.clone(), c.value.clone());
        }
    }
}

/// Removes hop-by-hop headers from a response on its way back.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}
