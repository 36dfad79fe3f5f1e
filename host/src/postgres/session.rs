//! One client session from the first byte to the last: TLS negotiation,
//! the startup packet, authentication with the Gatehouse identity, the
//! upstream login with the held credentials, then the two relay tasks.

use std::sync::Arc;

use bytes::BytesMut;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::PgProxy;
use super::client_auth::Login;
use super::codec::{self, Frame, Notice, StartupPacket, WireError, backend};
use super::pipeline::ClientNote;
use super::record;
use super::transport::{FrameReader, PgStream};
use super::upstream::UpstreamError;
use crate::http::event::SessionMeta;
use crate::identity::{AuthError, Authenticator, Principal};

/// The startup phase never needs large messages.
const STARTUP_MAX: usize = 16 * 1024;

/// What a session knows about itself once it is up.
pub struct Session {
    pub meta: SessionMeta,
    pub principal: Principal,
    pub database: String,
    pub labels: Vec<(String, String)>,
    /// The caller's part of decision-cache keys (see `event::principal_key`).
    pub principal_key: Arc<str>,
    /// The session and the caller as every statement's audit record names
    /// them, made once.
    pub record: Arc<crate::audit::SessionInfo>,
    pub principal_record: Arc<crate::audit::PrincipalRecord>,
}

/// A refusal during startup, sent as a FATAL error.
pub(super) struct Fatal {
    pub(super) sqlstate: &'static str,
    pub(super) message: String,
    pub(super) hint: Option<&'static str>,
}

impl Fatal {
    pub(super) fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        Self {
            sqlstate,
            message: message.into(),
            hint: None,
        }
    }

    fn frame(&self) -> Frame {
        let mut n = Notice::new("FATAL", self.sqlstate, &self.message);
        if let Some(h) = self.hint {
            n = n.with(b'H', h);
        }
        n.frame(b'E')
    }
}

impl PgProxy {
    pub async fn serve(self: Arc<Self>, tcp: TcpStream, shutdown: watch::Receiver<bool>) {
        let client_addr = tcp
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown".into());
        let _ = tcp.set_nodelay(true);
        let meta = SessionMeta {
            id: uuid::Uuid::now_v7().to_string(),
            connection: self.name.clone(),
            client_addr: client_addr.clone(),
            started_at_ms: crate::audit::record::now_ms(),
        };
        let span = tracing::info_span!("pg_session", session = %meta.id, connection = %self.name, client.addr = %client_addr, principal = tracing::field::Empty);
        async move {
            let reached_upstream = self.run(tcp, meta.clone(), shutdown).await;
            if reached_upstream {
                self.audit.end_session(meta.id.clone());
            }
        }
        .instrument(span)
        .await
    }

    /// Returns whether the session got far enough to be recorded as one.
    async fn run(
        self: &Arc<Self>,
        tcp: TcpStream,
        meta: SessionMeta,
        shutdown: watch::Receiver<bool>,
    ) -> bool {
        let client = FrameReader::new(PgStream::Plain(tcp), STARTUP_MAX);
        let (mut client, (minor, params)) = match self.negotiate(client).await {
            Ok((c, Some(p))) => (c, p),
            Ok((_, None)) => return false,
            Err(e) => {
                tracing::debug!(error = %e, "startup failed");
                return false;
            }
        };
        let startup = startup_json(&params);
        if let Err(f) = self.check_startup(&params) {
            return self
                .refuse(&mut client, &meta, None, None, f, startup)
                .await;
        }
        let unrecognised: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.starts_with("_pq_."))
            .map(|(k, _)| k.clone())
            .collect();
        if minor > 0 || !unrecognised.is_empty() {
            let _ = write_frame(
                &mut client,
                &backend::negotiate_protocol_version(&unrecognised),
            )
            .await;
        }
        if let Err(e) = self.audit.admit() {
            let f = Fatal::new(
                "53400",
                format!("Gatehouse cannot record this session: {e}"),
            );
            send_fatal(&mut client, &f).await;
            return false;
        }

        // Authentication with the Gatehouse identity.
        let (principal, presented) = match self.authenticate(&mut client, &params).await {
            Ok(p) => p,
            Err((f, presented)) => {
                return self
                    .refuse(&mut client, &meta, None, presented, f, startup)
                    .await;
            }
        };
        tracing::Span::current().record("principal", principal.subject.as_str());
        let database = principal
            .may_use(&self.name, &self.allowed_groups)
            .map_err(|e| Fatal::new("28000", e.to_string()))
            .and_then(|()| self.database(&params));
        let database = match database {
            Ok(d) => d,
            Err(f) => {
                return self
                    .refuse(
                        &mut client,
                        &meta,
                        Some(&principal),
                        Some(presented),
                        f,
                        startup,
                    )
                    .await;
            }
        };

        // The upstream session, with the held credentials.
        let mut upstream_params: Vec<(String, String)> =
            vec![("database".into(), database.clone())];
        upstream_params.extend(
            params
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "user" | "database" | "replication")
                        && !k.starts_with("_pq_.")
                })
                .cloned(),
        );
        let up = match self.target.login(&upstream_params).await {
            Ok(up) => up,
            Err(e) => {
                let frame = match &e {
                    UpstreamError::Server(n) => {
                        record::connected(
                            &self.audit,
                            &meta,
                            &principal,
                            presented,
                            &database,
                            startup,
                            Some((n.code().to_string(), n.message().to_string())),
                        );
                        n.frame(b'E')
                    }
                    other => {
                        tracing::warn!(error = %other, "upstream login failed");
                        let f = Fatal::new(
                            "08006",
                            format!(
                                "Gatehouse could not open a session on the database server: {other}"
                            ),
                        );
                        record::connected(
                            &self.audit,
                            &meta,
                            &principal,
                            presented,
                            &database,
                            startup,
                            Some((f.sqlstate.to_string(), f.message.clone())),
                        );
                        f.frame()
                    }
                };
                let _ = write_frame(&mut client, &frame).await;
                return true;
            }
        };
        record::connected(
            &self.audit,
            &meta,
            &principal,
            presented,
            &database,
            startup,
            None,
        );
        let cancel = self.cancels.register(super::cancel::UpstreamKey {
            process_id: up.process_id,
            secret: up.secret,
        });

        let mut hello = BytesMut::new();
        backend::auth_ok().encode(&mut hello);
        for (k, v) in &up.parameters {
            backend::parameter_status(k, v).encode(&mut hello);
        }
        backend::backend_key_data(cancel.process_id, cancel.secret).encode(&mut hello);
        for n in &up.notices {
            n.encode(&mut hello);
        }
        backend::ready_for_query(up.status).encode(&mut hello);
        if client.get_mut().write_all(&hello).await.is_err()
            || client.get_mut().flush().await.is_err()
        {
            return true;
        }
        let Some(upstream) = up.reader else {
            return true;
        };
        let session = Arc::new(Session {
            record: record::session_info(&meta),
            principal_record: Arc::new(principal.record()),
            meta,
            principal_key: Arc::from(super::event::principal_key(&principal)),
            principal,
            database,
            labels: self.labels.clone(),
        });
        self.relay(session, client, upstream, shutdown).await;
        drop(cancel);
        true
    }

    /// TLS and the startup packet. `None` when the connection was only a
    /// cancel request or went away.
    async fn negotiate(
        &self,
        mut client: FrameReader<PgStream>,
    ) -> Result<(FrameReader<PgStream>, Option<(u16, Vec<(String, String)>)>), WireError> {
        loop {
            let body = client.startup_packet().await?;
            match codec::decode_startup(&body) {
                Ok(StartupPacket::Ssl) => match (&self.tls, client.get_mut().is_tls()) {
                    (Some(config), false) => {
                        if !client.buffered().is_empty() {
                            // Bytes sent before the handshake could be injected by a
                            // man in the middle: PostgreSQL refuses them too.
                            return Err(WireError::Malformed(
                                "data after SSLRequest before the TLS handshake".into(),
                            ));
                        }
                        client.get_mut().write_all(b"S").await?;
                        let (stream, _) = client.into_parts();
                        let PgStream::Plain(tcp) = stream else {
                            return Err(WireError::Malformed("TLS requested twice".into()));
                        };
                        let tls = tokio_rustls::TlsAcceptor::from(config.clone())
                            .accept(tcp)
                            .await
                            .map_err(WireError::Io)?;
                        client = FrameReader::new(PgStream::ServerTls(Box::new(tls)), STARTUP_MAX);
                    }
                    _ => client.get_mut().write_all(b"N").await?,
                },
                Ok(StartupPacket::GssEnc) => client.get_mut().write_all(b"N").await?,
                Ok(StartupPacket::Cancel { process_id, secret }) => {
                    self.forward_cancel(process_id, &secret).await;
                    return Ok((client, None));
                }
                Ok(StartupPacket::Startup { minor, params }) => {
                    return Ok((client, Some((minor, params))));
                }
                Err(e) => {
                    let f = Fatal::new("08P01", format!("invalid startup packet: {e}"));
                    send_fatal(&mut client, &f).await;
                    return Ok((client, None));
                }
            }
        }
    }

    /// Refuses the session before it reaches the server: audited with what
    /// was presented, then a FATAL error. Returns true (it was a session).
    async fn refuse(
        &self,
        client: &mut FrameReader<PgStream>,
        meta: &SessionMeta,
        principal: Option<&Principal>,
        presented: Option<String>,
        f: Fatal,
        startup: serde_json::Value,
    ) -> bool {
        record::refused(
            &self.audit,
            meta,
            principal,
            presented,
            f.sqlstate,
            &f.message,
            startup,
        );
        send_fatal(client, &f).await;
        true
    }

    fn check_startup(&self, params: &[(String, String)]) -> Result<(), Fatal> {
        if params
            .iter()
            .any(|(k, v)| k == "replication" && v != "false" && v != "0" && v != "off")
        {
            return Err(Fatal::new(
                "0A000",
                "replication connections are not available through Gatehouse",
            ));
        }
        Ok(())
    }

    fn database(&self, params: &[(String, String)]) -> Result<String, Fatal> {
        let asked = params
            .iter()
            .find(|(k, _)| k == "database")
            .map(|(_, v)| v.clone());
        match (&self.pinned_database, asked) {
            (Some(pinned), Some(asked)) if !asked.is_empty() && &asked != pinned => {
                Err(Fatal::new(
                    "3D000",
                    format!(
                        "database \"{asked}\" is not available through connection {}; it serves \"{pinned}\"",
                        self.name
                    ),
                ))
            }
            (Some(pinned), _) => Ok(pinned.clone()),
            (None, Some(asked)) if !asked.is_empty() => Ok(asked),
            (None, _) => Ok(self.target.user.clone()),
        }
    }

    /// Asks for the password (the Gatehouse credential) and checks it, or
    /// runs SCRAM when the user name is a key id (`client_auth.rs`).
    async fn authenticate(
        &self,
        client: &mut FrameReader<PgStream>,
        params: &[(String, String)],
    ) -> Result<(Principal, String), (Fatal, Option<String>)> {
        if let Login::Scram(key) = self.choose_login(params).await? {
            let (verifier, info) = *key;
            return self.scram_login(client, verifier, info).await;
        }
        if !client.get_mut().is_tls() && !self.allow_cleartext_password {
            return Err((
                Fatal {
                    sqlstate: "28000",
                    message: format!("connection {} accepts credentials only over TLS", self.name),
                    hint: Some(if self.client_auth == crate::config::ClientAuth::Password {
                        "connect with sslmode=require (the credential is sent as the password)"
                    } else {
                        "connect with sslmode=require (the credential is sent as the password), or log in with an API key over SCRAM-SHA-256: its id as the user name, the key as the password"
                    }),
                },
                None,
            ));
        }
        let io = |e: WireError| (Fatal::new("08P01", e.to_string()), None);
        write_frame(client, &backend::auth_cleartext())
            .await
            .map_err(io)?;
        let frame = client.next().await.map_err(io)?;
        if frame.tag != b'p' {
            return Err((
                Fatal::new(
                    "08P01",
                    format!("expected a password message, got {:?}", frame.tag as char),
                ),
                None,
            ));
        }
        let mut c = codec::Cursor::new(&frame.body);
        let password = c
            .cstr()
            .map_err(|e| {
                (
                    Fatal::new("08P01", format!("invalid password message: {e}")),
                    None,
                )
            })?
            .to_string();
        if password.is_empty() {
            return Err((
                Fatal {
                    sqlstate: "28P01",
                    message: AuthError::Missing.to_string(),
                    hint: Some(
                        "give a Gatehouse API key or an OIDC access token as the password (PGPASSWORD)",
                    ),
                },
                None,
            ));
        }
        let presented = Authenticator::describe(&password);
        match self.auth.authenticate(&password).await {
            Ok(p) => {
                tracing::info!(method = "password", presented = %presented, "client authenticated");
                Ok((p, presented))
            }
            Err(e) => {
                tracing::info!(reason = e.label(), presented = %presented, "authentication refused");
                let sqlstate = match e {
                    AuthError::Store(_) => "58000",
                    _ => "28P01",
                };
                Err((
                    Fatal::new(sqlstate, format!("Gatehouse authentication failed: {e}")),
                    Some(presented),
                ))
            }
        }
    }

    async fn forward_cancel(&self, process_id: i32, secret: &[u8]) {
        let Some(key) = self.cancels.lookup(process_id, secret) else {
            tracing::info!("cancel request with an unknown key ignored");
            return;
        };
        let mut body = BytesMut::new();
        bytes::BufMut::put_i32(&mut body, 16);
        bytes::BufMut::put_i32(&mut body, codec::CANCEL_REQUEST);
        bytes::BufMut::put_i32(&mut body, key.process_id);
        bytes::BufMut::put_i32(&mut body, key.secret);
        match self.target.open().await {
            Ok(mut s) => {
                if let Err(e) = s.write_all(&body).await {
                    tracing::warn!(error = %e, "forwarding a cancel request failed");
                }
                let _ = s.flush().await;
                let _ = s.shutdown().await;
                tracing::info!("cancel request forwarded");
            }
            Err(e) => tracing::warn!(error = %e, "forwarding a cancel request failed"),
        }
    }

    async fn relay(
        self: &Arc<Self>,
        session: Arc<Session>,
        client: FrameReader<PgStream>,
        upstream: FrameReader<PgStream>,
        shutdown: watch::Receiver<bool>,
    ) {
        let (client_stream, client_buf) = client.into_parts();
        let (upstream_stream, upstream_buf) = upstream.into_parts();
        let (client_r, client_w) = tokio::io::split(client_stream);
        let (upstream_r, upstream_w) = tokio::io::split(upstream_stream);
        let client_r = FrameReader::from_parts(client_r, client_buf, self.max_message);
        let upstream_r = FrameReader::from_parts(upstream_r, upstream_buf, self.max_message);
        let (expect_tx, expect_rx) = mpsc::unbounded_channel();
        let (note_tx, note_rx) = mpsc::unbounded_channel::<ClientNote>();
        let requests = super::requests::RequestSide::new(
            self.clone(),
            session.clone(),
            upstream_w,
            expect_tx,
            note_tx,
        );
        let responses = super::responses::ResponseSide::new(
            self.clone(),
            session.clone(),
            client_w,
            expect_rx,
            note_rx,
        );
        let mut req_task = tokio::spawn(requests.run(client_r, shutdown).in_current_span());
        let mut resp_task = tokio::spawn(responses.run(upstream_r).in_current_span());
        // Whichever side ends first ends the session.
        tokio::select! {
            r = &mut req_task => {
                if let Ok(Err(e)) = r { tracing::debug!(error = %e, "client side ended"); }
                // Let the response side deliver what is in flight, briefly.
                if tokio::time::timeout(std::time::Duration::from_secs(2), &mut resp_task).await.is_err() {
                    resp_task.abort();
                }
            }
            r = &mut resp_task => {
                if let Ok(Err(e)) = r { tracing::debug!(error = %e, "server side ended"); }
                req_task.abort();
            }
        }
    }
}

fn startup_json(params: &[(String, String)]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = params
        .iter()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    serde_json::Value::Object(map)
}

async fn write_frame(client: &mut FrameReader<PgStream>, f: &Frame) -> Result<(), WireError> {
    super::transport::send(client.get_mut(), f).await
}

async fn send_fatal(client: &mut FrameReader<PgStream>, f: &Fatal) {
    let _ = write_frame(client, &f.frame()).await;
    let _ = client.get_mut().shutdown().await;
}
