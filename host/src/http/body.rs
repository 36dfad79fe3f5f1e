//! Bodies in both directions: reading the inspectable prefix of a request,
//! and streaming a response through the masker while capturing what the
//! caller saw for the audit record.

use std::sync::Arc;

use bytes::Bytes;
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

/// Streams `body` to the caller through `matcher` (when any), and calls
/// `done` with the capture once the body ended, failed or the caller left.
pub fn stream_masked<B>(
    mut body: B,
    matcher: Option<(Arc<TextMatcher>, Arc<[u8]>)>,
    capture_limit: usize,
    done: impl FnOnce(Capture) + Send + 'static,
) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
{
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(8);
    tokio::spawn(async move {
        let mut masker = matcher.map(|(m, key)| StreamMasker::new(m, key));
        let mut capture = Capture::new(capture_limit);
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let frame = match frame.into_data() {
                        Ok(data) => {
                            let out = match masker.as_mut() {
                                Some(m) => {
                                    let mut out = Vec::with_capacity(data.len());
                                    m.push(&data, &mut out);
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
                    if let Some(m) = masker.as_mut() {
                        m.finish(&mut tail);
                    }
                    capture.add(&tail);
                    capture.masked = masker.as_ref().map(|m| m.masked).unwrap_or(0);
                    // Record before the last bytes go out, so the record exists
                    // by the time the caller has the whole response.
                    done(capture);
                    if !tail.is_empty() {
                        let _ = tx.send(Ok(Frame::data(Bytes::from(tail)))).await;
                    }
                    return;
                }
            }
        }
        capture.masked = masker.as_ref().map(|m| m.masked).unwrap_or(0);
        done(capture);
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
