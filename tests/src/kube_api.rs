//! A stand-in Kubernetes API server for the kubectl tests. No real API
//! server runs here, so this one serves what kubectl needs, in the real
//! shapes: discovery (`/api`, `/apis`, `/api/v1`, `/version`; plain
//! documents, so kubectl falls back from aggregated discovery as it does
//! against older servers), namespaces, pods and secrets (get, list, watch
//! with `resourceVersion`, `Table` answers when asked for), namespace
//! deletion, `exec`/`attach` over WebSocket (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`) and over SPDY/3.1 (one stream per channel, named by
//! `streamType`) running a few canned commands, and `portforward` over
//! SPDY/3.1, directly or tunnelled in WebSocket
//! (`SPDY/3.1+portforward.k8s.io`), to a pod whose port 8080 echoes.
//!
//! It accepts only the held credential Gatehouse adds (`UPSTREAM_TOKEN`),
//! never a caller's, and keeps a log of the requests it answered so tests
//! can show what never reached it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt, stream};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::spdy;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

type Body = BoxBody<Bytes, Infallible>;

/// A secret value the tests look for in what reaches the caller.
pub const SECRET_PASSWORD_B64: &str = "czNjcjN0LXBhc3N3MHJk"; // "s3cr3t-passw0rd"
pub const SECRET_STRING_DATA: &str = "plain-string-data-value";

/// One request the stand-in answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub accept: String,
}

#[derive(Default)]
struct State {
    namespaces: Vec<String>,
    seen: Vec<Seen>,
    resource_version: u64,
}

pub struct KubeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl KubeApi {
    /// Starts on 127.0.0.1 with an OS-chosen port, with namespaces
    /// `default`, `kube-system` and `scratch`. It runs on its own thread and
    /// runtime, so a test may run kubectl to the end without starving it.
    pub async fn start() -> KubeApi {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind stand-in API server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("stand-in addr");
        let state = Arc::new(Mutex::new(State {
            namespaces: vec!["default".into(), "kube-system".into(), "scratch".into()],
            seen: vec![],
            resource_version: 1000,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("stand-in runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                tokio::select! {
                    _ = serve(listener, served) => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_background();
        });
        KubeApi {
            addr,
            state,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests answered so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state
            .lock()
            .map(|s| s.seen.clone())
            .unwrap_or_default()
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.namespaces.clone())
            .unwrap_or_default()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    crate::upstream::full(status, "application/json", body.to_string())
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}),
    )
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, Infallible> {
    if !crate::upstream::holds_upstream_token(&req) {
        return Ok(status(401, "Unauthorized", "Unauthorized"));
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().to_string();
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if let Ok(mut s) = state.lock() {
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            accept: accept.clone(),
        });
    }
    if accept.contains("protobuf") && !accept.contains("json") {
        return Ok(status(406, "NotAcceptable", "only JSON is served here"));
    }
    let table = accept.contains("as=Table");
    let include_object = query.contains("includeObject=Object");
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (method.as_str(), segments.as_slice()) {
        ("GET", ["version"]) => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-gatehouse-standin",
                    "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ("GET", ["api"]) => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}),
        ),
        ("GET", ["apis"]) => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        ("GET", ["api", "v1"]) => json_response(StatusCode::OK, &core_v1_resources()),
        ("GET", ["api", "v1", "namespaces"]) => {
            let s = snapshot(&state);
            let items: Vec<Value> =
                s.0.iter()
                    .filter(|n| name_selected(&query, n))
                    .map(|n| namespace(n))
                    .collect();
            list_or_table("NamespaceList", items, table, include_object, s.1)
        }
        ("GET", ["api", "v1", "namespaces", ns]) => {
            match snapshot(&state).0.iter().find(|n| n == ns) {
                Some(n) => json_response(StatusCode::OK, &namespace(n)),
                None => status(404, "NotFound", &format!("namespaces \"{ns}\" not found")),
            }
        }
        ("DELETE", ["api", "v1", "namespaces", ns]) => {
            let removed = state.lock().ok().and_then(|mut s| {
                let i = s.namespaces.iter().position(|n| n == ns)?;
                s.resource_version += 1;
                Some(s.namespaces.remove(i))
            });
            match removed {
                Some(n) => {
                    let mut obj = namespace(&n);
                    obj["status"]["phase"] = json!("Terminating");
                    json_response(StatusCode::OK, &obj)
                }
                None => status(404, "NotFound", &format!("namespaces \"{ns}\" not found")),
            }
        }
        // A broken API server: the answer stops in the middle of a Secret.
        ("GET", ["api", "v1", "namespaces", "broken", "secrets"]) => {
            let whole = if watch {
                format!(
                    "{}\n",
                    json!({"type": "ADDED", "object": secrets("broken")[0]})
                )
            } else {
                json!({"kind": "SecretList", "apiVersion": "v1", "items": secrets("broken")})
                    .to_string()
            };
            let cut = whole.find(SECRET_PASSWORD_B64).unwrap_or(whole.len() / 2)
                + SECRET_PASSWORD_B64.len();
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(whole[..cut].to_string())).boxed())
                .expect("response")
        }
        ("GET", ["api", "v1", "namespaces", ns, "secrets"]) if watch => {
            watch_stream(secrets(ns), &query)
        }
        ("GET", ["api", "v1", "namespaces", ns, "secrets"]) => {
            let items: Vec<Value> = secrets(ns)
                .into_iter()
                .filter(|s| name_selected(&query, s["metadata"]["name"].as_str().unwrap_or("")))
                .collect();
            list_or_table(
                "SecretList",
                items,
                table,
                include_object,
                snapshot(&state).1,
            )
        }
        ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
            match secrets(ns)
                .into_iter()
                .find(|s| s["metadata"]["name"] == *name)
            {
                Some(s) if table => list_or_table("SecretList", vec![s], true, include_object, 1),
                Some(s) => json_response(StatusCode::OK, &s),
                None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) if watch => watch_stream(pods(ns), &query),
        ("GET", ["api", "v1", "namespaces", ns, "pods"]) => list_or_table(
            "PodList",
            pods(ns),
            table,
            include_object,
            snapshot(&state).1,
        ),
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match pods(ns)
                .into_iter()
                .find(|p| p["metadata"]["name"] == *name)
            {
                Some(p) => json_response(StatusCode::OK, &p),
                None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        (
            "GET" | "POST",
            [
                "api",
                "v1",
                "namespaces",
                _ns,
                "pods",
                _name,
                sub @ ("exec" | "attach"),
            ],
        ) => exec(req, sub == &"attach", &query),
        ("GET" | "POST", ["api", "v1", "namespaces", _ns, "pods", _name, "portforward"]) => {
            port_forward(req)
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    };
    Ok(resp)
}

fn snapshot(state: &Mutex<State>) -> (Vec<String>, u64) {
    state
        .lock()
        .map(|s| (s.namespaces.clone(), s.resource_version))
        .unwrap_or_default()
}

/// `fieldSelector=metadata.name=NAME` (what `kubectl delete --wait` lists by).
fn name_selected(query: &str, name: &str) -> bool {
    query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("fieldSelector="))
        .all(|sel| {
            let sel = sel.replace("%3D", "=").replace("%3d", "=");
            match sel.strip_prefix("metadata.name=") {
                Some(want) => want == name,
                None => true,
            }
        })
}

fn core_v1_resources() -> Value {
    let r = |name: &str,
             singular: &str,
             namespaced: bool,
             kind: &str,
             verbs: &[&str],
             short: &[&str]| {
        json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
               "verbs": verbs, "shortNames": short})
    };
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        r("namespaces", "namespace", false, "Namespace", &["create", "delete", "get", "list", "patch", "update", "watch"], &["ns"]),
        r("pods", "pod", true, "Pod", &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"], &["po"]),
        r("pods/exec", "", true, "PodExecOptions", &["create", "get"], &[]),
        r("pods/attach", "", true, "PodAttachOptions", &["create", "get"], &[]),
        r("pods/portforward", "", true, "PodPortForwardOptions", &["create", "get"], &[]),
        r("pods/log", "", true, "Pod", &["get"], &[]),
        r("secrets", "secret", true, "Secret", &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"], &[]),
    ]})
}

fn namespace(name: &str) -> Value {
    json!({"kind": "Namespace", "apiVersion": "v1",
           "metadata": {"name": name, "uid": format!("uid-ns-{name}"), "resourceVersion": "100",
                        "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {"kubernetes.io/metadata.name": name}},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn secrets(ns: &str) -> Vec<Value> {
    vec![
        json!({"kind": "Secret", "apiVersion": "v1",
               "metadata": {"name": "db-credentials", "namespace": ns, "uid": "uid-secret-1",
                            "resourceVersion": "201", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "type": "Opaque",
               "data": {"password": SECRET_PASSWORD_B64, "username": "YXBw"}}),
        json!({"kind": "Secret", "apiVersion": "v1",
               "metadata": {"name": "api-token", "namespace": ns, "uid": "uid-secret-2",
                            "resourceVersion": "202", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "type": "Opaque",
               "stringData": {"token": SECRET_STRING_DATA}}),
    ]
}

fn pods(ns: &str) -> Vec<Value> {
    vec![json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": ns, "uid": "uid-pod-web", "resourceVersion": "301",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}], "nodeName": "node-1"},
        "status": {"phase": "Running", "podIP": "10.0.0.7",
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                                          "image": "example/app:1", "imageID": "", "state": {"running": {}}}]}})]
}

/// A list, or the `Table` kubectl asks for when it prints columns. Rows
/// carry the whole object only for `includeObject=Object`.
fn list_or_table(
    kind: &str,
    items: Vec<Value>,
    table: bool,
    include_object: bool,
    rv: u64,
) -> Response<Body> {
    if !table {
        let items: Vec<Value> = items
            .into_iter()
            .map(|mut i| {
                // Items of a typed list carry no type of their own.
                if let Some(o) = i.as_object_mut() {
                    o.remove("kind");
                    o.remove("apiVersion");
                }
                i
            })
            .collect();
        return json_response(
            StatusCode::OK,
            &json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        );
    }
    let rows: Vec<Value> = items
        .into_iter()
        .map(|i| {
            let name = i["metadata"]["name"].clone();
            let object = if include_object {
                i.clone()
            } else {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": i["metadata"]})
            };
            let data = i["data"].as_object().map(|d| d.len()).unwrap_or(0)
                + i["stringData"].as_object().map(|d| d.len()).unwrap_or(0);
            json!({"cells": [name, i["type"].as_str().or(i["status"]["phase"].as_str()).unwrap_or(""), data, "1d"],
                   "object": object})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": rv.to_string()},
                "columnDefinitions": [
                    {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
                    {"name": "Type", "type": "string", "format": "", "description": "Type or phase", "priority": 0},
                    {"name": "Data", "type": "integer", "format": "", "description": "Keys", "priority": 0},
                    {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}],
                "rows": rows}),
    )
}

/// A watch: ADDED for every object, then a MODIFIED for the first one
/// 100 ms later, then the stream ends after `timeoutSeconds` (default 1).
/// Each event is written in two chunks to exercise the framing.
fn watch_stream(items: Vec<Value>, query: &str) -> Response<Body> {
    let timeout: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("timeoutSeconds="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut events: Vec<(u64, Bytes)> = Vec::new();
    for i in &items {
        let line = format!("{}\n", json!({"type": "ADDED", "object": i}));
        let (a, b) = line.split_at(line.len() / 2);
        events.push((0, Bytes::from(a.to_string())));
        events.push((0, Bytes::from(b.to_string())));
    }
    if let Some(first) = items.first() {
        let mut changed = first.clone();
        changed["metadata"]["resourceVersion"] = json!("999");
        events.push((
            100,
            Bytes::from(format!(
                "{}\n",
                json!({"type": "MODIFIED", "object": changed})
            )),
        ));
    }
    let end = timeout * 1000;
    let frames = stream::unfold(
        (events.into_iter(), false),
        move |(mut it, done)| async move {
            if done {
                return None;
            }
            match it.next() {
                Some((delay, bytes)) => {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    Some((Ok::<_, Infallible>(Frame::data(bytes)), (it, false)))
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(end)).await;
                    Some((Ok(Frame::data(Bytes::new())), (it, true)))
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .expect("response")
}

/// The WebSocket or SPDY upgrade of `exec`/`attach`, then the canned command.
fn exec(mut req: Request<Incoming>, attach: bool, query: &str) -> Response<Body> {
    if upgrade_is(&req, "SPDY/3.1") {
        return spdy_exec(req, attach, query);
    }
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let protocol = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
        .into_iter()
        .find(|p| offered.iter().any(|o| o == p));
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec());
    let (Some(protocol), Some(key)) = (protocol, key) else {
        return status(
            400,
            "BadRequest",
            "the stand-in serves exec over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) only",
        );
    };
    let command: Vec<String> = form_pairs(query)
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    let stdin = form_pairs(query).any(|(k, v)| k == "stdin" && v == "true");
    let on_upgrade = hyper::upgrade::on(&mut req);
    let v5 = protocol.starts_with("v5");
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        run_command(ws, command, stdin || attach, v5).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header(
            "sec-websocket-accept",
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key),
        )
        .header("sec-websocket-protocol", protocol)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

/// `echo ARGS`, `cat` (stdin back to stdout until stdin closes), `false`
/// (exit code 1); anything else is "not found" with exit code 127.
async fn run_command<S>(mut ws: WebSocketStream<S>, command: Vec<String>, stdin: bool, v5: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let frame = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    let exit: u32 = match command.first().map(String::as_str) {
        Some("echo") => {
            let _ = ws
                .send(frame(
                    STDOUT,
                    format!("{}\n", command[1..].join(" ")).as_bytes(),
                ))
                .await;
            0
        }
        Some("cat") | None if stdin => {
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Binary(data) = msg else {
                    if msg.is_close() {
                        break;
                    }
                    continue;
                };
                match data.first() {
                    Some(&STDIN) => {
                        let _ = ws.send(frame(STDOUT, &data[1..])).await;
                    }
                    Some(&CLOSE) if v5 && data.get(1) == Some(&STDIN) => break,
                    _ => {}
                }
            }
            0
        }
        Some("false") => 1,
        other => {
            let _ = ws
                .send(frame(
                    STDERR,
                    format!("{}: not found\n", other.unwrap_or("")).as_bytes(),
                ))
                .await;
            127
        }
    };
    // Give the output a moment to be read before the status that ends the stream.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = if exit == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {exit}", command.join(" ")),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}})
    };
    let _ = ws.send(frame(ERROR, status.to_string().as_bytes())).await;
    // The API server ends the stream with a normal closure (client-go takes
    // anything else as a broken stream).
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
}

fn upgrade_is(req: &Request<Incoming>, protocol: &str) -> bool {
    req.headers()
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(protocol))
}

/// The first of `known` the client offers in `header` (any line, any
/// comma-separated value), as the API server negotiates.
fn negotiate(
    req: &Request<Incoming>,
    header: &str,
    known: &[&'static str],
) -> Option<&'static str> {
    let offered: Vec<String> = req
        .headers()
        .get_all(header)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    offered
        .iter()
        .find_map(|o| known.iter().copied().find(|k| k == o))
}

fn spdy_switch(protocol: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", protocol)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

/// `exec` over SPDY/3.1, as the kubelet serves it: the client opens one
/// stream per channel (`streamType` error, stdin, stdout, stderr), each
/// answered with a SYN_REPLY; the command runs; the `Status` goes on the
/// error stream; every stream is closed, then the connection.
fn spdy_exec(mut req: Request<Incoming>, attach: bool, query: &str) -> Response<Body> {
    let Some(protocol) = negotiate(
        &req,
        "x-stream-protocol-version",
        &["v5.channel.k8s.io", "v4.channel.k8s.io"],
    ) else {
        return status(
            400,
            "BadRequest",
            "the stand-in serves exec over SPDY with v5.channel.k8s.io or v4.channel.k8s.io only",
        );
    };
    let flag = |name: &str| form_pairs(query).any(|(k, v)| k == name && v == "true");
    let command: Vec<String> = form_pairs(query)
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v)
        .collect();
    let mut want = vec!["error"];
    if flag("stdin") {
        want.push("stdin");
    }
    if flag("stdout") {
        want.push("stdout");
    }
    if flag("stderr") && !flag("tty") {
        want.push("stderr");
    }
    let stdin = flag("stdin") || attach;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (r, w) = tokio::io::split(TokioIo::new(upgraded));
        let _ = spdy_run_command(
            spdy::Reader::new(r),
            spdy::Writer::new(w),
            want,
            command,
            stdin,
        )
        .await;
    });
    spdy_switch(protocol)
}

async fn spdy_run_command<R, W>(
    mut reader: spdy::Reader<R>,
    mut writer: spdy::Writer<W>,
    want: Vec<&'static str>,
    command: Vec<String>,
    stdin: bool,
) -> anyhow::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut streams: std::collections::HashMap<String, u32> = Default::default();
    while want.iter().any(|w| !streams.contains_key(*w)) {
        let frame = tokio::time::timeout(Duration::from_secs(10), reader.next()).await??;
        match frame {
            Some(spdy::Frame::Syn {
                stream, headers, ..
            }) => {
                writer.syn_reply(stream).await?;
                let kind = spdy::header(&headers, "streamtype")
                    .unwrap_or("")
                    .to_string();
                streams.insert(kind, stream);
            }
            Some(spdy::Frame::Ping { id }) => writer.ping(id).await?,
            Some(_) => {}
            None => return Ok(()),
        }
    }
    let id = |name: &str| streams.get(name).copied();
    let (out, err) = (id("stdout"), id("stderr"));
    let exit: u32 = match command.first().map(String::as_str) {
        Some("echo") => {
            if let Some(out) = out {
                let line = format!("{}\n", command[1..].join(" "));
                writer.data(out, false, line.as_bytes()).await?;
            }
            0
        }
        Some("cat") | None if stdin => {
            let input = id("stdin");
            while let Some(frame) = reader.next().await? {
                match frame {
                    spdy::Frame::Data { stream, fin, data } if Some(stream) == input => {
                        if let (Some(out), false) = (out, data.is_empty()) {
                            writer.data(out, false, &data).await?;
                        }
                        if fin {
                            break;
                        }
                    }
                    spdy::Frame::Ping { id } => writer.ping(id).await?,
                    spdy::Frame::GoAway => break,
                    _ => {}
                }
            }
            0
        }
        Some("false") => 1,
        // A broken kubelet: a control frame of another SPDY version.
        Some("garble") => {
            writer.raw(b"\x80\x02\x00\x01\x00\x00\x00\x00").await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        // A hostile one: a header block that inflates to 16 MiB.
        Some("bomb") => {
            let mut plain = 1u32.to_be_bytes().to_vec();
            plain.extend_from_slice(&1u32.to_be_bytes());
            plain.push(b'x');
            plain.extend_from_slice(&(16u32 << 20).to_be_bytes());
            plain.resize(plain.len() + (16 << 20), b'a');
            let mut p = out.unwrap_or(2).to_be_bytes().to_vec();
            p.extend(writer.compress_raw(&plain));
            writer.control(8, 0, &p).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            return Ok(());
        }
        other => {
            if let Some(err) = err {
                let line = format!("{}: not found\n", other.unwrap_or(""));
                writer.data(err, false, line.as_bytes()).await?;
            }
            127
        }
    };
    let status = if exit == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {exit}", command.join(" ")),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": exit.to_string()}]}})
    };
    if let Some(e) = id("error") {
        writer.data(e, false, status.to_string().as_bytes()).await?;
    }
    for name in ["stdout", "stderr", "stdin", "error"] {
        if let Some(s) = id(name) {
            writer.data(s, true, b"").await?;
        }
    }
    // Let the client read to the end of its streams, then go.
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer.goaway().await?;
    writer.shutdown().await;
    Ok(())
}

/// `portforward`, over SPDY/3.1 or tunnelled in WebSocket.
fn port_forward(mut req: Request<Incoming>) -> Response<Body> {
    if upgrade_is(&req, "SPDY/3.1") {
        if negotiate(&req, "x-stream-protocol-version", &["portforward.k8s.io"]).is_none() {
            return status(400, "BadRequest", "portforward.k8s.io was not offered");
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                let _ = spdy_port_forward(spdy::Reader::new(r), spdy::Writer::new(w)).await;
            }
        });
        return spdy_switch("portforward.k8s.io");
    }
    const TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
    let key = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec());
    let (Some(_), Some(key)) = (negotiate(&req, "sec-websocket-protocol", &[TUNNEL]), key) else {
        return status(
            400,
            "BadRequest",
            "the stand-in serves portforward over SPDY/3.1, directly or tunnelled in WebSocket",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tunnel_spdy(ws).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header(
            "sec-websocket-accept",
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key),
        )
        .header("sec-websocket-protocol", TUNNEL)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

/// The API server's end of the tunnel: binary messages in and out of a
/// byte stream that the SPDY side reads and writes.
async fn tunnel_spdy<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (r, w) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let _ = spdy_port_forward(spdy::Reader::new(r), spdy::Writer::new(w)).await;
    });
    let (mut from_spdy, mut to_spdy) = tokio::io::split(ours);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(data))) => {
                    if to_spdy.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            n = from_spdy.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = to_spdy.shutdown().await;
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
}

/// The kubelet's port-forward: per connection an error and a data stream
/// (`port`, `requestID`); port 8080 echoes what it is sent, any other port
/// refuses with a message on the error stream, as a closed port would.
async fn spdy_port_forward<R, W>(
    mut reader: spdy::Reader<R>,
    mut writer: spdy::Writer<W>,
) -> anyhow::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    // requestID -> (error stream, data stream)
    let mut pairs: std::collections::HashMap<String, (Option<u32>, Option<u32>)> =
        Default::default();
    let mut data_of: std::collections::HashMap<u32, String> = Default::default();
    while let Some(frame) = reader.next().await? {
        match frame {
            spdy::Frame::Syn {
                stream, headers, ..
            } => {
                writer.syn_reply(stream).await?;
                let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                let port = spdy::header(&headers, "port").unwrap_or("").to_string();
                let request = spdy::header(&headers, "requestid")
                    .unwrap_or("")
                    .to_string();
                let pair = pairs.entry(request.clone()).or_default();
                if kind == "error" {
                    pair.0 = Some(stream);
                } else {
                    pair.1 = Some(stream);
                    if port != "8080" {
                        if let Some(e) = pair.0 {
                            let msg = format!(
                                "error forwarding port {port} to pod web, uid : failed to connect to localhost:{port} inside namespace: connection refused"
                            );
                            writer.data(e, false, msg.as_bytes()).await?;
                            writer.data(e, true, b"").await?;
                        }
                        writer.data(stream, true, b"").await?;
                    } else {
                        data_of.insert(stream, request);
                    }
                }
            }
            spdy::Frame::Data { stream, fin, data } => {
                if data_of.contains_key(&stream) {
                    if !data.is_empty() {
                        writer.data(stream, false, &data).await?;
                    }
                    if fin {
                        writer.data(stream, true, b"").await?;
                        let request = data_of.remove(&stream).unwrap_or_default();
                        if let Some((Some(e), _)) = pairs.remove(&request) {
                            writer.data(e, true, b"").await?;
                        }
                    }
                }
            }
            spdy::Frame::Rst { stream } => {
                data_of.remove(&stream);
            }
            spdy::Frame::Ping { id } => writer.ping(id).await?,
            spdy::Frame::GoAway => break,
            spdy::Frame::Other => {}
        }
    }
    writer.shutdown().await;
    Ok(())
}
