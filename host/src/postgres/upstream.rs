//! Opening a session on the upstream server with the held credentials:
//! TCP, optional TLS, the startup message, and SCRAM-SHA-256, md5,
//! cleartext or trust authentication. The client never sees any of it.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{Cursor, Frame, Notice, SSL_REQUEST, WireError};
use super::transport::{FrameReader, PgStream};
use crate::config::{PostgresSettings, UpstreamTls};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the database server at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("the database server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the database server refused TLS, which this connection requires")]
    TlsRefused,
    #[error("TLS to the database server failed: {0}")]
    Tls(String),
    #[error("the database server asked for {0}, which Gatehouse does not support")]
    UnsupportedAuth(String),
    #[error("authentication with the held credentials failed: {0}")]
    Auth(String),
    /// The server refused the session with an error of its own (e.g. no such database).
    #[error("{}", .0.message())]
    Server(Notice),
    #[error("talking to the database server: {0}")]
    Wire(#[from] WireError),
}

/// How to reach and log in to one upstream.
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    pub connect_timeout: Duration,
    pub max_message: usize,
}

impl UpstreamTarget {
    pub fn new(
        upstream: &str,
        pg: &PostgresSettings,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let uri: http::Uri = upstream.parse().map_err(|e| format!("upstream: {e}"))?;
        let host = uri.host().ok_or("upstream has no host")?.to_string();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(5432);
        let password = match &pg.password {
            Some(s) => Some(s.resolve().map_err(|e| format!("postgres.password: {e}"))?),
            None => None,
        };
        let tls = match pg.upstream_tls {
            UpstreamTls::Disable => None,
            UpstreamTls::VerifyFull => {
                let config = crate::tls::client_config(ca).map_err(|e| e.to_string())?;
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| format!("upstream host {host:?}: {e}"))?;
                Some((Arc::new(config), name))
            }
        };
        Ok(Self {
            host,
            port,
            user: pg.user.clone(),
            password,
            tls,
            connect_timeout: Duration::from_millis(pg.connect_timeout_ms),
            max_message: pg.max_message_bytes,
        })
    }

    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Opens a raw stream (TLS negotiated when configured).
    pub async fn open(&self) -> Result<PgStream, UpstreamError> {
        let addr = self.addr();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| UpstreamError::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let Some((config, name)) = &self.tls else {
            return Ok(PgStream::Plain(tcp));
        };
        let mut tcp = tcp;
        tcp.write_all(&[0, 0, 0, 8])
            .await
            .map_err(WireError::from)?;
        tcp.write_all(&SSL_REQUEST.to_be_bytes())
            .await
            .map_err(WireError::from)?;
        let mut answer = [0u8; 1];
        tcp.read_exact(&mut answer).await.map_err(WireError::from)?;
        if answer[0] != b'S' {
            return Err(UpstreamError::TlsRefused);
        }
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        Ok(PgStream::ClientTls(Box::new(tls)))
    }

    /// Opens a session as the held role, passing the client's startup
    /// parameters on. Returns once the server is ready for queries.
    pub async fn login(
        &self,
        params: &[(String, String)],
    ) -> Result<UpstreamSession, UpstreamError> {
        let t = self.connect_timeout;
        tokio::time::timeout(t, self.login_inner(params))
            .await
            .map_err(|_| UpstreamError::Timeout(t))?
    }

    async fn login_inner(
        &self,
        params: &[(String, String)],
    ) -> Result<UpstreamSession, UpstreamError> {
        let stream = self.open().await?;
        let mut reader = FrameReader::new(stream, self.max_message);
        let mut buf = BytesMut::new();
        let mut startup: Vec<(&str, &str)> = vec![("user", self.user.as_str())];
        startup.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        frontend::startup_message(startup, &mut buf).map_err(WireError::from)?;
        write(&mut reader, &mut buf).await?;

        let mut scram: Option<ScramSha256> = None;
        let mut session = UpstreamSession {
            parameters: vec![],
            process_id: 0,
            secret: 0,
            status: b'I',
            notices: vec![],
            reader: None,
        };
        loop {
            let frame = reader.next().await?;
            match frame.tag {
                b'R' => self.authenticate(&frame, &mut reader, &mut scram).await?,
                b'S' => {
                    let mut c = Cursor::new(&frame.body);
                    session
                        .parameters
                        .push((c.cstr()?.to_string(), c.cstr()?.to_string()));
                }
                b'K' => {
                    let mut c = Cursor::new(&frame.body);
                    session.process_id = c.i32()?;
                    session.secret = c.i32()?;
                }
                b'N' => session.notices.push(frame),
                b'E' => return Err(UpstreamError::Server(Notice::decode(&frame.body)?)),
                b'Z' => {
                    session.status = frame.body.first().copied().unwrap_or(b'I');
                    session.reader = Some(reader);
                    return Ok(session);
                }
                b'v' => {} // NegotiateProtocolVersion: we asked for 3.0, nothing to do.
                other => {
                    return Err(UpstreamError::Wire(WireError::Malformed(format!(
                        "unexpected message {:?} during startup",
                        other as char
                    ))));
                }
            }
        }
    }

    async fn authenticate(
        &self,
        frame: &Frame,
        reader: &mut FrameReader<PgStream>,
        scram: &mut Option<ScramSha256>,
    ) -> Result<(), UpstreamError> {
        let mut c = Cursor::new(&frame.body);
        let code = c.i32()?;
        let password = || {
            self.password.as_deref().ok_or_else(|| {
                UpstreamError::Auth(
                    "the server wants a password and none is configured (postgres.password)".into(),
                )
            })
        };
        let mut buf = BytesMut::new();
        match code {
            0 => return Ok(()),
            3 => {
                frontend::password_message(password()?.as_bytes(), &mut buf)
                    .map_err(WireError::from)?;
            }
            5 => {
                let salt = c.bytes(4)?;
                let salt = [salt[0], salt[1], salt[2], salt[3]];
                let hashed = postgres_protocol::authentication::md5_hash(
                    self.user.as_bytes(),
                    password()?.as_bytes(),
                    salt,
                );
                frontend::password_message(hashed.as_bytes(), &mut buf).map_err(WireError::from)?;
            }
            10 => {
                let mut offered = vec![];
                loop {
                    let m = c.cstr()?;
                    if m.is_empty() {
                        break;
                    }
                    offered.push(m.to_string());
                }
                if !offered.iter().any(|m| m == SCRAM_SHA_256) {
                    return Err(UpstreamError::UnsupportedAuth(format!(
                        "SASL mechanisms {offered:?}"
                    )));
                }
                let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut buf)
                    .map_err(WireError::from)?;
                *scram = Some(s);
            }
            11 => {
                let s = scram
                    .as_mut()
                    .ok_or_else(|| UpstreamError::Auth("SASL continue without a start".into()))?;
                s.update(&frame.body[4..])
                    .map_err(|e| UpstreamError::Auth(e.to_string()))?;
                frontend::sasl_response(s.message(), &mut buf).map_err(WireError::from)?;
            }
            12 => {
                let mut s = scram
                    .take()
                    .ok_or_else(|| UpstreamError::Auth("SASL final without a start".into()))?;
                s.finish(&frame.body[4..]).map_err(|e| {
                    UpstreamError::Auth(format!("the server's SCRAM signature is wrong: {e}"))
                })?;
                return Ok(());
            }
            other => {
                let what = match other {
                    2 => "Kerberos V5".to_string(),
                    7 | 8 => "GSSAPI".to_string(),
                    9 => "SSPI".to_string(),
                    n => format!("authentication method {n}"),
                };
                return Err(UpstreamError::UnsupportedAuth(what));
            }
        }
        write(reader, &mut buf).await
    }
}

async fn write(
    reader: &mut FrameReader<PgStream>,
    buf: &mut BytesMut,
) -> Result<(), UpstreamError> {
    let stream = reader.get_mut();
    stream.write_all(buf).await.map_err(WireError::from)?;
    stream.flush().await.map_err(WireError::from)?;
    buf.clear();
    Ok(())
}

/// A logged-in upstream session, ready for queries.
pub struct UpstreamSession {
    pub parameters: Vec<(String, String)>,
    pub process_id: i32,
    pub secret: i32,
    /// Transaction status from the first ReadyForQuery.
    pub status: u8,
    pub notices: Vec<Frame>,
    pub reader: Option<FrameReader<PgStream>>,
}
