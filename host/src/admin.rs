//! The admin listener: health, policy status and Prometheus metrics. Read-only
//! for now, and meant to be bound to loopback or a management network.

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
use crate::metrics::Metrics;
use crate::policy::PolicyRegistry;

#[derive(Clone)]
pub struct AdminState {
    pub registry: Arc<PolicyRegistry>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
}

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
                async move { Ok::<_, Infallible>(route(&state, req)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn route(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "application/json",
            json!({"error": "only GET is served here"}).to_string(),
        );
    }
    match req.uri().path() {
        "/healthz" => {
            let healthy = state.audit.is_healthy();
            let status = if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(
                status,
                "application/json",
                json!({"audit_store": if healthy {"ok"} else {"failing"}}).to_string(),
            )
        }
        "/v1/policies" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_string(&json!({"policies": state.registry.status()}))
                .unwrap_or_default(),
        ),
        "/metrics" => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "application/json",
            json!({"error": "not found"}).to_string(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}
