//! Byte streams (plain TCP or TLS, either side) and reading frames off them
//! without trusting the peer: every length is checked against a limit
//! before any memory is reserved for it, and large frames that need no
//! inspection are streamed through instead of buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::codec::{Frame, WireError};

/// A connection to a client or an upstream, before or after TLS.
pub enum PgStream {
    Plain(TcpStream),
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl PgStream {
    pub fn is_tls(&self) -> bool {
        !matches!(self, PgStream::Plain(_))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            PgStream::Plain($s) => $e,
            PgStream::ServerTls($s) => $e,
            PgStream::ClientTls($s) => $e,
        }
    };
}

impl AsyncRead for PgStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PgStream::Plain(s) => s.is_write_vectored(),
            PgStream::ServerTls(s) => s.is_write_vectored(),
            PgStream::ClientTls(s) => s.is_write_vectored(),
        }
    }
}

/// Frames larger than this are streamed when the caller does not need them whole.
pub const STREAM_THRESHOLD: usize = 256 * 1024;

/// Reads frames from one direction of a connection.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
}

/// A frame's head, known before its body is read.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub tag: u8,
    pub len: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(16 * 1024),
            max,
        }
    }

    /// Bytes already read but not yet consumed (e.g. a pipelined startup).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    pub fn from_parts(inner: R, buf: BytesMut, max: usize) -> Self {
        Self { inner, buf, max }
    }

    async fn fill(&mut self, n: usize) -> Result<(), WireError> {
        while self.buf.len() < n {
            self.buf.reserve(n - self.buf.len());
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Err(WireError::Closed);
            }
        }
        Ok(())
    }

    /// Whether a whole frame is already buffered (so no flush is needed yet).
    pub fn has_frame(&self) -> bool {
        if self.buf.len() < 5 {
            return false;
        }
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        len >= 4 && self.buf.len() > len as usize
    }

    /// Waits for the next frame's head. Cancel-safe: nothing is consumed.
    pub async fn head(&mut self) -> Result<Head, WireError> {
        self.fill(5).await?;
        let tag = self.buf[0];
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if len < 4 {
            return Err(WireError::Malformed(format!(
                "message '{}' declares length {len}",
                tag as char
            )));
        }
        let len = len as usize - 4;
        if len > self.max {
            return Err(WireError::TooLarge {
                tag: tag as char,
                len,
                max: self.max,
            });
        }
        Ok(Head { tag, len })
    }

    /// Reads the frame whose head was just returned.
    pub async fn frame(&mut self, head: Head) -> Result<Frame, WireError> {
        self.fill(5 + head.len).await?;
        self.buf.advance(5);
        let body = self.buf.split_to(head.len).freeze();
        Ok(Frame {
            tag: head.tag,
            body,
        })
    }

    /// Reads a whole frame.
    pub async fn next(&mut self) -> Result<Frame, WireError> {
        let head = self.head().await?;
        self.frame(head).await
    }

    /// Copies the frame whose head was just returned to `out` without
    /// holding it whole: for large rows and COPY data nobody inspects.
    pub async fn stream_to<W: AsyncWrite + Unpin>(
        &mut self,
        head: Head,
        out: &mut W,
    ) -> Result<(), WireError> {
        self.fill(5).await?;
        let mut left = 5 + head.len;
        while left > 0 {
            if self.buf.is_empty() {
                self.buf.reserve(64 * 1024);
                if self.inner.read_buf(&mut self.buf).await? == 0 {
                    return Err(WireError::Closed);
                }
            }
            let n = left.min(self.buf.len());
            out.write_all(&self.buf[..n]).await?;
            self.buf.advance(n);
            left -= n;
        }
        Ok(())
    }

    /// Reads an untyped startup packet (length word, then body).
    pub async fn startup_packet(&mut self) -> Result<bytes::Bytes, WireError> {
        self.fill(4).await?;
        let len = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if !(8..=10_000).contains(&len) {
            return Err(WireError::Malformed(format!(
                "startup packet declares length {len}"
            )));
        }
        self.fill(len as usize).await?;
        self.buf.advance(4);
        Ok(self.buf.split_to(len as usize - 4).freeze())
    }
}

/// Writes a frame and flushes.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> Result<(), WireError> {
    let mut b = BytesMut::new();
    frame.encode(&mut b);
    w.write_all(&b).await?;
    w.flush().await?;
    Ok(())
}
