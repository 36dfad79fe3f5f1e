//! The admin listener. `/healthz` and `/metrics` are open (for probes and
//! scrapers), and so is `/v1/login` (what `gatehouse login` needs to know);
//! `/v1/policies` is read-only status; `/v1/keys` changes state and requires
//! a caller in one of `admin.admin_groups`, authenticated like any other
//! caller (API key or OIDC token). `/v1/approvals` is for any authenticated
//! caller; who may decide is checked per approval. Bind it to loopback or a management network.

mod approvals;
pub mod console;
mod keys;
pub mod login;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::audit::AuditSink;
use crate::identity::{ApiKeys, AuthError, Authenticator, Principal};
use crate::metrics::Metrics;
use crate::policy::PolicyRegistry;

#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<PolicyRegistry>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    pub auth: Arc<Authenticator>,
    pub keys: Arc<ApiKeys>,
    pub admin_groups: Arc<[String]>,
    pub approvals: Arc<crate::approval::Approvals>,
    /// What `/v1/login` publishes.
    pub login: Arc<login::LoginDirectory>,
    pub console: Arc<console::Console>,
}

pub type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API until `shutdown` flips to true.
pub async fn serve(listener: TcpListener, state: AdminState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> AdminResponse {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
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
            from_console = console::cookie_credential(req.method(), req.headers())?;
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

pub fn error(status: StatusCode, code: &str, message: &str) -> AdminResponse {
    json_reply(status, json!({"error": {"code": code, "message": message}}))
}

pub fn json_reply(status: StatusCode, body: serde_json::Value) -> AdminResponse {
    reply(status, "application/json", body.to_string())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> AdminResponse {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}
