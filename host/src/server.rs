//! `gatehouse serve`: builds every part from the configuration and runs until
//! the shutdown signal, then drains connections and the audit queue.

use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::approval::{ApprovalStore, Approvals};
use crate::audit::{AuditSink, AuditStore};
use crate::config::Config;
use crate::http::{HttpProxy, serve_connection};
use crate::identity::{ApiKeys, Authenticator, OidcVerifier};
use crate::mask::MaskCompiler;
use crate::metrics::Metrics;
use crate::policy::watcher::PolicyWatcher;
use crate::policy::{PolicyChain, PolicyEngine, PolicyRegistry};
use crate::postgres::{PgProxy, serve_postgres};

/// Runs the gateway. Listening addresses are printed on stdout as
/// `listening <name> <addr>` so a supervisor (or a test) can read ports
/// chosen by the OS.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let store = AuditStore::connect(&config.audit.database).await?;
    let (audit, writer) = AuditSink::start(
        store.clone(),
        config.audit.on_store_failure,
        config.audit.max_backlog,
        metrics.clone(),
    );
    let keys = Arc::new(ApiKeys::new(store.clone()));
    let oidc = OidcVerifier::start(&config.identity.oidc)
        .map_err(|e| anyhow::anyhow!("identity.oidc: {e}"))?;
    let auth = Arc::new(Authenticator::new(keys.clone(), oidc));

    std::fs::create_dir_all(&config.policies.dir).with_context(|| {
        format!(
            "policies.dir: cannot create {}",
            config.policies.dir.display()
        )
    })?;
    let engine = PolicyEngine::new(&config.policies.cache_dir)?;
    let registry = PolicyRegistry::new(engine, config.policies.clone(), metrics.clone());
    let reg = registry.clone();
    let loaded = tokio::task::spawn_blocking(move || reg.load_all()).await?;
    for (name, result) in &loaded {
        tracing::info!(policy = %name, result = ?result, "initial load");
    }
    let _watcher =
        PolicyWatcher::start(registry.clone()).context("cannot watch the policy folder")?;
    for c in &config.connections {
        for p in &c.policies {
            if !registry.snapshot().contains_key(p) {
                tracing::warn!(connection = %c.name, policy = %p, "policy is not loaded yet; requests on this connection are denied until it is");
            }
        }
    }

    let hash_key = match &config.masking.hash_key {
        Some(k) => k
            .resolve()
            .map_err(|e| anyhow::anyhow!("masking.hash_key: {e}"))?
            .into_bytes(),
        None => {
            let mut k = vec![0u8; 32];
            rand::rng().fill_bytes(&mut k);
            k
        }
    };
    let masks = Arc::new(MaskCompiler::new(hash_key));
    let approvals = Approvals::start(
        ApprovalStore::new(store.pool().clone(), &config.audit.database),
        audit.clone(),
        &config.approvals,
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("approvals: {e}"))?;

    let mut tasks = tokio::task::JoinSet::new();
    let mut login = crate::admin::login::LoginDirectory::from_config(&config);
    let mut connections: Vec<admin::ConnectionInfo> = config
        .connections
        .iter()
        .map(admin::ConnectionInfo::from_config)
        .collect();
    for c in &config.connections {
        match c.protocol {
            p if p.is_http() => {
                let chain = PolicyChain::new(c.policies.clone(), registry.clone(), metrics.clone());
                let shared = crate::http::proxy::Shared {
                    auth: auth.clone(),
                    audit: audit.clone(),
                    masks: masks.clone(),
                    metrics: metrics.clone(),
                    approvals: approvals.clone(),
                    capture_limit: config.audit.body_capture_bytes,
                };
                let proxy = HttpProxy::new(c, chain, shared)
                    .map_err(|e| anyhow::anyhow!("connection {}: {e}", c.name))?;
                let tls = match &c.tls {
                    Some(t) => Some(
                        crate::tls::server_config(&t.cert_file, &t.key_file)
                            .with_context(|| format!("connection {}", c.name))?,
                    ),
                    None => None,
                };
                let listener = TcpListener::bind(c.listen).await.with_context(|| {
                    format!("connection {}: cannot listen on {}", c.name, c.listen)
                })?;
                announce(&c.name, listener.local_addr()?);
                login.set_bound(&c.name, listener.local_addr()?);
                set_bound(&mut connections, &c.name, listener.local_addr()?);
                tasks.spawn(serve_connection(
                    listener,
                    Arc::new(proxy),
                    tls,
                    metrics.clone(),
                    shutdown.clone(),
                ));
            }
            _ => {
                let chain = PolicyChain::new(c.policies.clone(), registry.clone(), metrics.clone());
                let proxy = PgProxy::new(
                    c,
                    chain,
                    auth.clone(),
                    audit.clone(),
                    masks.clone(),
                    metrics.clone(),
                    approvals.clone(),
                )
                .map_err(|e| anyhow::anyhow!("connection {}: {e}", c.name))?;
                let listener = TcpListener::bind(c.listen).await.with_context(|| {
                    format!("connection {}: cannot listen on {}", c.name, c.listen)
                })?;
                announce(&c.name, listener.local_addr()?);
                login.set_bound(&c.name, listener.local_addr()?);
                set_bound(&mut connections, &c.name, listener.local_addr()?);
                tasks.spawn(serve_postgres(listener, Arc::new(proxy), shutdown.clone()));
            }
        }
    }
    if let Some(a) = &config.admin {
        let listener = TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("admin: cannot listen on {}", a.listen))?;
        announce("admin", listener.local_addr()?);
        let tls = match &a.tls {
            Some(t) => Some(crate::tls::server_config(&t.cert_file, &t.key_file).context("admin")?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = a.public_url.clone().unwrap_or_else(|| {
            format!(
                "{scheme}://{}",
                listener
                    .local_addr()
                    .map(|x| x.to_string())
                    .unwrap_or_default()
            )
        });
        let console_issuers =
            admin::console::signin::ConsoleIssuer::from_config(&config.identity.oidc)
                .map_err(|e| anyhow::anyhow!("identity.oidc: {e}"))?;
        let console = Arc::new(admin::console::Console::new(console_issuers, &public_url));
        let state = AdminState {
            registry: registry.clone(),
            metrics: metrics.clone(),
            audit: audit.clone(),
            auth: auth.clone(),
            keys: keys.clone(),
            admin_groups: a.admin_groups.clone().into(),
            auditor_groups: a.auditor_groups.clone().into(),
            store: store.clone(),
            connections: connections.into(),
            approvals: approvals.clone(),
            login: Arc::new(login),
            console,
        };
        tasks.spawn(admin::serve(listener, state, tls, shutdown.clone()));
    }
    println!("ready");

    let _ = shutdown.changed().await;
    tracing::info!("shutting down: draining connections");
    while tasks.join_next().await.is_some() {}
    approvals.stop().await;
    audit.flush().await;
    drop(audit);
    drop(registry);
    writer.abort();
    tracing::info!("stopped");
    Ok(())
}

fn set_bound(connections: &mut [admin::ConnectionInfo], name: &str, addr: std::net::SocketAddr) {
    if let Some(c) = connections.iter_mut().find(|c| c.name == name) {
        c.listen = addr.to_string();
    }
}

fn announce(name: &str, addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {name} {addr}");
    let _ = out.flush();
}
