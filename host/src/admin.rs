//! The admin listener. `/healthz` and `/metrics` are open (for probes and
//! scrapers), and so are `/v1/login` (what `gatehouse login` needs to know)
//! and `/v1/openapi.json` (this API, described); `/v1/policies` is
//! read-only status. Everything else needs a caller authenticated like any
//! other (API key or OIDC token):
//! - `/v1/keys` changes state and requires a caller in `admin.admin_groups`;
//! - `/v1/sessions`, `/v1/events` and `/v1/connections` read the audit trail
//!   and the configuration, for `admin.admin_groups` and `admin.auditor_groups`;
//! - `/v1/approvals` is for any authenticated caller; who may decide is
//!   checked per approval.
//!
//! Bind it to loopback or a management network. `host/openapi.json` is the
//! contract of every route here; a test checks real answers against it.

mod approvals;
mod connections;
pub mod console;
mod keys;
pub mod login;
mod sessions;

pub use connections::ConnectionInfo;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::audit::{AuditSink, AuditStore};
use crate::identity::{ApiKeys, AuthError, Authenticator, Principal};
use crate::metrics::Metrics;
use crate::policy::PolicyRegistry;

/// This API, described (OpenAPI 3.1).
pub const OPENAPI: &str = include_str!("../openapi.json");

#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<PolicyRegistry>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    pub auth: Arc<Authenticator>,
    pub keys: Arc<ApiKeys>,
    pub admin_groups: Arc<[String]>,
    /// Groups that may read the audit trail (besides `admin_groups`).
    pub auditor_groups: Arc<[String]>,
    /// The audit store, for reading sessions and events.
    pub store: AuditStore,
    /// What `/v1/connections` lists.
    pub connections: Arc<[ConnectionInfo]>,
    pub approvals: Arc<crate::approval::Approvals>,
    /// What `/v1/login` publishes.
    pub login: Arc<login::LoginDirectory>,
    pub console: Arc<console::Console>,
}

/// A whole answer, built in memory.
pub type AdminResponse = Response<Full<Bytes>>;

/// What the listener sends: whole answers, or streams (exports).
pub type AdminBody = BoxBody<Bytes, BodyError>;
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Serves the admin API until `shutdown` flips to true.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        let acceptor = acceptor.clone();
        let span = tracing::info_span!("admin_connection", client.addr = %peer);
        tokio::spawn(
            async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(route(&state, req).await) }
                });
                let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                    }
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        );
                        match handshake.await {
                            Ok(Ok(tls)) => {
                                let _ = http.serve_connection(TokioIo::new(tls), svc).await;
                            }
                            Ok(Err(e)) => tracing::info!(error = %e, "admin: TLS handshake failed"),
                            Err(_) => tracing::info!("admin: TLS handshake timed out"),
                        }
                    }
                }
            }
            .instrument(span),
        );
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<AdminBody> {
    let path = req.uri().path().to_string();
    if sessions::serves(&path) {
        return match reader(state, &req).await {
            Ok(principal) => sessions::handle(state, req, &principal).await,
            Err(resp) => whole(resp),
        };
    }
    whole(route_whole(state, req, &path).await)
}

async fn route_whole(state: &AdminState, req: Request<Incoming>, path: &str) -> AdminResponse {
    match (req.method().clone(), path) {
        (Method::GET, "/healthz") => {
            let healthy = state.audit.is_healthy();
            let status = if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_reply(
                status,
                json!({"audit_store": if healthy {"ok"} else {"failing"}}),
            )
        }
        (Method::GET, "/v1/login") => match serde_json::to_value(&*state.login) {
            Ok(v) => json_reply(StatusCode::OK, v),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            ),
        },
        (Method::GET, "/v1/policies") => {
            json_reply(StatusCode::OK, json!({"policies": state.registry.status()}))
        }
        (Method::GET, "/v1/openapi.json") => {
            reply(StatusCode::OK, "application/json", OPENAPI.into())
        }
        (_, "/v1/connections") => match reader(state, &req).await {
            Ok(_) if req.method() == Method::GET => connections::list(state),
            Ok(_) => method_not_allowed("GET"),
            Err(resp) => resp,
        },
        (Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        (_, p) if console::serves(p) => console::handle(&state.console, &state.auth, req).await,
        (_, p) if p == "/v1/approvals" || p.starts_with("/v1/approvals/") => {
            match caller(state, &req).await {
                Ok(principal) => approvals::handle(state, req, &principal).await,
                Err(resp) => resp,
            }
        }
        (_, p) if p == "/v1/keys" || p.starts_with("/v1/keys/") => match admin(state, &req).await {
            Ok(principal) => keys::handle(state, req, &principal).await,
            Err(resp) => resp,
        },
        _ => json_reply(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": "no such endpoint"}}),
        ),
    }
}

/// Authenticates the caller (API key or OIDC token as a bearer token).
async fn caller(state: &AdminState, req: &Request<Incoming>) -> Result<Principal, AdminResponse> {
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_console;
    let presented = match presented {
        Some(p) => Some(p),
        None => {
            from_console = console::cookie_credential(req.method(), req.headers())
                .map_err(|m| error(StatusCode::FORBIDDEN, "forbidden", m))?;
            from_console.as_deref()
        }
    };
    let Some(presented) = presented else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            &AuthError::Missing.to_string(),
        ));
    };
    state
        .auth
        .authenticate(presented)
        .await
        .map_err(|e| error(StatusCode::UNAUTHORIZED, "unauthenticated", &e.to_string()))
}

/// Authenticates the caller and checks it may read the audit trail: a
/// member of `admin.admin_groups` or `admin.auditor_groups`.
async fn reader(state: &AdminState, req: &Request<Incoming>) -> Result<Principal, AdminResponse> {
    let principal = caller(state, req).await?;
    let allowed = |g: &String| state.admin_groups.contains(g) || state.auditor_groups.contains(g);
    if principal.groups.iter().any(allowed) {
        return Ok(principal);
    }
    let groups: Vec<&str> = state
        .admin_groups
        .iter()
        .chain(state.auditor_groups.iter())
        .map(String::as_str)
        .collect();
    tracing::warn!(subject = %principal.subject, "audit read refused: not an admin or auditor");
    let message = if groups.is_empty() {
        "no admin or auditor groups are configured (admin.admin_groups, admin.auditor_groups); nobody may read the audit trail through the API".to_string()
    } else {
        format!(
            "{} may not read the audit trail: that needs one of the groups {} (admin.admin_groups or admin.auditor_groups)",
            principal.subject,
            groups.join(", ")
        )
    };
    Err(error(StatusCode::FORBIDDEN, "forbidden", &message))
}

/// Authenticates the caller and checks it is an administrator.
async fn admin(state: &AdminState, req: &Request<Incoming>) -> Result<Principal, AdminResponse> {
    let principal = caller(state, req).await?;
    if state.admin_groups.is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "no admin groups are configured (admin.admin_groups); the admin API is read-only",
        ));
    }
    if !principal
        .groups
        .iter()
        .any(|g| state.admin_groups.contains(g))
    {
        tracing::warn!(subject = %principal.subject, "admin request refused: not in an admin group");
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "{} is not in an admin group ({})",
                principal.subject,
                state.admin_groups.join(", ")
            ),
        ));
    }
    Ok(principal)
}

pub fn method_not_allowed(allowed: &'static str) -> AdminResponse {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("this endpoint answers {allowed} only"),
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allowed));
    r
}

pub fn error(status: StatusCode, code: &str, message: &str) -> AdminResponse {
    json_reply(status, json!({"error": {"code": code, "message": message}}))
}

/// A 503 for a store failure: the cause (which may name tables, hosts or
/// values) goes to the log under a reference the caller is given.
pub fn store_unavailable(code: &str, what: &str, cause: &dyn std::fmt::Display) -> AdminResponse {
    let reference = uuid::Uuid::now_v7();
    tracing::error!(%reference, error = %cause, "{what} failed: store error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        &format!(
            "{what} failed: the store is unavailable (reference {reference} in the Gatehouse log)"
        ),
    )
}

pub fn json_reply(status: StatusCode, body: serde_json::Value) -> AdminResponse {
    reply(status, "application/json", body.to_string())
}

pub fn reply(status: StatusCode, content_type: &'static str, body: String) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// A whole answer as what the listener sends.
pub fn whole(resp: AdminResponse) -> Response<AdminBody> {
    resp.map(|b| b.map_err(|never: Infallible| match never {}).boxed())
}

/// A streamed answer: the producer sends chunks into the returned sender
/// and stops when a send fails (the client went away). An `Err` chunk
/// aborts the response, so a client never mistakes a cut-off stream for a
/// whole one.
pub fn streamed(
    content_type: &'static str,
) -> (Response<AdminBody>, mpsc::Sender<Result<Bytes, BodyError>>) {
    let (tx, rx) = mpsc::channel(4);
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    (r, tx)
}

struct ChannelBody(mpsc::Receiver<Result<Bytes, BodyError>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}
