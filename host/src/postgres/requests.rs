//! The client-to-server half of a session: decode each message, ask the
//! policies about every statement, and forward what is allowed. A refused
//! statement is replaced by a stand-in that makes the server fail exactly
//! where the statement would have run, so the transaction state and the
//! extended protocol's skip-until-Sync behave as PostgreSQL's own; the
//! response side swaps the stand-in's error for the refusal.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};

use super::PgProxy;
use super::codec::{self, Frame, FrontendMessage, Notice, WireError};
use super::event;
use super::pipeline::{ClientNote, Expect, QueryProtocol, Refusal, StatementRun, WitView};
use super::session::Session;
use super::sql::Analysis;
use super::transport::{FrameReader, PgStream, STREAM_THRESHOLD};
use crate::approval::{ApprovalInfo, ApprovalOutcome, Submitted};
use crate::policy::chain::Verdict;

/// Never a prepared statement's name: Bind to it fails with 26000.
const REFUSED_STATEMENT: &str = "__gatehouse_refused__";
/// Fails at parse time, before anything runs: the stand-in for a simple query.
const REFUSED_QUERY: &str = "GATEHOUSE REFUSED";
const FLUSH_AT: usize = 64 * 1024;

struct Prepared {
    sql: Arc<str>,
    analysis: Arc<Analysis>,
}

pub struct RequestSide {
    proxy: Arc<PgProxy>,
    session: Arc<Session>,
    upstream: WriteHalf<PgStream>,
    out: BytesMut,
    expect: mpsc::UnboundedSender<Expect>,
    notes: mpsc::UnboundedSender<ClientNote>,
    statements: HashMap<String, Prepared>,
    /// After a refusal in the extended protocol, until the next Sync.
    skipping: bool,
    counters: crate::metrics::KeptRequestCounters,
}

impl RequestSide {
    pub fn new(
        proxy: Arc<PgProxy>,
        session: Arc<Session>,
        upstream: WriteHalf<PgStream>,
        expect: mpsc::UnboundedSender<Expect>,
        notes: mpsc::UnboundedSender<ClientNote>,
    ) -> Self {
        Self {
            proxy,
            session,
            upstream,
            out: BytesMut::with_capacity(16 * 1024),
            expect,
            notes,
            statements: HashMap::new(),
            skipping: false,
            counters: Default::default(),
        }
    }

    pub async fn run(
        mut self,
        mut client: FrameReader<ReadHalf<PgStream>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), WireError> {
        // One wait for the whole session: a new `changed()` per message
        // would register with (and leave) the watch's waiter list each time.
        let shutting_down = shutdown.changed();
        tokio::pin!(shutting_down);
        loop {
            let head = tokio::select! {
                h = client.head() => h,
                _ = &mut shutting_down => {
                    let n = Notice::new("FATAL", "57P01", "terminating connection: Gatehouse is shutting down");
                    let _ = self.notes.send(ClientNote::Fatal(n.frame(b'E')));
                    self.terminate().await;
                    return Ok(());
                }
            };
            let head = match head {
                Ok(h) => h,
                Err(WireError::Closed) => {
                    self.terminate().await;
                    return Ok(());
                }
                Err(e) => return Err(self.violation(e).await),
            };
            if head.tag == b'd' && head.len > STREAM_THRESHOLD && !self.skipping {
                self.flush().await?;
                client.stream_to(head, &mut self.upstream).await?;
                continue;
            }
            let frame = match client.frame(head).await {
                Ok(f) => f,
                Err(WireError::Closed) => {
                    self.terminate().await;
                    return Ok(());
                }
                Err(e) => return Err(self.violation(e).await),
            };
            let go_on = match self.handle(&frame).await {
                Ok(g) => g,
                Err(e @ WireError::Malformed(_)) => return Err(self.violation(e).await),
                Err(e) => return Err(e),
            };
            if !go_on {
                self.flush().await?;
                return Ok(());
            }
            if !client.has_frame() || self.out.len() >= FLUSH_AT {
                self.flush().await?;
            }
        }
    }

    async fn handle(&mut self, frame: &Frame) -> Result<bool, WireError> {
        let msg = codec::decode_frontend(frame.tag, &frame.body)?;
        match msg {
            FrontendMessage::Query(sql) => self.simple_query(frame, sql).await?,
            FrontendMessage::Parse { name, sql, .. } if !self.skipping => {
                let analysis = self.proxy.analyses.analyze(sql);
                self.statements.insert(
                    name.to_string(),
                    Prepared {
                        sql: Arc::from(sql),
                        analysis,
                    },
                );
                self.forward(frame, Some(Expect::ParseComplete));
            }
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                ..
            } if !self.skipping => {
                let parameters = params
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let binary = match param_formats.len() {
                            0 => false,
                            1 => param_formats[0] == 1,
                            _ => param_formats.get(i) == Some(&1),
                        };
                        event::parameter_text(*v, binary)
                    })
                    .collect();
                self.bind(frame, portal.to_string(), statement.to_string(), parameters)
                    .await?;
            }
            FrontendMessage::Describe { kind, name } if !self.skipping => {
                let e = if kind == b'S' {
                    Expect::DescribeStatement
                } else {
                    Expect::DescribePortal {
                        portal: name.to_string(),
                        swallow: false,
                    }
                };
                self.forward(frame, Some(e));
            }
            FrontendMessage::Execute { portal, .. } if !self.skipping => {
                self.forward(
                    frame,
                    Some(Expect::Execute {
                        portal: portal.to_string(),
                    }),
                );
            }
            FrontendMessage::Close { kind, name } if !self.skipping => {
                if kind == b'S' {
                    self.statements.remove(name);
                }
                self.forward(frame, Some(Expect::CloseComplete));
            }
            FrontendMessage::Sync => {
                self.skipping = false;
                self.forward(frame, Some(Expect::Sync));
            }
            FrontendMessage::Flush => self.forward(frame, None),
            FrontendMessage::Terminate => {
                self.forward(frame, None);
                return Ok(false);
            }
            FrontendMessage::CopyData
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail(_) => self.forward(frame, None),
            FrontendMessage::FunctionCall => {
                let refusal = Refusal {
                    sqlstate: "0A000",
                    message: "fast-path function calls are not available through Gatehouse".into(),
                    detail: None,
                    hint: Some("call the function with a SELECT statement".into()),
                };
                self.stand_in_query(None, refusal);
            }
            FrontendMessage::Password(_) => {
                return Err(WireError::Malformed(
                    "unexpected password message after authentication".into(),
                ));
            }
            // Extended-protocol messages after a refusal are discarded until
            // Sync, as the server itself does after an error.
            _ => {}
        }
        Ok(true)
    }

    async fn simple_query(&mut self, frame: &Frame, sql: &str) -> Result<(), WireError> {
        let analysis = self.proxy.analyses.analyze(sql);
        let run = self
            .decide(QueryProtocol::Simple, Arc::from(sql), vec![], analysis)
            .await?;
        match run.refusal() {
            None => self.forward(frame, Some(Expect::Query { run })),
            Some(r) => self.stand_in_query(Some(run), r),
        }
        Ok(())
    }

    async fn bind(
        &mut self,
        frame: &Frame,
        portal: String,
        statement: String,
        parameters: Vec<Option<String>>,
    ) -> Result<(), WireError> {
        let Some(p) = self.statements.get(&statement) else {
            // Unknown to Gatehouse means unknown to the server too (Parse
            // messages are only dropped where the server drops them).
            let refusal = Refusal {
                sqlstate: "26000",
                message: format!("prepared statement \"{statement}\" does not exist"),
                detail: None,
                hint: None,
            };
            self.stand_in_bind(&portal, None, refusal);
            return Ok(());
        };
        let (sql, analysis) = (p.sql.clone(), p.analysis.clone());
        let run = self
            .decide(QueryProtocol::Extended, sql, parameters, analysis)
            .await?;
        match run.refusal() {
            None => {
                self.forward(
                    frame,
                    Some(Expect::BindComplete {
                        portal: portal.clone(),
                        run,
                    }),
                );
                // Ask for the portal's columns ourselves, so results can be
                // masked even when the client never describes them.
                let mut body = BytesMut::new();
                body.put_u8(b'P');
                codec::put_cstr(&mut body, &portal);
                let describe = Frame::new(b'D', body.freeze());
                self.forward(
                    &describe,
                    Some(Expect::DescribePortal {
                        portal,
                        swallow: true,
                    }),
                );
            }
            Some(r) => self.stand_in_bind(&portal, Some(run), r),
        }
        Ok(())
    }

    /// Runs the chain's `on-query` hook for one statement.
    async fn decide(
        &mut self,
        protocol: QueryProtocol,
        sql: Arc<str>,
        parameters: Vec<Option<String>>,
        analysis: Arc<Analysis>,
    ) -> Result<Arc<StatementRun>, WireError> {
        let request_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let at_ms = crate::audit::record::now_ms();
        let s = self.session.clone();
        // What is already queued can run on the server while the policies think.
        self.flush().await?;
        let key = self.proxy.chain.cache_key(
            "postgres.on-query",
            "statement",
            self.session.principal_key.clone(),
            analysis.shape(),
        );
        let wit = std::sync::OnceLock::new();
        let outcome = match self.proxy.chain.cached(&key) {
            Some(hit) => hit,
            None => {
                let view = WitView::new(&s, &request_id, &sql, &parameters, &analysis);
                let (ctx, query) = (view.ctx.clone(), view.query.clone());
                let _ = wit.set(view);
                let outcome = self
                    .proxy
                    .chain
                    .run_blocking(move |p| p.postgres_on_query(&ctx, &query))
                    .await
                    .map_err(|e| {
                        WireError::Io(std::io::Error::other(format!("policy task failed: {e}")))
                    })?;
                self.proxy.chain.remember(key, &outcome);
                Arc::new(outcome)
            }
        };
        let held = match &outcome.verdict {
            Verdict::RequireApproval { policy, approval } => {
                let info = ApprovalInfo {
                    id: uuid::Uuid::now_v7().to_string(),
                    connection: self.proxy.name.clone(),
                    protocol: "postgres".into(),
                    session_id: s.meta.id.clone(),
                    request_id: request_id.clone(),
                    requester: s.principal.record(),
                    request: serde_json::json!({
                        "database": s.database,
                        "sql": &*sql,
                        "parameters": parameters,
                    }),
                    policy: policy.to_string(),
                    reason: approval.reason.clone(),
                    approver_groups: approval.approver_groups.clone(),
                    timeout_secs: approval.timeout_secs,
                    scope: approval.scope.clone(),
                    created_at_ms: crate::audit::record::now_ms(),
                };
                Some(self.hold(info).await)
            }
            _ => None,
        };
        let run = StatementRun {
            request_id,
            started,
            at_ms,
            protocol,
            sql,
            parameters,
            analysis,
            wit,
            outcome,
            held,
        };
        self.proxy
            .metrics
            .request_kept(&self.proxy.name, run.verdict_label(), &mut self.counters);
        Ok(Arc::new(run))
    }

    /// Holds the statement until an approver decides or the approval times
    /// out; the client is told what it is waiting for.
    async fn hold(&mut self, info: ApprovalInfo) -> (String, ApprovalOutcome) {
        let id = info.id.clone();
        let notice = Notice::new(
            "NOTICE",
            "00000",
            format!(
                "waiting for approval {id}: {} (policy {}; approvers: {}; times out in {} s)",
                info.reason,
                info.policy,
                info.approver_groups.join(", "),
                info.timeout_secs
            ),
        );
        let submitted = self
            .proxy
            .approvals
            .submit(info, &self.session.principal, &self.session.meta)
            .await;
        let ticket = match submitted {
            Submitted::Waiting(t) => t,
            // A grant covers it, or it could not be recorded (a refusal).
            Submitted::Settled(s) => return (s.id, s.outcome),
        };
        let _ = self.notes.send(ClientNote::Frame(notice.frame(b'N')));
        (id, ticket.wait().await.outcome)
    }

    fn stand_in_query(&mut self, run: Option<Arc<StatementRun>>, refusal: Refusal) {
        let mut body = BytesMut::new();
        codec::put_cstr(&mut body, REFUSED_QUERY);
        let frame = Frame::new(b'Q', body.freeze());
        self.forward(
            &frame,
            Some(Expect::Refused {
                run,
                refusal,
                simple: true,
            }),
        );
    }

    fn stand_in_bind(&mut self, portal: &str, run: Option<Arc<StatementRun>>, refusal: Refusal) {
        let mut body = BytesMut::new();
        codec::put_cstr(&mut body, portal);
        codec::put_cstr(&mut body, REFUSED_STATEMENT);
        body.put_i16(0);
        body.put_i16(0);
        body.put_i16(0);
        let frame = Frame::new(b'B', body.freeze());
        self.forward(
            &frame,
            Some(Expect::Refused {
                run,
                refusal,
                simple: false,
            }),
        );
        self.skipping = true;
    }

    /// Queues a frame for the server; its expected answer goes first, so
    /// the response side always knows what an answer belongs to.
    fn forward(&mut self, frame: &Frame, expect: Option<Expect>) {
        if let Some(e) = expect {
            // The response side only goes away with the session.
            let _ = self.expect.send(e);
        }
        frame.encode(&mut self.out);
    }

    async fn flush(&mut self) -> Result<(), WireError> {
        if !self.out.is_empty() {
            self.upstream.write_all(&self.out).await?;
            self.out.clear();
        }
        self.upstream.flush().await?;
        Ok(())
    }

    /// Ends the upstream session politely.
    async fn terminate(&mut self) {
        Frame::new(b'X', bytes::Bytes::new()).encode(&mut self.out);
        let _ = self.flush().await;
        let _ = self.upstream.shutdown().await;
    }

    /// A message PostgreSQL would reject as a protocol violation: the
    /// session ends with a FATAL error, as it would there.
    async fn violation(&mut self, e: WireError) -> WireError {
        tracing::info!(error = %e, "protocol violation from the client");
        let n = Notice::new("FATAL", "08P01", format!("protocol violation: {e}"));
        let _ = self.notes.send(ClientNote::Fatal(n.frame(b'E')));
        self.terminate().await;
        e
    }
}
