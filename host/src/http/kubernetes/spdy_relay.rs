//! The SPDY/3.1 side of `exec`, `attach` and `port-forward`: each
//! direction cut into frames (`spdy.rs`), each frame looked at by one
//! [`SpdyObserver`] for the whole connection, then forwarded as it was read.
//!
//! - exec/attach: a SYN_STREAM's `streamType` names the stream's channel
//!   (stdin, stdout, stderr, error, resize); DATA on it is masked with the
//!   request's text masks and recorded like a WebSocket channel message. A
//!   DATA frame is rewritten only when a mask changed it (Kubernetes'
//!   spdystream keeps no flow-control windows, so a new length is safe).
//! - port-forward: a stream pair (`error` and `data`) per connection to a
//!   pod port, named by its `port` and `requestID` headers; the connections
//!   are recorded with their byte counts, and what the pod side says on the
//!   error streams, not the payload.
//!
//! A frame that cannot be read ends the connection: both sides get a
//! GOAWAY with PROTOCOL_ERROR, and the record ends with the error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::record::{ForwardRecord, Recorder, StreamPart};
use super::spdy::{self, Frame, FrameKind, FrameReader, Headers, SpdyError};
use crate::mask::CompiledMasks;

/// Streams open at once on one connection (kubectl opens up to five for an
/// exec, two per port-forward connection).
const MAX_STREAMS: usize = 1024;
/// How long the other side may go on once one side has closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The record's name for the port-forward notes (opened, closed).
const PORTFORWARD: &str = "portforward";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Exec,
    PortForward,
}

/// What one stream carries.
#[derive(Debug, Clone)]
struct StreamInfo {
    /// The exec channel byte, or for port-forward 1 (data) / 3 (error).
    channel: u8,
    /// Port-forward: the pod port and the connection's index in `forwards`.
    forward: Option<usize>,
    fin: [bool; 2],
}

/// What to send on for a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Forward {
    /// The frame's bytes as read.
    AsRead,
    /// New bytes (a masked DATA frame).
    Rewritten(Vec<u8>),
}

/// The state of one SPDY connection, both directions.
pub struct SpdyObserver<F: FnMut(StreamPart)> {
    purpose: Purpose,
    streams: HashMap<u32, StreamInfo>,
    masks: Option<Arc<CompiledMasks>>,
    recorder: Recorder<F>,
    /// Port-forward: per port, in the order first seen.
    forwards: Vec<ForwardRecord>,
}

impl<F: FnMut(StreamPart)> SpdyObserver<F> {
    pub fn exec(masks: Option<Arc<CompiledMasks>>, recorder: Recorder<F>) -> Self {
        Self::new(Purpose::Exec, masks, recorder)
    }

    pub fn port_forward(masks: Option<Arc<CompiledMasks>>, recorder: Recorder<F>) -> Self {
        Self::new(Purpose::PortForward, masks, recorder)
    }

    fn new(purpose: Purpose, masks: Option<Arc<CompiledMasks>>, recorder: Recorder<F>) -> Self {
        Self {
            purpose,
            streams: HashMap::new(),
            masks,
            recorder,
            forwards: Vec::new(),
        }
    }

    /// Looks at one whole frame read from `dir` (`in`: from the caller).
    pub fn frame(&mut self, dir: &'static str, frame: &Frame) -> Result<Forward, SpdyError> {
        let side = usize::from(dir == "out");
        match &frame.kind {
            FrameKind::SynStream {
                stream,
                fin,
                headers,
            } => {
                if self.streams.len() >= MAX_STREAMS && !self.streams.contains_key(stream) {
                    return Err(SpdyError::TooManyStreams(MAX_STREAMS));
                }
                let info = self.open(dir, headers);
                let entry = self.streams.entry(*stream).or_insert(info);
                entry.fin[side] |= *fin;
            }
            FrameKind::SynReply { stream, fin, .. } | FrameKind::Headers { stream, fin, .. } => {
                if *fin {
                    self.finish(*stream, side);
                }
            }
            FrameKind::RstStream { stream, .. } => {
                if let Some(info) = self.streams.remove(stream) {
                    self.closed(&info);
                }
            }
            FrameKind::Data { stream, fin } => {
                let forward = self.data(dir, *stream, *fin, frame.payload());
                if *fin {
                    self.finish(*stream, side);
                }
                return Ok(forward);
            }
            FrameKind::GoAway { .. } | FrameKind::Other { .. } => {}
        }
        Ok(Forward::AsRead)
    }

    fn open(&mut self, dir: &'static str, headers: &Headers) -> StreamInfo {
        let kind = headers.get("streamtype").unwrap_or("");
        match self.purpose {
            Purpose::Exec => StreamInfo {
                channel: match kind {
                    "stdin" => 0,
                    "stdout" => 1,
                    "stderr" => 2,
                    "error" => 3,
                    "resize" => 4,
                    _ => 254,
                },
                forward: None,
                fin: [false; 2],
            },
            Purpose::PortForward => {
                let port = headers.get("port").unwrap_or("?").to_string();
                let request = headers.get("requestid").unwrap_or("?");
                let at = match self.forwards.iter().position(|f| f.port == port) {
                    Some(at) => at,
                    None => {
                        self.forwards.push(ForwardRecord {
                            port: port.clone(),
                            ..ForwardRecord::default()
                        });
                        self.forwards.len() - 1
                    }
                };
                let data = kind == "data";
                if data {
                    self.forwards[at].connections += 1;
                    self.recorder.note(
                        dir,
                        PORTFORWARD,
                        format!("port {port}: connection {request} opened").as_bytes(),
                    );
                }
                StreamInfo {
                    channel: if data { 1 } else { 3 },
                    forward: Some(at),
                    fin: [false; 2],
                }
            }
        }
    }

    fn data(&mut self, dir: &'static str, stream: u32, fin: bool, payload: &[u8]) -> Forward {
        let Some(info) = self.streams.get(&stream).cloned() else {
            self.recorder.count(dir, payload.len());
            return Forward::AsRead;
        };
        if payload.is_empty() {
            return Forward::AsRead;
        }
        match (self.purpose, info.forward) {
            (Purpose::PortForward, Some(at)) if info.channel == 1 => {
                self.recorder.count(dir, payload.len());
                let f = &mut self.forwards[at];
                if dir == "in" {
                    f.bytes_in += payload.len() as u64;
                } else {
                    f.bytes_out += payload.len() as u64;
                }
                Forward::AsRead
            }
            (Purpose::PortForward, at) => {
                let masked = mask_text(payload, self.masks.as_deref());
                let text = masked.as_deref().unwrap_or(payload);
                if let Some(f) = at.and_then(|at| self.forwards.get_mut(at)) {
                    f.errors.push(String::from_utf8_lossy(text).into_owned());
                }
                // Counted as sent, recorded as masked.
                self.recorder.count(dir, payload.len());
                self.recorder.note(dir, "error", text);
                // The pod's messages pass as they are; only the record is
                // masked (a port-forward carries no caller's data here).
                Forward::AsRead
            }
            (Purpose::Exec, _) => match mask_text(payload, self.masks.as_deref()) {
                Some(masked) => {
                    self.recorder.frame(dir, info.channel, &masked);
                    Forward::Rewritten(spdy::data_frames(stream, fin, &masked))
                }
                None => {
                    self.recorder.frame(dir, info.channel, payload);
                    Forward::AsRead
                }
            },
        }
    }

    /// A side half-closed `stream`; both halves closed, it is forgotten.
    fn finish(&mut self, stream: u32, side: usize) {
        let done = match self.streams.get_mut(&stream) {
            Some(info) => {
                info.fin[side] = true;
                info.fin == [true, true]
            }
            None => false,
        };
        if done && let Some(info) = self.streams.remove(&stream) {
            self.closed(&info);
        }
    }

    fn closed(&mut self, info: &StreamInfo) {
        if let (Purpose::PortForward, Some(at), 1) = (self.purpose, info.forward, info.channel)
            && let Some(f) = self.forwards.get(at)
        {
            let note = format!(
                "port {}: a connection closed ({} bytes in, {} bytes out so far)",
                f.port, f.bytes_in, f.bytes_out
            );
            self.recorder.note("out", PORTFORWARD, note.as_bytes());
        }
    }

    /// For an exec whose stream Gatehouse ends: a `Status` for the
    /// caller's error stream (unless the pod side already closed it), so
    /// kubectl reports the failure instead of an empty success.
    pub fn failure_for_client(&self, message: &str) -> Option<Vec<u8>> {
        if self.purpose != Purpose::Exec {
            return None;
        }
        let (id, _) = self
            .streams
            .iter()
            .find(|(_, info)| info.channel == 3 && !info.fin[1])?;
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("gatehouse: {message}"), "reason": "InternalError", "code": 500,
        });
        Some(spdy::data_frames(*id, true, status.to_string().as_bytes()))
    }

    pub fn finish_record(mut self, closed_by: &'static str, error: Option<String>) {
        self.recorder.set_ports(std::mem::take(&mut self.forwards));
        self.recorder.finish(closed_by, error);
    }
}

/// The text masks over `data`; `None` when nothing matched.
fn mask_text(data: &[u8], masks: Option<&CompiledMasks>) -> Option<Vec<u8>> {
    let m = masks?;
    let t = m.text.as_ref()?;
    let masked = crate::mask::stream::mask_all(t, &m.hash_key, data);
    (masked != data).then_some(masked)
}

/// How one direction's pump ended (of a SPDY connection, or of SPDY
/// tunnelled in WebSocket, `portforward.rs`).
pub(super) enum PumpEnd {
    /// The side closed (or vanished without TLS close_notify, as Go
    /// clients do): the other side was told by a half-close.
    Closed,
    Failed(String),
    Malformed(SpdyError),
}

/// Relays a SPDY connection, each direction in its own pump so neither
/// waits on the other, until both sides closed (or one side closed and the
/// other did not follow within [`CLOSE_GRACE`]).
pub async fn relay<C, U, F>(client: C, upstream: U, observer: SpdyObserver<F>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(StreamPart),
{
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let to_client = tokio::sync::Mutex::new(client_write);
    let to_upstream = tokio::sync::Mutex::new(upstream_write);
    let observer = Mutex::new(observer);
    let (closed_by, error) = {
        let inbound = pump("client", "in", client_read, &to_upstream, &observer);
        let outbound = pump("upstream", "out", upstream_read, &to_client, &observer);
        tokio::pin!(inbound, outbound);
        let (first, end, rest) = tokio::select! {
            end = &mut inbound => ("client", end, Either::Left(outbound)),
            end = &mut outbound => ("upstream", end, Either::Right(inbound)),
        };
        let (first, end) = match end {
            // The other side may still finish (its half-close passed on).
            PumpEnd::Closed => match tokio::time::timeout(CLOSE_GRACE, rest).await {
                Ok(PumpEnd::Closed) | Err(_) => (first, PumpEnd::Closed),
                Ok(other) => (
                    if first == "client" {
                        "upstream"
                    } else {
                        "client"
                    },
                    other,
                ),
            },
            other => (first, other),
        };
        let outcome = match end {
            PumpEnd::Closed => (first, None),
            PumpEnd::Failed(e) => ("error", Some(e)),
            PumpEnd::Malformed(e) => {
                tracing::info!(side = first, error = %e, "malformed SPDY; ending the stream");
                let message = unreadable(first, &e);
                let goaway = spdy::goaway_frame(0, spdy::GOAWAY_PROTOCOL_ERROR);
                let mut for_client = lock(&observer)
                    .failure_for_client(&message)
                    .unwrap_or_default();
                for_client.extend_from_slice(&goaway);
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = to_client.lock().await.write_all(&for_client).await;
                    let _ = to_upstream.lock().await.write_all(&goaway).await;
                })
                .await;
                ("error", Some(message))
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = to_client.lock().await.shutdown().await;
            let _ = to_upstream.lock().await.shutdown().await;
        })
        .await;
        outcome
    };
    observer
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .finish_record(closed_by, error);
}

/// What the record and the client are told when `side` sent SPDY that
/// could not be read.
pub(super) fn unreadable(side: &str, e: &SpdyError) -> String {
    format!("the {side} sent SPDY Gatehouse could not read ({e}); the stream was ended")
}

/// The other pump, still running when one ended.
enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<A, B> std::future::Future for Either<A, B>
where
    A: std::future::Future<Output = PumpEnd> + Unpin,
    B: std::future::Future<Output = PumpEnd> + Unpin,
{
    type Output = PumpEnd;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<PumpEnd> {
        match self.get_mut() {
            Either::Left(a) => std::pin::Pin::new(a).poll(cx),
            Either::Right(b) => std::pin::Pin::new(b).poll(cx),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads one side, passes each whole frame through the observer, and
/// writes what it says to the other side.
async fn pump<R, W, F>(
    name: &'static str,
    dir: &'static str,
    mut from: R,
    to: &tokio::sync::Mutex<W>,
    observer: &Mutex<SpdyObserver<F>>,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: FnMut(StreamPart),
{
    let mut reader = FrameReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => 0,
            // Go clients often close TLS without close_notify: an end all
            // the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Ok(n) => n,
            Err(e) => return PumpEnd::Failed(format!("the {name}'s connection failed: {e}")),
        };
        if n == 0 {
            // Pass the half-close on.
            let _ = to.lock().await.shutdown().await;
            return PumpEnd::Closed;
        }
        reader.push(&buf[..n]);
        let mut out = Vec::new();
        let mut bad = None;
        {
            let mut observer = lock(observer);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => match observer.frame(dir, &frame) {
                        Ok(Forward::AsRead) => out.extend_from_slice(&frame.raw),
                        Ok(Forward::Rewritten(bytes)) => out.extend_from_slice(&bytes),
                        Err(e) => {
                            bad = Some(e);
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
        }
        // The frames before a bad one still go on, whole.
        if !out.is_empty()
            && let Err(e) = to.lock().await.write_all(&out).await
        {
            return PumpEnd::Failed(format!("a stream failed while relaying: {e}"));
        }
        if let Some(e) = bad {
            return PumpEnd::Malformed(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::spdy::tests::{Deflater, control, syn_stream};
    use super::*;
    use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};
    use std::sync::Mutex;
    use tokio::io::DuplexStream;

    type Parts = Arc<Mutex<Vec<StreamPart>>>;

    fn recorder() -> (Parts, Recorder<impl FnMut(StreamPart)>) {
        let parts = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let parts = parts.clone();
            move |p: StreamPart| parts.lock().unwrap().push(p)
        };
        (parts, Recorder::new(1 << 20, sink).transport("spdy"))
    }

    fn masks() -> Arc<CompiledMasks> {
        MaskCompiler::new(b"k".to_vec())
            .compile(
                &[MaskRule {
                    target: MaskTarget::Pattern("hunter2".into()),
                    method: MaskMethod::Redact,
                }],
                &[],
            )
            .unwrap()
    }

    async fn read_frames(io: &mut DuplexStream, r: &mut FrameReader, n: usize) -> Vec<Frame> {
        let mut frames = vec![];
        let mut buf = [0u8; 4096];
        while frames.len() < n {
            while let Some(f) = r.next_frame().unwrap() {
                frames.push(f);
            }
            if frames.len() >= n {
                break;
            }
            let got = io.read(&mut buf).await.unwrap();
            assert!(got > 0, "closed after {} frames", frames.len());
            r.push(&buf[..got]);
        }
        frames
    }

    /// kubectl and a kubelet over in-memory pipes: headers pass as they
    /// were compressed, stdout is masked, and the record has the channels.
    #[tokio::test]
    async fn exec_streams_are_relayed_masked_and_recorded() {
        let (mut kubectl, gw_client) = tokio::io::duplex(1 << 16);
        let (gw_upstream, mut kubelet) = tokio::io::duplex(1 << 16);
        let (parts, rec) = recorder();
        let relay = tokio::spawn(relay(
            gw_client,
            gw_upstream,
            SpdyObserver::exec(Some(masks()), rec),
        ));
        let mut z = Deflater::new();
        let mut wire = syn_stream(&mut z, 1, &[("streamtype", "error")]);
        wire.extend(syn_stream(&mut z, 3, &[("streamtype", "stdin")]));
        wire.extend(syn_stream(&mut z, 5, &[("streamtype", "stdout")]));
        wire.extend(spdy::data_frames(3, true, b"echo hunter2\n"));
        kubectl.write_all(&wire).await.unwrap();
        let mut at_kubelet = FrameReader::new();
        let frames = read_frames(&mut kubelet, &mut at_kubelet, 4).await;
        // What kubectl sends passes byte for byte, except masked data.
        let FrameKind::SynStream { headers, .. } = &frames[2].kind else {
            panic!()
        };
        assert_eq!(headers.get("streamType"), Some("stdout"));
        assert_eq!(frames[3].payload(), b"echo [MASKED:pattern]\n");

        let mut zk = Deflater::new();
        let mut back = control(spdy::SYN_REPLY, 0, &{
            let mut p = 5u32.to_be_bytes().to_vec();
            p.extend(zk.block(&[]));
            p
        });
        back.extend(spdy::data_frames(5, true, b"password=hunter2\n"));
        back.extend(spdy::data_frames(
            1,
            true,
            br#"{"metadata":{},"status":"Success"}"#,
        ));
        kubelet.write_all(&back).await.unwrap();
        let mut at_kubectl = FrameReader::new();
        let frames = read_frames(&mut kubectl, &mut at_kubectl, 3).await;
        assert!(matches!(
            frames[0].kind,
            FrameKind::SynReply { stream: 5, .. }
        ));
        assert_eq!(frames[1].payload(), b"password=[MASKED:pattern]\n");
        drop(kubelet);
        drop(kubectl);
        relay.await.unwrap();
        let parts = parts.lock().unwrap();
        let frames: Vec<_> = parts.iter().flat_map(|p| p.frames.iter()).collect();
        let seen: Vec<_> = frames
            .iter()
            .map(|f| (f.dir, f.channel, f.data.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            seen,
            [
                ("in", "stdin", "echo [MASKED:pattern]\n".to_string()),
                ("out", "stdout", "password=[MASKED:pattern]\n".to_string()),
                (
                    "out",
                    "error",
                    r#"{"metadata":{},"status":"Success"}"#.to_string()
                ),
            ]
        );
        let end = parts.last().unwrap().end.as_ref().unwrap();
        assert_eq!(end.status.as_ref().unwrap()["status"], "Success");
        assert_eq!(end.transport, "spdy");
        assert!(end.error.is_none(), "{:?}", end.error);
    }

    /// A header block that does not inflate ends both sides with a GOAWAY
    /// and the record with the error.
    #[tokio::test]
    async fn malformed_spdy_ends_the_stream_with_a_goaway() {
        let (mut kubectl, gw_client) = tokio::io::duplex(1 << 16);
        let (gw_upstream, mut kubelet) = tokio::io::duplex(1 << 16);
        let (parts, rec) = recorder();
        let relay = tokio::spawn(relay(gw_client, gw_upstream, SpdyObserver::exec(None, rec)));
        let mut z = Deflater::new();
        let mut wire = syn_stream(&mut z, 1, &[("streamtype", "error")]);
        wire.extend(control(
            spdy::SYN_STREAM,
            0,
            &[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2, 3],
        ));
        kubectl.write_all(&wire).await.unwrap();
        let mut at_kubelet = FrameReader::new();
        let frames = read_frames(&mut kubelet, &mut at_kubelet, 2).await;
        assert!(matches!(
            frames[0].kind,
            FrameKind::SynStream { stream: 1, .. }
        ));
        assert_eq!(
            frames[1].kind,
            FrameKind::GoAway {
                last_good: 0,
                status: spdy::GOAWAY_PROTOCOL_ERROR
            }
        );
        // kubectl hears why on its error stream, then the GOAWAY.
        let mut at_kubectl = FrameReader::new();
        let frames = read_frames(&mut kubectl, &mut at_kubectl, 2).await;
        assert_eq!(
            frames[0].kind,
            FrameKind::Data {
                stream: 1,
                fin: true
            }
        );
        let status: serde_json::Value = serde_json::from_slice(frames[0].payload()).unwrap();
        assert_eq!(status["status"], "Failure");
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .starts_with("gatehouse: the client sent SPDY Gatehouse could not read"),
            "{status}"
        );
        assert_eq!(
            frames[1].kind,
            FrameKind::GoAway {
                last_good: 0,
                status: spdy::GOAWAY_PROTOCOL_ERROR
            }
        );
        relay.await.unwrap();
        let parts = parts.lock().unwrap();
        let end = parts.last().unwrap().end.as_ref().unwrap();
        assert_eq!(end.closed_by, "error");
        let err = end.error.as_deref().unwrap();
        assert!(
            err.contains("the client sent SPDY Gatehouse could not read"),
            "{err}"
        );
    }

    #[test]
    fn port_forward_counts_bytes_per_port_and_records_no_payload() {
        let (parts, rec) = recorder();
        let mut o = SpdyObserver::port_forward(Some(masks()), rec);
        let mut z = Deflater::new();
        let mut r = FrameReader::new();
        r.push(&syn_stream(
            &mut z,
            1,
            &[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0"),
            ],
        ));
        r.push(&syn_stream(
            &mut z,
            3,
            &[("streamtype", "data"), ("port", "8080"), ("requestid", "0")],
        ));
        r.push(&spdy::data_frames(3, true, b"ping hunter2"));
        let mut frames = vec![];
        while let Some(f) = r.next_frame().unwrap() {
            frames.push(f);
        }
        for f in &frames {
            assert_eq!(o.frame("in", f).unwrap(), Forward::AsRead);
        }
        let pod = spdy::data_frames(3, true, b"pong");
        let err = spdy::data_frames(1, true, b"connection refused: hunter2");
        let mut r = FrameReader::new();
        r.push(&pod);
        r.push(&err);
        while let Some(f) = r.next_frame().unwrap() {
            assert_eq!(o.frame("out", &f).unwrap(), Forward::AsRead);
        }
        o.finish_record("client", None);
        let parts = parts.lock().unwrap();
        let end = parts.last().unwrap().end.as_ref().unwrap();
        // The notes are not traffic: only the payload and the pod's message count.
        assert_eq!((end.bytes_in, end.bytes_out), (12, 4 + 27));
        assert_eq!(
            end.ports,
            [ForwardRecord {
                port: "8080".into(),
                connections: 1,
                bytes_in: 12,
                bytes_out: 4,
                errors: vec!["connection refused: [MASKED:pattern]".into()],
            }]
        );
        let text = serde_json::to_string(&*parts).unwrap();
        assert!(!text.contains("ping"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("port 8080: connection 0 opened"), "{text}");
        assert!(text.contains("port 8080: a connection closed"), "{text}");
    }
}
