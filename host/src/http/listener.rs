//! Accepts client connections for one HTTP connection config, with optional
//! TLS, and serves HTTP/1.1 and HTTP/2 on them. Each TCP connection is one
//! audit session.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::HttpProxy;

const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
use super::event::SessionMeta;

/// Serves `listener` until `shutdown` flips to true; then stops accepting and
/// lets open connections finish their current requests. Open connections
/// are counted in `metrics` (`gatehouse_sessions_open`).
pub async fn serve_connection(
    listener: TcpListener,
    proxy: Arc<HttpProxy>,
    tls: Option<Arc<rustls::ServerConfig>>,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let session = Arc::new(SessionMeta {
            id: uuid::Uuid::now_v7().to_string(),
            connection: proxy.name.clone(),
            client_addr: peer.to_string(),
            started_at_ms: crate::audit::record::now_ms(),
        });
        let span = tracing::info_span!("connection", name = %proxy.name, session = %session.id, client.addr = %peer);
        let open = metrics.session_opened(&proxy.name);
        tasks.spawn(
            async move {
                let _open = open;
                match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            serve_one(TokioIo::new(tls), proxy, session, peer, shutdown).await
                        }
                        Err(e) => tracing::info!(error = %e, "TLS handshake failed"),
                    },
                    None => serve_one(TokioIo::new(stream), proxy, session, peer, shutdown).await,
                }
            }
            .instrument(span),
        );
        while tasks.try_join_next().is_some() {}
    }
    // Drain: connections finish in-flight requests (graceful shutdown below).
    while tasks.join_next().await.is_some() {}
}

async fn serve_one<I>(
    io: TokioIo<I>,
    proxy: Arc<HttpProxy>,
    session: Arc<SessionMeta>,
    _peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc_proxy = proxy.clone();
    let svc_session = session.clone();
    let service = service_fn(move |req| {
        let proxy = svc_proxy.clone();
        let session = svc_session.clone();
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, session).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that never finishes its request head is dropped.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    proxy.end_session(&session.id);
}
