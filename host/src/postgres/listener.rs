//! Accepts client connections for one PostgreSQL connection config. Each
//! TCP connection is one session (and one audit session once it gets past
//! the startup packet).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::PgProxy;

/// Serves `listener` until `shutdown` flips to true; then stops accepting,
/// tells open sessions the server is going away (57P01) and waits for them.
pub async fn serve_postgres(
    listener: TcpListener,
    proxy: Arc<PgProxy>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Counted open from accept to the last byte (admin /v1/connections).
        let open = proxy.metrics.session_opened(&proxy.name);
        let session = proxy.clone().serve(stream, shutdown.clone());
        tasks.spawn(async move {
            let _open = open;
            session.await
        });
        while tasks.try_join_next().is_some() {}
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        tracing::warn!("sessions still open after 5 s; closing them");
    }
}
