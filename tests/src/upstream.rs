//! A small upstream HTTP service for tests and the demo. It requires the
//! held credential, echoes what it received, and can split a secret across
//! two body chunks with a pause between them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::{AWS_KEY, UPSTREAM_TOKEN};

type Body = BoxBody<Bytes, Infallible>;

pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(serve(listener));
        Upstream { addr, task }
    }

    /// Starts an HTTPS upstream (HTTP/1.1 and HTTP/2 by ALPN).
    pub async fn start_tls(config: std::sync::Arc<rustls::ServerConfig>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), hyper::service::service_fn(handle))
                        .await;
                });
            }
        });
        Upstream { addr, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                .await;
        });
    }
}

/// A whole response with a content type.
pub fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("response")
}

/// Whether a request carries the held credential (`UPSTREAM_TOKEN`), which
/// only Gatehouse adds.
pub fn holds_upstream_token<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {UPSTREAM_TOKEN}"))
}

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if !holds_upstream_token(&req) {
        return Ok(full(
            StatusCode::UNAUTHORIZED,
            "application/json",
            r#"{"error":"upstream credential missing or wrong"}"#,
        ));
    }
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let resp = match path.as_str() {
        "/echo" => full(
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "method": method,
                "path": path,
                "query": query,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            })
            .to_string(),
        ),
        "/split-secret" => {
            // The key is cut in two, sent as separate chunks 50 ms apart.
            let (a, b) = AWS_KEY.split_at(9);
            let first = Bytes::from(format!("{{\"key\":\"{a}"));
            let second = Bytes::from(format!("{b}\",\"ok\":true}}"));
            let frames = stream::unfold(0u8, move |step| {
                let (first, second) = (first.clone(), second.clone());
                async move {
                    match step {
                        0 => Some((Ok::<_, Infallible>(Frame::data(first)), 1)),
                        1 => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Some((Ok(Frame::data(second)), 2))
                        }
                        _ => None,
                    }
                }
            });
            Response::builder()
                .header("content-type", "application/json")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .expect("response")
        }
        "/json" => full(
            StatusCode::OK,
            "application/json",
            serde_json::json!({"user": "alice", "email": "alice@example.com", "password": "hunter2-pw", "note": format!("key {AWS_KEY}")}).to_string(),
        ),
        "/big" => {
            let n: usize = query.strip_prefix("bytes=").and_then(|v| v.parse().ok()).unwrap_or(1 << 20);
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let count = n.div_ceil(chunk.len());
            let frames = stream::iter((0..count).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))));
            Response::builder()
                .header("content-type", "application/octet-stream")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .expect("response")
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            full(StatusCode::OK, "text/plain", "too late")
        }
        "/gzip" => Response::builder()
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from_static(b"\x1f\x8b not really gzip")).boxed())
            .expect("response"),
        _ => full(StatusCode::OK, "text/plain", format!("ok {method} {path}")),
    };
    Ok(resp)
}
