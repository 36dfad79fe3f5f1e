//! The stand-in API server's SPDY/3.1, written apart from Gatehouse's own
//! reader so the tests do not check the codec against itself: frames read
//! from and written to an upgraded connection, header blocks through one
//! zlib stream per direction with SPDY/3's preset dictionary, as
//! moby/spdystream (kubectl's and the kubelet's SPDY) does.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// SPDY/3's dictionary, as Go's `headerDictionary` (no trailing NUL).
pub fn dictionary() -> Vec<u8> {
    let names = "options head post put delete trace accept accept-charset accept-encoding \
        accept-language accept-ranges age allow authorization cache-control connection \
        content-base content-encoding content-language content-length content-location \
        content-md5 content-range content-type date etag expect expires from host if-match \
        if-modified-since if-none-match if-range if-unmodified-since last-modified location \
        max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after \
        server te trailer transfer-encoding upgrade user-agent vary via warning \
        www-authenticate method get status";
    let mut d = Vec::new();
    let mut word = |w: &str| {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    };
    for w in names.split_whitespace() {
        word(w);
    }
    for w in [
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ] {
        word(w);
    }
    let codes = "100 101 201 202 205 206 300 302 303 304 305 306 307 402 405 406 407 408 409 \
        410 411 412 413 414 415 416 417 502 504 505";
    for c in codes.split_whitespace() {
        d.extend_from_slice(c.as_bytes());
    }
    for s in [
        "203 Non-Authoritative Information",
        "204 No Content",
        "301 Moved Permanently",
        "400 Bad Request",
        "401 Unauthorized",
        "403 Forbidden",
        "404 Not Found",
        "500 Internal Server Error",
        "501 Not Implemented",
        "503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,",
        "application/xhtml+xml,text/plain,text/javascript,public",
        "privatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    ] {
        d.extend_from_slice(s.as_bytes());
    }
    d
}

/// One frame as the stand-in sees it.
#[derive(Debug)]
pub enum Frame {
    Syn {
        stream: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    Rst {
        stream: u32,
    },
    GoAway,
    Ping {
        id: u32,
    },
    /// SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE: nothing to do here.
    Other,
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The reading half.
pub struct Reader<R> {
    io: R,
    z: Decompress,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Self {
            io,
            z: Decompress::new(true),
        }
    }

    /// The next frame; `Ok(None)` at the end of the connection.
    pub async fn next(&mut self) -> anyhow::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let fin = head[4] & 1 != 0;
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        anyhow::ensure!(len <= 1 << 20, "a frame of {len} bytes");
        let mut body = vec![0u8; len];
        self.io.read_exact(&mut body).await?;
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: word,
                fin,
                data: body,
            }));
        }
        anyhow::ensure!((word >> 16) & 0x7fff == 3, "SPDY version {}", word >> 16);
        let id = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff;
        Ok(Some(match word & 0xffff {
            1 => {
                anyhow::ensure!(body.len() >= 10, "short SYN_STREAM");
                Frame::Syn {
                    stream: id(&body),
                    fin,
                    headers: self.headers(&body[10..])?,
                }
            }
            2 | 8 => {
                anyhow::ensure!(body.len() >= 4, "short frame");
                self.headers(&body[4..])?;
                Frame::Other
            }
            3 => Frame::Rst { stream: id(&body) },
            6 => Frame::Ping { id: id(&body) },
            7 => Frame::GoAway,
            _ => Frame::Other,
        }))
    }

    fn headers(&mut self, block: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(4096);
        let mut input = block;
        loop {
            out.reserve(4096);
            let before = self.z.total_in();
            match self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(&dictionary())?;
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            input = &input[(self.z.total_in() - before) as usize..];
            if input.is_empty() && out.capacity() > out.len() {
                break;
            }
            anyhow::ensure!(out.len() < 1 << 20, "a header block over 1 MiB");
        }
        let mut b = &out[..];
        let mut take = |n: usize| -> anyhow::Result<&[u8]> {
            anyhow::ensure!(b.len() >= n, "a cut header block");
            let (h, t) = b.split_at(n);
            b = t;
            Ok(h)
        };
        let u32_of = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let n = u32_of(take(4)?);
        let mut pairs = Vec::new();
        for _ in 0..n {
            let l = u32_of(take(4)?);
            let name = String::from_utf8_lossy(take(l)?).into_owned();
            let l = u32_of(take(4)?);
            let value = String::from_utf8_lossy(take(l)?).into_owned();
            pairs.push((name, value));
        }
        Ok(pairs)
    }
}

/// The writing half.
pub struct Writer<W> {
    io: W,
    z: Compress,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(&dictionary())
            .expect("the zlib-rs backend takes a dictionary");
        Self { io, z }
    }

    pub fn compress(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (pairs.len() as u32).to_be_bytes().to_vec();
        for (n, v) in pairs {
            plain.extend_from_slice(&(n.len() as u32).to_be_bytes());
            plain.extend_from_slice(n.as_bytes());
            plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
            plain.extend_from_slice(v.as_bytes());
        }
        self.compress_raw(&plain)
    }

    pub fn compress_raw(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let start = self.z.total_in();
        loop {
            out.reserve(plain.len() / 2 + 4096);
            let done = (self.z.total_in() - start) as usize;
            if self
                .z
                .compress_vec(&plain[done..], &mut out, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            if (self.z.total_in() - start) as usize == plain.len() && out.capacity() > out.len() {
                break;
            }
        }
        out
    }

    pub async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut f = (0x8003_0000u32 | u32::from(kind)).to_be_bytes().to_vec();
        let len = (payload.len() as u32).to_be_bytes();
        f.extend_from_slice(&[flags, len[1], len[2], len[3]]);
        f.extend_from_slice(payload);
        self.io.write_all(&f).await
    }

    pub async fn syn_reply(&mut self, stream: u32) -> std::io::Result<()> {
        let mut p = stream.to_be_bytes().to_vec();
        p.extend(self.compress(&[]));
        self.control(2, 0, &p).await
    }

    pub async fn data(&mut self, stream: u32, fin: bool, data: &[u8]) -> std::io::Result<()> {
        let mut f = stream.to_be_bytes().to_vec();
        let len = (data.len() as u32).to_be_bytes();
        f.extend_from_slice(&[u8::from(fin), len[1], len[2], len[3]]);
        f.extend_from_slice(data);
        self.io.write_all(&f).await
    }

    pub async fn ping(&mut self, id: u32) -> std::io::Result<()> {
        self.control(6, 0, &id.to_be_bytes()).await
    }

    pub async fn goaway(&mut self) -> std::io::Result<()> {
        self.control(7, 0, &[0, 0, 0, 0, 0, 0, 0, 0]).await
    }

    pub async fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.io.write_all(bytes).await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
