//! `kubectl exec` and `attach` after the upgrade: both sides are read as
//! WebSocket messages of the Kubernetes channel protocols
//! (`v5.channel.k8s.io` down to `channel.k8s.io`: a binary message whose
//! first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 error,
//! 4 resize, 255 close), forwarded message by message, masked with the
//! request's text masks, and recorded with their timing for replay.
//!
//! The command was decided before the upgrade was forwarded (see
//! `http/proxy/upgrade.rs`); nothing here calls a policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

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

/// Frames are recorded in parts of at most this many, or this often.
const PART_FRAMES: usize = 256;
const PART_EVERY: Duration = Duration::from_secs(1);

pub fn channel_name(byte: u8) -> &'static str {
    match byte {
        0 => "stdin",
        1 => "stdout",
        2 => "stderr",
        3 => "error",
        4 => "resize",
        255 => "close",
        _ => "unknown",
    }
}

/// One message as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct FrameRecord {
    /// Milliseconds since the stream opened.
    pub t_ms: u64,
    /// `in` (caller to pod) or `out` (pod to caller).
    pub dir: &'static str,
    pub channel: &'static str,
    pub bytes: usize,
    /// The data as text (lossy UTF-8), masked; absent once the recording
    /// limit is reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// How the stream ended, recorded with the last part.
#[derive(Debug, Clone, Serialize)]
pub struct StreamEnd {
    /// `client`, `upstream` or `error`.
    pub closed_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub recorded_bytes: u64,
    /// True when data was left out of the record because of the limit.
    pub truncated: bool,
    /// The pod's `Status` from the error channel (exit code and message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// One recorded part of a stream: its frames, and the end with the last.
#[derive(Debug, Clone, Serialize)]
pub struct StreamPart {
    pub part: u32,
    pub frames: Vec<FrameRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<StreamEnd>,
}

/// Collects frames and hands them on in parts.
pub struct Recorder<F: FnMut(StreamPart)> {
    started: Instant,
    limit: u64,
    recorded: u64,
    truncated: bool,
    frames: Vec<FrameRecord>,
    part: u32,
    last_flush: Instant,
    counts: [(u64, u64); 2],
    status: Option<serde_json::Value>,
    sink: F,
}

impl<F: FnMut(StreamPart)> Recorder<F> {
    pub fn new(limit: u64, sink: F) -> Self {
        Self {
            started: Instant::now(),
            limit,
            recorded: 0,
            truncated: false,
            frames: Vec::new(),
            part: 0,
            last_flush: Instant::now(),
            counts: [(0, 0); 2],
            status: None,
            sink,
        }
    }

    /// Records one message's channel data (already masked).
    pub fn frame(&mut self, dir: &'static str, channel: u8, data: &[u8]) {
        let side = usize::from(dir == "out");
        self.counts[side].0 += 1;
        self.counts[side].1 += data.len() as u64;
        if channel == 3 && dir == "out" {
            self.status = serde_json::from_slice(data).ok();
        }
        let len = data.len();
        let data = if self.recorded + len as u64 <= self.limit {
            self.recorded += data.len() as u64;
            Some(String::from_utf8_lossy(data).into_owned())
        } else {
            self.truncated = true;
            None
        };
        self.frames.push(FrameRecord {
            t_ms: self.started.elapsed().as_millis() as u64,
            dir,
            channel: channel_name(channel),
            bytes: len,
            data,
        });
        if self.frames.len() >= PART_FRAMES || self.last_flush.elapsed() >= PART_EVERY {
            self.flush(None);
        }
    }

    fn flush(&mut self, end: Option<StreamEnd>) {
        if self.frames.is_empty() && end.is_none() {
            return;
        }
        self.part += 1;
        self.last_flush = Instant::now();
        (self.sink)(StreamPart {
            part: self.part,
            frames: std::mem::take(&mut self.frames),
            end,
        });
    }

    pub fn finish(mut self, closed_by: &'static str, error: Option<String>) {
        let end = StreamEnd {
            closed_by,
            error,
            duration_ms: self.started.elapsed().as_millis() as u64,
            frames_in: self.counts[0].0,
            frames_out: self.counts[1].0,
            bytes_in: self.counts[0].1,
            bytes_out: self.counts[1].1,
            recorded_bytes: self.recorded,
            truncated: self.truncated,
            status: self.status.take(),
        };
        self.flush(Some(end));
    }
}

/// The relay of one `exec`/`attach`, handed to the proxy's upgrade phase.
pub struct ExecRelay {
    /// `exec default/web: ls -l`: the summary of each recorded part.
    pub label: String,
    /// `stream_record_bytes`.
    pub record_limit: u64,
}

impl ExecRelay {
    /// Refuses upgrades Gatehouse could not read (SPDY, the base64
    /// subprotocols) before anything is forwarded.
    fn check(headers: &HeaderMap) -> Result<(), AdapterError> {
        let upgrade = headers
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return Err(AdapterError::BadRequest(format!(
                "Gatehouse relays exec and attach over WebSocket only (kubectl 1.30 and later), and this client asked for {upgrade:?}; Gatehouse could not record that stream"
            )));
        }
        if offered_protocols(headers).is_empty() {
            return Err(AdapterError::BadRequest(format!(
                "Gatehouse relays exec and attach over the WebSocket subprotocols {}, and this client offered none of them",
                CHANNEL_PROTOCOLS.join(", ")
            )));
        }
        Ok(())
    }
}

fn offered_protocols(headers: &HeaderMap) -> Vec<&'static str> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .collect();
    CHANNEL_PROTOCOLS
        .iter()
        .copied()
        .filter(|p| offered.contains(p))
        .collect()
}

impl UpgradeRelay for ExecRelay {
    fn prepare(&self, headers: &mut HeaderMap) -> Result<(), AdapterError> {
        Self::check(headers)?;
        let kept = offered_protocols(headers).join(", ");
        headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
        if let Ok(v) = HeaderValue::from_str(&kept) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
        Ok(())
    }

    fn relay(
        self: Box<Self>,
        client: TokioIo<Upgraded>,
        upstream: TokioIo<Upgraded>,
        masks: Arc<CompiledMasks>,
        mut record: Box<dyn FnMut(String, serde_json::Value) + Send>,
    ) -> BoxFuture<'static, ()> {
        let label = self.label;
        let recorder = Recorder::new(self.record_limit, move |part: StreamPart| {
            let summary = match &part.end {
                Some(_) => format!("{label} (part {}, end)", part.part),
                None => format!("{label} (part {})", part.part),
            };
            record(summary, serde_json::to_value(&part).unwrap_or_default());
        });
        Box::pin(relay(client, upstream, Some(masks), recorder))
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
fn mask_channel_data(data: Vec<u8>, masks: Option<&CompiledMasks>) -> Vec<u8> {
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

    #[test]
    fn the_recording_limit_keeps_timing_and_drops_data() {
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        let mut r = Recorder::new(8, sink);
        r.frame("in", 0, b"ls\n");
        r.frame("out", 1, b"a b c d e f\n");
        r.frame("out", 3, br#"{"metadata":{},"status":"Success"}"#);
        r.finish("upstream", None);
        let parts = parts.lock().unwrap();
        assert_eq!(parts.len(), 1);
        let p = &parts[0];
        assert_eq!(p.frames[0].channel, "stdin");
        assert_eq!(p.frames[0].data.as_deref(), Some("ls\n"));
        assert_eq!(p.frames[1].channel, "stdout");
        assert_eq!(p.frames[1].data, None);
        let end = p.end.as_ref().unwrap();
        assert!(end.truncated);
        assert_eq!(end.recorded_bytes, 3);
        assert_eq!((end.frames_in, end.frames_out), (1, 2));
        assert_eq!(end.status.as_ref().unwrap()["status"], "Success");
    }

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
