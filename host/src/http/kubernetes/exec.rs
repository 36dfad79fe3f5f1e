//! `kubectl exec` and `attach` after the upgrade, over either transport a
//! client may ask for:
//!
//! - WebSocket (kubectl 1.30 and later): both sides read as messages of
//!   the Kubernetes channel protocols (`v5.channel.k8s.io` down to
//!   `channel.k8s.io`: a binary message whose first byte is the channel:
//!   0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 close), forwarded
//!   message by message;
//! - SPDY/3.1 (older clients, kubectl's fallback, and
//!   `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`): one SPDY stream per
//!   channel, named by its `streamType` header (`spdy_relay.rs`).
//!
//! Either way the data is masked with the request's text masks and
//! recorded with its timing for replay (`record.rs`). The command was
//! decided before the upgrade was forwarded (see `http/proxy/upgrade.rs`);
//! nothing here calls a policy.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::record::{Recorder, StreamPart, part_sink};
use super::spdy_relay::{self, SpdyObserver};
use crate::http::adapter::{AdapterError, UpgradeRelay};
use crate::mask::CompiledMasks;

/// The channel protocols Gatehouse can read, best first. Offers of other
/// subprotocols (the base64 ones) are dropped before the upgrade goes on.
pub const CHANNEL_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The header in which a SPDY client offers its stream protocols, one
/// value per line (the API server does not split them at commas).
pub const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// The transport an upgrade asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Spdy,
}

impl Transport {
    /// From the `Upgrade` header; `None` for anything else.
    pub fn of(headers: &HeaderMap) -> Option<Transport> {
        let upgrade = upgrade_of(headers);
        if upgrade.eq_ignore_ascii_case("websocket") {
            Some(Transport::WebSocket)
        } else if upgrade.eq_ignore_ascii_case("SPDY/3.1") {
            Some(Transport::Spdy)
        } else {
            None
        }
    }
}

pub fn upgrade_of(headers: &HeaderMap) -> &str {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The values offered in `name` (every line, split at commas) that are in
/// `known`, in `known`'s order.
pub fn offered(headers: &HeaderMap, name: &str, known: &[&'static str]) -> Vec<&'static str> {
    let offered: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .collect();
    known
        .iter()
        .copied()
        .filter(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
        .collect()
}

/// Leaves only `keep` in `name`: joined on one line for WebSocket
/// subprotocols, one line each for SPDY stream protocols.
pub fn keep_offered(headers: &mut HeaderMap, name: &'static str, keep: &[&str]) {
    let name = HeaderName::from_static(name);
    headers.remove(&name);
    if name == header::SEC_WEBSOCKET_PROTOCOL {
        if let Ok(v) = HeaderValue::from_str(&keep.join(", ")) {
            headers.insert(name, v);
        }
    } else {
        for p in keep {
            if let Ok(v) = HeaderValue::from_str(p) {
                headers.append(name.clone(), v);
            }
        }
    }
}

/// The relay of one `exec`/`attach`, handed to the proxy's upgrade phase.
pub struct ExecRelay {
    /// `exec default/web: ls -l`: the summary of each recorded part.
    pub label: String,
    /// `stream_record_bytes`.
    pub record_limit: u64,
    /// What the request's `Upgrade` asked for; `None` is refused.
    pub transport: Option<Transport>,
}

impl UpgradeRelay for ExecRelay {
    /// Keeps only the channel protocols Gatehouse reads; refuses upgrades
    /// it could not read before anything is forwarded.
    fn prepare(&self, headers: &mut HeaderMap) -> Result<(), AdapterError> {
        let (name, via) = match self.transport {
            Some(Transport::WebSocket) => ("sec-websocket-protocol", "WebSocket subprotocols"),
            Some(Transport::Spdy) => (
                STREAM_PROTOCOL,
                "SPDY stream protocols (X-Stream-Protocol-Version)",
            ),
            None => {
                return Err(AdapterError::BadRequest(format!(
                    "Gatehouse relays exec and attach over WebSocket or SPDY/3.1, and this client asked to upgrade to {:?}; Gatehouse could not record that stream",
                    upgrade_of(headers)
                )));
            }
        };
        let kept = offered(headers, name, CHANNEL_PROTOCOLS);
        if kept.is_empty() {
            return Err(AdapterError::BadRequest(format!(
                "Gatehouse relays exec and attach over the {via} {}, and this client offered none of them",
                CHANNEL_PROTOCOLS.join(", ")
            )));
        }
        keep_offered(headers, name, &kept);
        Ok(())
    }

    fn relay(
        self: Box<Self>,
        client: TokioIo<Upgraded>,
        upstream: TokioIo<Upgraded>,
        masks: Arc<CompiledMasks>,
        record: Box<dyn FnMut(String, serde_json::Value) + Send>,
    ) -> BoxFuture<'static, ()> {
        let sink = part_sink(self.label, record);
        match self.transport {
            Some(Transport::Spdy) => {
                let recorder = Recorder::new(self.record_limit, sink).transport("spdy");
                Box::pin(spdy_relay::relay(
                    client,
                    upstream,
                    SpdyObserver::exec(Some(masks), recorder),
                ))
            }
            _ => {
                let recorder = Recorder::new(self.record_limit, sink);
                Box::pin(relay(client, upstream, Some(masks), recorder))
            }
        }
    }
}

/// Relays an upgraded exec/attach stream until either side closes.
pub async fn relay<C, U, F>(
    client: C,
    upstream: U,
    masks: Option<Arc<CompiledMasks>>,
    mut recorder: Recorder<F>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(StreamPart),
{
    let mut client = WebSocketStream::from_raw_socket(client, Role::Server, None).await;
    let mut upstream = WebSocketStream::from_raw_socket(upstream, Role::Client, None).await;
    let (closed_by, error) = loop {
        let (dir, msg) = tokio::select! {
            m = client.next() => ("in", m),
            m = upstream.next() => ("out", m),
        };
        let step = inspect(dir, msg, masks.as_deref(), &mut recorder);
        let delivered = if dir == "in" {
            deliver(&mut upstream, step).await
        } else {
            deliver(&mut client, step).await
        };
        if let Some(end) = delivered {
            break end;
        }
    };
    // Let each side see the close; a peer that is gone is no error here.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = client.close(None).await;
        let _ = upstream.close(None).await;
    })
    .await;
    recorder.finish(closed_by, error);
}

/// What to do with one message read from a side.
enum Step {
    Forward(Message),
    /// The side closed (with its close frame, passed on).
    Close(&'static str, Option<Message>),
    Fail(String),
    /// Pings and pongs: each side answers its own (tungstenite does).
    Skip,
}

/// Masks and records a message read from `dir`'s side.
fn inspect<F: FnMut(StreamPart)>(
    dir: &'static str,
    msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    masks: Option<&CompiledMasks>,
    recorder: &mut Recorder<F>,
) -> Step {
    let side = if dir == "in" { "client" } else { "upstream" };
    match msg {
        Some(Ok(Message::Binary(data))) => {
            let data = mask_channel_data(data.to_vec(), masks);
            if let Some((&ch, rest)) = data.split_first() {
                recorder.frame(dir, ch, rest);
            }
            Step::Forward(Message::Binary(data.into()))
        }
        Some(Ok(Message::Text(text))) => {
            recorder.frame(dir, 254, text.as_bytes());
            Step::Forward(Message::Text(text))
        }
        Some(Ok(close @ Message::Close(_))) => Step::Close(side, Some(close)),
        Some(Ok(_)) => Step::Skip,
        Some(Err(e)) => Step::Fail(format!("the {side}'s stream failed: {e}")),
        None => Step::Close(side, None),
    }
}

/// Sends a step's message on to the other side; `Some` ends the relay.
async fn deliver<S>(
    to: &mut WebSocketStream<S>,
    step: Step,
) -> Option<(&'static str, Option<String>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match step {
        Step::Forward(m) => to.send(m).await.err().map(|e| {
            (
                "error",
                Some(format!("a stream failed while relaying: {e}")),
            )
        }),
        Step::Close(side, frame) => {
            if let Some(f) = frame {
                let _ = to.send(f).await;
            }
            Some((side, None))
        }
        Step::Fail(e) => Some(("error", Some(e))),
        Step::Skip => None,
    }
}

/// The text masks over a channel message's data (its first byte is the channel).
pub(super) fn mask_channel_data(data: Vec<u8>, masks: Option<&CompiledMasks>) -> Vec<u8> {
    match masks.and_then(|m| m.text.as_ref().map(|t| (t, m))) {
        Some((t, m)) if data.len() > 1 => {
            let mut out = vec![data[0]];
            out.extend(crate::mask::stream::mask_all(t, &m.hash_key, &data[1..]));
            out
        }
        _ => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A caller and a pod over in-memory pipes: what each sends reaches the
    /// other, masked, and the record holds every frame in order.
    #[tokio::test]
    async fn relays_and_records_both_directions() {
        use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};
        let (client_io, gw_client) = tokio::io::duplex(4096);
        let (gw_upstream, pod_io) = tokio::io::duplex(4096);
        let masks = MaskCompiler::new(b"k".to_vec())
            .compile(
                &[MaskRule {
                    target: MaskTarget::Pattern("hunter2".into()),
                    method: MaskMethod::Redact,
                }],
                &[],
            )
            .unwrap();
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        let relay = tokio::spawn(relay(
            gw_client,
            gw_upstream,
            Some(masks),
            Recorder::new(1 << 20, sink),
        ));
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut pod = WebSocketStream::from_raw_socket(pod_io, Role::Server, None).await;
        client
            .send(Message::Binary(b"\x00echo hi\n".to_vec().into()))
            .await
            .unwrap();
        let got = pod.next().await.unwrap().unwrap();
        assert_eq!(got.into_data().as_ref(), b"\x00echo hi\n");
        pod.send(Message::Binary(b"\x01password=hunter2\n".to_vec().into()))
            .await
            .unwrap();
        let got = client.next().await.unwrap().unwrap();
        assert_eq!(
            got.into_data().as_ref(),
            b"\x01password=[MASKED:pattern]\n".as_slice()
        );
        pod.close(None).await.unwrap();
        relay.await.unwrap();
        let parts = parts.lock().unwrap();
        let frames: Vec<_> = parts.iter().flat_map(|p| p.frames.iter()).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].dir, frames[0].channel), ("in", "stdin"));
        assert_eq!(
            frames[1].data.as_deref(),
            Some("password=[MASKED:pattern]\n")
        );
        assert_eq!(
            parts.last().unwrap().end.as_ref().unwrap().closed_by,
            "upstream"
        );
    }
}
