//! The PostgreSQL adapter: a v3 wire-protocol proxy for one configured
//! connection. A client logs in with its Gatehouse identity as the
//! password (in cleartext, or an API key over SCRAM-SHA-256, see
//! [`client_auth`]); Gatehouse opens one upstream session per client with
//! the held credentials, then relays messages in both directions. Every statement
//! passes the policy chain (`postgres` hook) before it reaches the server,
//! every result is masked as it streams back, and every statement is
//! recorded.
//!
//! The relay is two tasks per session: `requests` reads the client, asks
//! the policies and forwards; `responses` reads the server, masks, records
//! and writes to the client. They share one ordered queue of what each
//! forwarded message will produce ([`pipeline::Expect`]), which is how a
//! response is tied back to the statement that caused it.

pub mod cancel;
pub mod catalog;
pub mod client_auth;
pub mod codec;
pub mod event;
pub mod kept_plans;
pub mod listener;
pub mod masking;
pub mod pipeline;
pub mod record;
pub mod requests;
pub mod responses;
pub mod scram;
pub mod session;
pub mod sql;
pub mod transport;
pub mod upstream;

use std::sync::Arc;

use crate::approval::Approvals;
use crate::audit::AuditSink;
use crate::config::{ClientAuth, ConnectionConfig};
use crate::identity::Authenticator;
use crate::mask::MaskCompiler;
use crate::metrics::Metrics;
use crate::policy::PolicyChain;

pub use listener::serve_postgres;

/// Everything one PostgreSQL connection shares across its sessions.
pub struct PgProxy {
    pub name: String,
    labels: Vec<(String, String)>,
    allowed_groups: Vec<String>,
    chain: PolicyChain,
    auth: Arc<Authenticator>,
    audit: AuditSink,
    masks: Arc<MaskCompiler>,
    metrics: Arc<Metrics>,
    target: upstream::UpstreamTarget,
    catalog: catalog::Catalog,
    /// Statement analyses by literal-free form, shared by all sessions.
    analyses: sql::AnalysisCache,
    cancels: Arc<cancel::CancelRegistry>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The listener certificate's `tls-server-end-point` data, for
    /// SCRAM-SHA-256-PLUS over TLS.
    tls_end_point: Option<Vec<u8>>,
    allow_cleartext_password: bool,
    client_auth: ClientAuth,
    pinned_database: Option<String>,
    max_message: usize,
    approvals: Arc<Approvals>,
}

impl PgProxy {
    pub fn new(
        c: &ConnectionConfig,
        chain: PolicyChain,
        auth: Arc<Authenticator>,
        audit: AuditSink,
        masks: Arc<MaskCompiler>,
        metrics: Arc<Metrics>,
        approvals: Arc<Approvals>,
    ) -> Result<Self, String> {
        let pg = c
            .postgres
            .as_ref()
            .ok_or("a postgres connection needs a [connections.postgres] section")?;
        let target = upstream::UpstreamTarget::new(&c.upstream, pg, c.upstream_ca_file.as_deref())?;
        let catalog = catalog::Catalog::new(catalog::Catalog::options(
            &target.host,
            target.port,
            &target.user,
            target.password.as_deref(),
            target.tls.is_some(),
            c.upstream_ca_file.as_deref(),
        ));
        let tls_end_point = match &c.tls {
            Some(t) => client_auth::end_point(&t.cert_file)?,
            None => None,
        };
        let tls = match &c.tls {
            Some(t) => {
                let base = crate::tls::server_config(&t.cert_file, &t.key_file)
                    .map_err(|e| e.to_string())?;
                let mut config = (*base).clone();
                // PostgreSQL 17 clients may offer ALPN `postgresql`; older ones offer none.
                config.alpn_protocols = vec![b"postgresql".to_vec()];
                Some(Arc::new(config))
            }
            None => None,
        };
        Ok(Self {
            name: c.name.clone(),
            labels: c
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            allowed_groups: c.allowed_groups.clone(),
            chain,
            auth,
            audit,
            masks,
            metrics,
            target,
            catalog,
            analyses: sql::AnalysisCache::default(),
            cancels: Arc::new(cancel::CancelRegistry::default()),
            tls,
            tls_end_point,
            allow_cleartext_password: pg.allow_cleartext_password,
            client_auth: pg.client_auth,
            pinned_database: pg.database.clone(),
            max_message: pg.max_message_bytes,
            approvals,
        })
    }
}
