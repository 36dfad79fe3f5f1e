//! How a waiting request learns that its approval was decided, whichever
//! replica decided it, and how replicas keep their ownership of waits alive.
//!
//! - In-process decisions wake the waiter directly ([`Approvals::wake`]).
//! - With PostgreSQL, every final status is announced with `NOTIFY`; one
//!   `LISTEN` connection per replica wakes the waiter it names.
//! - A poller reads the store every `approvals.poll_interval_ms` for this
//!   replica's waiters, in case a notification was lost (a reconnect).
//! - A heartbeat marks this replica alive every [`HEARTBEAT`]; a wait whose
//!   owner has not beaten for [`STALE_AFTER`] is abandoned by whichever
//!   replica sweeps first, and a wait [`EXPIRY_GRACE`] past its deadline
//!   (its holder could not record the timeout) is timed out.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Approvals;
use super::store::CHANNEL;

pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Replicas' clocks must agree to well within this (NTP does).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How long past its deadline a wait may stay waiting before a sweep times
/// it out (its holder normally does so at the deadline).
pub const EXPIRY_GRACE: Duration = Duration::from_secs(5);

/// Starts the release tasks; each ends at shutdown.
pub fn spawn(approvals: Arc<Approvals>) {
    tokio::spawn(heartbeat(approvals.clone()));
    tokio::spawn(poll(approvals.clone()));
    if let Some(url) = approvals.store().listen_url().map(str::to_string) {
        tokio::spawn(listen(approvals, url));
    }
}

async fn heartbeat(a: Arc<Approvals>) {
    let mut shutdown = a.shutdown.clone();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        let now = crate::audit::record::now_ms();
        if let Err(e) = a.store().heartbeat(a.replica(), now).await {
            tracing::warn!(error = %e, "approval heartbeat failed");
            continue;
        }
        // SQLite has one process; its orphans were swept at start.
        if a.store().is_postgres()
            && let Err(e) = a.sweep().await
        {
            tracing::warn!(error = %e, "sweeping orphaned approvals failed");
        }
        if let Err(e) = a.sweep_expired().await {
            tracing::warn!(error = %e, "sweeping expired approvals failed");
        }
    }
}

async fn poll(a: Arc<Approvals>) {
    let mut shutdown = a.shutdown.clone();
    let mut tick = tokio::time::interval(a.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        let ids = a.waiting_ids();
        if ids.is_empty() {
            continue;
        }
        match a.store().settled_among(&ids).await {
            Ok(settled) => {
                for id in settled {
                    a.wake(&id);
                }
            }
            Err(e) => tracing::debug!(error = %e, "polling approvals failed"),
        }
    }
}

async fn listen(a: Arc<Approvals>, url: String) {
    let mut shutdown = a.shutdown.clone();
    let mut delay = Duration::from_millis(250);
    loop {
        let connected = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let connected = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            l = connected => l,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for approval decisions; polling meanwhile");
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        delay = Duration::from_millis(250);
        tracing::debug!("listening for approval decisions");
        loop {
            let n = tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                n = listener.recv() => n,
            };
            match n {
                Ok(n) => a.wake(n.payload()),
                // recv reconnects by itself; an error here means it could
                // not. Start over (the poller covers the gap).
                Err(e) => {
                    tracing::warn!(error = %e, "approval LISTEN connection lost");
                    break;
                }
            }
        }
    }
}
