//! The batched writer. Adapters call [`AuditSink::record`], which only
//! queues; one task writes batches, retrying a failed batch until it lands,
//! so nothing accepted is dropped. While the store is failing, admission
//! follows `audit.on_store_failure`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::chain::{self, Chained};
use super::record::{AuditEvent, AuditRecord};
use super::store::{AuditStore, ChainedEvent, NewSession};
use crate::config::StoreFailureMode;
use crate::metrics::Metrics;

const BATCH_MAX: usize = 512;
const BATCH_LINGER: Duration = Duration::from_millis(10);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a new request is not admitted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuditUnavailable {
    #[error(
        "the audit store cannot be written; Gatehouse is not admitting new requests until it recovers"
    )]
    StoreFailing,
    #[error("the audit backlog is full ({0} records); retry shortly")]
    BacklogFull(usize),
}

struct Shared {
    healthy: AtomicBool,
    backlog: AtomicUsize,
    max_backlog: usize,
    mode: StoreFailureMode,
    metrics: Arc<Metrics>,
}

/// A cheap, cloneable handle for adapters.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
}

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

impl AuditSink {
    /// Starts the writer task on the current runtime.
    pub fn start(
        store: AuditStore,
        mode: StoreFailureMode,
        max_backlog: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            backlog: AtomicUsize::new(0),
            max_backlog,
            mode,
            metrics,
        });
        let task = tokio::spawn(run_writer(store, rx, shared.clone()));
        (Self { tx, shared }, task)
    }

    /// Whether a new request may start. Requests already admitted always get
    /// their records written.
    pub fn admit(&self) -> Result<(), AuditUnavailable> {
        let backlog = self.shared.backlog.load(Ordering::Relaxed);
        if backlog >= self.shared.max_backlog {
            return Err(AuditUnavailable::BacklogFull(backlog));
        }
        if self.shared.mode == StoreFailureMode::Reject
            && !self.shared.healthy.load(Ordering::Relaxed)
        {
            return Err(AuditUnavailable::StoreFailing);
        }
        Ok(())
    }

    pub fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    pub fn record_event(&self, event: AuditEvent) {
        self.send(AuditRecord::Event(Box::new(event)));
    }

    pub fn end_session(&self, session_id: String) {
        self.send(AuditRecord::SessionEnd {
            session_id,
            at_ms: super::record::now_ms(),
        });
    }

    fn send(&self, r: AuditRecord) {
        let n = self.shared.backlog.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared.metrics.audit_backlog.set(n as i64);
        if self.tx.send(Msg::Record(r)).is_err() {
            tracing::error!("audit writer has stopped; a record could not be queued");
        }
    }

    /// Waits until everything queued before this call is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Per-session chain state kept by the writer.
struct ChainHead {
    seq: i64,
    hash: String,
    /// Set when the session ended; the head is kept a while in case a late
    /// event of the session is still on its way.
    ended_at_ms: Option<i64>,
}

const ENDED_HEAD_TTL_MS: i64 = 10 * 60 * 1000;

async fn run_writer(store: AuditStore, mut rx: mpsc::UnboundedReceiver<Msg>, shared: Arc<Shared>) {
    let mut heads: HashMap<String, ChainHead> = HashMap::new();
    let mut closed = false;
    while !closed {
        let Some(first) = rx.recv().await else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_LINGER;
        while batch.len() < BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => batch.push(m),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        let mut records = Vec::new();
        for m in batch {
            match m {
                Msg::Record(r) => records.push(r),
                Msg::Flush(tx) => flushes.push(tx),
            }
        }
        let n = records.len();
        let (sessions, events, ended) = prepare(records, &mut heads);
        let mut delay = Duration::from_millis(50);
        loop {
            match store.write_batch(&sessions, &events, &ended).await {
                Ok(()) => {
                    if !shared.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!("audit store recovered; admitting requests again");
                    }
                    break;
                }
                Err(e) => {
                    if shared.healthy.swap(false, Ordering::Relaxed) {
                        tracing::error!(error = %e, records = n, "audit store write failed; holding the batch and retrying");
                    }
                    shared.metrics.audit_write_errors.inc();
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
        let left = shared.backlog.fetch_sub(n, Ordering::Relaxed) - n;
        shared.metrics.audit_backlog.set(left as i64);
        shared
            .metrics
            .audit_records_written
            .inc_by(events.len() as u64);
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// Assigns sequence numbers and chain hashes, and collects new sessions.
fn prepare(
    records: Vec<AuditRecord>,
    heads: &mut HashMap<String, ChainHead>,
) -> (Vec<NewSession>, Vec<ChainedEvent>, Vec<(String, i64)>) {
    let mut sessions = Vec::new();
    let mut events = Vec::new();
    let mut ended = Vec::new();
    for r in records {
        match r {
            AuditRecord::Event(e) => {
                let AuditEvent {
                    session,
                    at_ms,
                    kind,
                    principal,
                    verdict,
                    summary,
                    detail,
                } = *e;
                let head = heads.entry(session.id.clone()).or_insert_with(|| {
                    sessions.push(NewSession {
                        id: session.id.clone(),
                        connection: session.connection.clone(),
                        protocol: session.protocol.clone(),
                        client_addr: session.client_addr.clone(),
                        principal_subject: principal.as_ref().map(|p| p.subject.clone()),
                        principal_json: principal
                            .as_ref()
                            .and_then(|p| serde_json::to_string(p).ok()),
                        started_at_ms: session.started_at_ms,
                    });
                    ChainHead {
                        seq: 0,
                        hash: chain::GENESIS.to_string(),
                        ended_at_ms: None,
                    }
                });
                let seq = head.seq + 1;
                let detail = detail.into_json();
                let principal_json = principal
                    .as_ref()
                    .and_then(|p| serde_json::to_string(p).ok());
                let principal_subject = principal.map(|p| p.subject).unwrap_or_default();
                let kind = kind.as_str().to_string();
                let hash = chain::hash(
                    &head.hash,
                    &Chained {
                        session_id: &session.id,
                        seq,
                        at_ms,
                        kind: &kind,
                        principal: &principal_subject,
                        verdict: &verdict,
                        summary: &summary,
                        detail: &detail,
                    },
                );
                events.push(ChainedEvent {
                    session_id: session.id,
                    seq,
                    at_ms,
                    kind,
                    principal_subject,
                    principal_json,
                    verdict,
                    summary,
                    detail,
                    prev_hash: std::mem::replace(&mut head.hash, hash.clone()),
                    hash,
                });
                head.seq = seq;
            }
            AuditRecord::SessionEnd { session_id, at_ms } => {
                // Sessions with no events were never written; nothing to end.
                if let Some(head) = heads.get_mut(&session_id) {
                    head.ended_at_ms = Some(at_ms);
                    ended.push((session_id, at_ms));
                }
            }
        }
    }
    let now = super::record::now_ms();
    heads.retain(|_, h| h.ended_at_ms.is_none_or(|t| now - t < ENDED_HEAD_TTL_MS));
    (sessions, events, ended)
}
