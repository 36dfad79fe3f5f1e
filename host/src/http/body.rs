//! Bodies in both directions: reading the inspectable prefix of a request,
//! and streaming a response through the masker while capturing what the
//! caller saw for the audit record.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use super::{BoxError, ProxyBody};
use crate::mask::StreamMasker;
use crate::mask::compile::TextMatcher;

/// The start of a request body, read for the policy.
pub struct Prefix {
    pub chunks: Vec<Bytes>,
    pub complete: bool,
}

impl Prefix {
    pub fn bytes(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }
}

/// Reads up to `limit` bytes (whole frames, so possibly a little more).
pub async fn read_prefix<B>(body: &mut B, limit: usize) -> Result<Prefix, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut chunks = Vec::new();
    let mut read = 0;
    if body.is_end_stream() {
        return Ok(Prefix {
            chunks,
            complete: true,
        });
    }
    while read < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    chunks.push(data);
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Ok(Prefix {
                    chunks,
                    complete: true,
                });
            }
        }
        if body.is_end_stream() {
            return Ok(Prefix {
                chunks,
                complete: true,
            });
        }
    }
    Ok(Prefix {
        chunks,
        complete: false,
    })
}

/// What the caller was sent, for the audit record.
#[derive(Debug, Default, Clone)]
pub struct Capture {
    pub bytes: u64,
    pub body: Vec<u8>,
    pub truncated: bool,
    pub masked: u64,
    pub error: Option<String>,
    limit: usize,
}

impl Capture {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            ..Default::default()
        }
    }

    pub fn add(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        let room = self.limit.saturating_sub(self.body.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// A streaming rewrite of a body, chunk by chunk, that may end with an
/// asynchronous step (a policy call on what went through).
pub trait BodyTransform: Send {
    /// Feeds a chunk and appends to `out` what may go out now. An error
    /// ends the body: the client gets what [`BodyTransform::failure`] renders.
    /// Asynchronous, so a transform may ask policies about what it read
    /// (MCP answers on an event stream) before passing it on.
    fn push<'a>(
        &'a mut self,
        chunk: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// The body ended: appends the rest.
    fn finish<'a>(&'a mut self, out: &'a mut Vec<u8>) -> BoxFuture<'a, Result<(), String>>;
    /// What to send after a failure, in the protocol's framing (e.g. an
    /// error event); nothing by default.
    fn failure(&mut self, _reason: &str) -> Vec<u8> {
        Vec::new()
    }
    /// How many matches were masked so far.
    fn masked(&self) -> u64;
    /// Bytes the transform writes into the body on its own, between the
    /// upstream's chunks (an MCP legacy session's refusals). Asked after
    /// each chunk until it returns a receiver.
    fn side_channel(&mut self) -> Option<mpsc::Receiver<Vec<u8>>> {
        None
    }
    /// The adapter's account of the exchange, once the body ended.
    fn report(&mut self) -> Option<StreamReport> {
        None
    }
}

/// What a transform reports for the audit record.
pub struct StreamReport {
    pub detail: serde_json::Value,
    pub decision: Option<crate::policy::chain::ChainOutcome>,
}

impl BodyTransform for StreamMasker {
    fn push<'a>(
        &'a mut self,
        chunk: &'a [u8],
        out: &'a mut Vec<u8>,
    ) -> BoxFuture<'a, Result<(), String>> {
        StreamMasker::push(self, chunk, out);
        Box::pin(std::future::ready(Ok(())))
    }

    fn finish<'a>(&'a mut self, out: &'a mut Vec<u8>) -> BoxFuture<'a, Result<(), String>> {
        StreamMasker::finish(self, out);
        Box::pin(std::future::ready(Ok(())))
    }

    fn masked(&self) -> u64 {
        self.masked
    }
}

/// Streams `body` to the caller through `matcher` (when any), and calls
/// `done` with the capture once the body ended, failed or the caller left.
pub fn stream_masked<B>(
    body: B,
    matcher: Option<(Arc<TextMatcher>, Arc<[u8]>)>,
    capture_limit: usize,
    done: impl FnOnce(Capture) + Send + 'static,
) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    let transform =
        matcher.map(|(m, key)| Box::new(StreamMasker::new(m, key)) as Box<dyn BodyTransform>);
    stream_transformed(body, transform, capture_limit, move |capture, _| {
        done(capture)
    })
}

/// Streams `body` to the caller through `transform` (when any), and calls
/// `done` with the capture and the transform's report once the body ended,
/// failed or the caller left.
pub fn stream_transformed<B>(
    mut body: B,
    mut transform: Option<Box<dyn BodyTransform>>,
    capture_limit: usize,
    done: impl FnOnce(Capture, Option<StreamReport>) + Send + 'static,
) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
    tokio::spawn(async move {
        let mut capture = Capture::new(capture_limit);
        let mut side: Option<mpsc::Receiver<Vec<u8>>> = None;
        loop {
            if side.is_none() {
                side = transform.as_mut().and_then(|t| t.side_channel());
            }
            let next = match side.as_mut() {
                Some(rx) => tokio::select! {
                    injected = rx.recv() => {
                        match injected {
                            Some(bytes) => {
                                capture.add(&bytes);
                                if tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_err() {
                                    capture.error = Some(
                                        "the client went away before the response ended".into(),
                                    );
                                    break;
                                }
                            }
                            None => side = None,
                        }
                        continue;
                    }
                    frame = body.frame() => frame,
                },
                None => body.frame().await,
            };
            match next {
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            let out = match transform.as_mut() {
                                Some(t) => {
                                    let mut out = Vec::with_capacity(data.len());
                                    if let Err(e) = t.push(&data, &mut out).await {
                                        out.extend_from_slice(&t.failure(&e));
                                        capture.add(&out);
                                        capture.error = Some(e);
                                        let _ = tx.send(Ok(Frame::data(Bytes::from(out)))).await;
                                        break;
                                    }
                                    Bytes::from(out)
                                }
                                None => data,
                            };
                            if out.is_empty() {
                                continue;
                            }
                            capture.add(&out);
                            Frame::data(out)
                        }
                        Err(other) => other,
                    };
                    if tx.send(Ok(frame)).await.is_err() {
                        capture.error =
                            Some("the client went away before the response ended".into());
                        break;
                    }
                }
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    capture.error = Some(format!("upstream body failed: {e}"));
                    let _ = tx.send(Err(e)).await;
                    break;
                }
                None => {
                    let mut tail = Vec::new();
                    if let Some(t) = transform.as_mut()
                        && let Err(e) = t.finish(&mut tail).await
                    {
                        tail.extend_from_slice(&t.failure(&e));
                        capture.error = Some(e);
                    }
                    capture.add(&tail);
                    capture.masked = transform.as_ref().map(|t| t.masked()).unwrap_or(0);
                    let report = transform.as_mut().and_then(|t| t.report());
                    // Record before the last bytes go out, so the record exists
                    // by the time the caller has the whole response.
                    done(capture, report);
                    if !tail.is_empty() {
                        let _ = tx.send(Ok(Frame::data(Bytes::from(tail)))).await;
                    }
                    return;
                }
            }
        }
        capture.masked = transform.as_ref().map(|t| t.masked()).unwrap_or(0);
        let report = transform.as_mut().and_then(|t| t.report());
        done(capture, report);
    });
    let frames = Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|f| (f, rx))
    }));
    StreamBody::new(frames).boxed_unsync()
}

/// A request body for the upstream: the prefix already read, then the rest,
/// through the masker when the request has text masks.
pub fn request_body<B>(
    prefix: Prefix,
    rest: B,
    matcher: Option<(Arc<TextMatcher>, Arc<[u8]>)>,
) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let head = stream::iter(
        prefix
            .chunks
            .into_iter()
            .map(|c| Ok::<_, BoxError>(Frame::data(c))),
    );
    let tail: ProxyBody = if prefix.complete {
        http_body_util::Empty::new()
            .map_err(|e| match e {})
            .boxed_unsync()
    } else {
        rest.map_err(Into::into).boxed_unsync()
    };
    let tail = Box::pin(stream::unfold(tail, |mut b| async move {
        b.frame().await.map(|f| (f, b))
    }));
    let joined = StreamBody::new(futures_util::StreamExt::chain(head, tail));
    match matcher {
        None => joined.boxed_unsync(),
        Some(m) => stream_masked(joined, Some(m), 0, |_| {}),
    }
}
