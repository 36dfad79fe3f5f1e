//! SPDY/3.1 framing as Kubernetes speaks it for `exec`, `attach` and
//! `port-forward` (moby/spdystream at both ends): frames cut from a byte
//! stream in any chunking, and the header blocks of SYN_STREAM, SYN_REPLY
//! and HEADERS decompressed with the one zlib stream each direction keeps
//! (preset dictionary in `spdy/dictionary.rs`).
//!
//! The relay forwards each frame's bytes as they were read, so a header
//! block is decompressed only to read it (the peer's zlib stream stays in
//! step because nothing in it changes). Every size is bounded: control
//! frames by [`MAX_CONTROL_FRAME`], a decompressed header block by
//! [`MAX_HEADER_BLOCK`] (a compression bomb stops there), DATA frames by
//! the protocol's 24-bit length. Nothing here panics on input
//! (property-tested).

mod dictionary;

pub use dictionary::dictionary;

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

/// The largest control frame read. Kubernetes' are tens of bytes (a
/// SYN_STREAM's compressed headers included).
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;
/// The most a header block may decompress to.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most DATA one frame carries (24-bit length).
pub const MAX_DATA: usize = (1 << 24) - 1;

pub const SYN_STREAM: u16 = 1;
pub const SYN_REPLY: u16 = 2;
pub const RST_STREAM: u16 = 3;
pub const SETTINGS: u16 = 4;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
pub const HEADERS: u16 = 8;
pub const WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;
/// GOAWAY status: the peer broke the protocol.
pub const GOAWAY_PROTOCOL_ERROR: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error(
        "a control frame of SPDY version {0}; Gatehouse reads SPDY/3.1, the version Kubernetes clients and servers speak"
    )]
    Version(u16),
    #[error(
        "a control frame (type {kind}) of {len} bytes, over Gatehouse's limit of {MAX_CONTROL_FRAME} bytes"
    )]
    ControlTooLarge { kind: u16, len: usize },
    #[error("a {0} frame too short for its fields")]
    Short(&'static str),
    #[error("a DATA frame for stream 0, which no stream has")]
    StreamZero,
    #[error("a header block that does not decompress: {0}")]
    Inflate(String),
    #[error(
        "a header block that decompresses to more than {MAX_HEADER_BLOCK} bytes (a compression bomb?); Gatehouse stopped reading it"
    )]
    HeaderBomb,
    #[error("a malformed header block: {0}")]
    HeaderBlock(&'static str),
    #[error("more than {0} streams open at once, more than Gatehouse follows on one connection")]
    TooManyStreams(usize),
}

/// A frame's name/value pairs, in order. Names are lowercase on the wire
/// (SPDY/3 requires it); several values of one name are NUL-separated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (compared without case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameKind {
    Data {
        stream: u32,
        fin: bool,
    },
    SynStream {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    Headers {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    /// SETTINGS, PING, WINDOW_UPDATE, and control types SPDY/3 says to
    /// ignore: passed on unread.
    Other {
        kind: u16,
    },
}

/// One whole frame: its bytes as read, and what they say.
#[derive(Debug, Clone)]
pub struct Frame {
    pub raw: Bytes,
    pub kind: FrameKind,
}

impl Frame {
    /// The frame's payload (after the 8-byte header).
    pub fn payload(&self) -> &[u8] {
        self.raw.get(8..).unwrap_or_default()
    }
}

/// Cuts one direction's bytes into frames and reads their header blocks.
pub struct FrameReader {
    buf: BytesMut,
    inflater: HeaderInflater,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            inflater: HeaderInflater::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, if one has arrived. After an error the
    /// stream cannot be read on (its zlib stream is lost).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        let Some(head) = self.buf.get(..8) else {
            return Ok(None);
        };
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let control = word & 0x8000_0000 != 0;
        if control {
            let version = ((word >> 16) & 0x7fff) as u16;
            if version != 3 {
                return Err(SpdyError::Version(version));
            }
            if len > MAX_CONTROL_FRAME {
                return Err(SpdyError::ControlTooLarge {
                    kind: word as u16,
                    len,
                });
            }
        } else if word == 0 {
            return Err(SpdyError::StreamZero);
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let raw = self.buf.split_to(8 + len).freeze();
        let fin = flags & FLAG_FIN != 0;
        let kind = if control {
            self.control(word as u16, fin, &raw[8..])?
        } else {
            FrameKind::Data { stream: word, fin }
        };
        Ok(Some(Frame { raw, kind }))
    }

    fn control(&mut self, kind: u16, fin: bool, mut p: &[u8]) -> Result<FrameKind, SpdyError> {
        let stream_of = |p: &mut &[u8], name| -> Result<u32, SpdyError> {
            if p.len() < 4 {
                return Err(SpdyError::Short(name));
            }
            Ok(p.get_u32() & 0x7fff_ffff)
        };
        Ok(match kind {
            SYN_STREAM => {
                let stream = stream_of(&mut p, "SYN_STREAM")?;
                // Associated stream, priority and slot.
                if p.len() < 6 {
                    return Err(SpdyError::Short("SYN_STREAM"));
                }
                p.advance(6);
                let headers = self.inflater.headers(p)?;
                FrameKind::SynStream {
                    stream,
                    fin,
                    headers,
                }
            }
            SYN_REPLY => {
                let stream = stream_of(&mut p, "SYN_REPLY")?;
                let headers = self.inflater.headers(p)?;
                FrameKind::SynReply {
                    stream,
                    fin,
                    headers,
                }
            }
            HEADERS => {
                let stream = stream_of(&mut p, "HEADERS")?;
                let headers = self.inflater.headers(p)?;
                FrameKind::Headers {
                    stream,
                    fin,
                    headers,
                }
            }
            RST_STREAM => {
                let stream = stream_of(&mut p, "RST_STREAM")?;
                if p.len() < 4 {
                    return Err(SpdyError::Short("RST_STREAM"));
                }
                FrameKind::RstStream {
                    stream,
                    status: p.get_u32(),
                }
            }
            GOAWAY => {
                let last_good = stream_of(&mut p, "GOAWAY")?;
                // SPDY/3 added the status; tolerate its absence.
                let status = if p.len() >= 4 { p.get_u32() } else { 0 };
                FrameKind::GoAway { last_good, status }
            }
            other => FrameKind::Other { kind: other },
        })
    }
}

/// One direction's zlib stream of header blocks.
pub struct HeaderInflater {
    z: Decompress,
}

impl Default for HeaderInflater {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderInflater {
    pub fn new() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }

    /// Decompresses one header block (it ends with a sync flush), at most
    /// [`MAX_HEADER_BLOCK`] bytes of it.
    pub fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::HeaderBomb);
            }
            if out.capacity() - out.len() < 1024 {
                out.reserve(4096);
            }
            let spare = out.capacity() - out.len();
            let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
            let result = self
                .z
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed = (self.z.total_in() - in_before) as usize;
            let produced = (self.z.total_out() - out_before) as usize;
            input = input.get(consumed..).unwrap_or_default();
            match result {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Inflate(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Inflate(e.to_string())),
                Ok(Status::StreamEnd) => {
                    if !input.is_empty() {
                        return Err(SpdyError::Inflate(
                            "the zlib stream ended inside a header block".into(),
                        ));
                    }
                    break;
                }
                Ok(_) => {
                    if input.is_empty() && produced < spare {
                        break;
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(SpdyError::Inflate(
                            "the header block stops in the middle".into(),
                        ));
                    }
                }
            }
        }
        if out.len() > MAX_HEADER_BLOCK {
            return Err(SpdyError::HeaderBomb);
        }
        Ok(out)
    }

    /// Decompresses and parses one header block.
    pub fn headers(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        parse_header_block(&self.inflate(block)?)
    }
}

/// A decompressed SPDY/3 header block: a 32-bit count, then each name and
/// value with a 32-bit length in front.
pub fn parse_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    fn field(b: &mut &[u8]) -> Result<String, SpdyError> {
        if b.len() < 4 {
            return Err(SpdyError::HeaderBlock("a length is cut off"));
        }
        let len = b.get_u32() as usize;
        let Some(bytes) = b.get(..len) else {
            return Err(SpdyError::HeaderBlock(
                "a name or value is longer than the block",
            ));
        };
        let s = String::from_utf8_lossy(bytes).into_owned();
        b.advance(len);
        Ok(s)
    }
    if b.len() < 4 {
        return Err(SpdyError::HeaderBlock("the count is cut off"));
    }
    let n = b.get_u32() as usize;
    // Each pair takes at least 8 bytes: a count larger than that is a lie.
    if n > b.len() / 8 {
        return Err(SpdyError::HeaderBlock("more pairs than the block can hold"));
    }
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let name = field(&mut b)?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("an empty header name"));
        }
        let value = field(&mut b)?;
        pairs.push((name, value));
    }
    if !b.is_empty() {
        return Err(SpdyError::HeaderBlock("bytes after the last pair"));
    }
    Ok(Headers(pairs))
}

/// DATA frames carrying `payload` on `stream`, split at [`MAX_DATA`]; FIN
/// (when asked) on the last.
pub fn data_frames(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    let mut chunks = payload.chunks(MAX_DATA).peekable();
    if chunks.peek().is_none() {
        push_data(&mut out, stream, fin, &[]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        push_data(&mut out, stream, fin && last, chunk);
    }
    out
}

fn push_data(out: &mut Vec<u8>, stream: u32, fin: bool, chunk: &[u8]) {
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    let len = (chunk.len() as u32).to_be_bytes();
    out.extend_from_slice(&[u8::from(fin), len[1], len[2], len[3]]);
    out.extend_from_slice(chunk);
}

/// A GOAWAY frame: the session ends, nothing after `last_good` was taken.
pub fn goaway_frame(last_good: u32, status: u32) -> [u8; 16] {
    let mut f = [0u8; 16];
    f[..4].copy_from_slice(&(0x8003_0000u32 | u32::from(GOAWAY)).to_be_bytes());
    f[7] = 8;
    f[8..12].copy_from_slice(&(last_good & 0x7fff_ffff).to_be_bytes());
    f[12..16].copy_from_slice(&status.to_be_bytes());
    f
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};
    use proptest::prelude::*;

    /// The writing side of one direction's zlib stream, as spdystream's
    /// framer keeps it.
    pub struct Deflater(Compress);

    impl Deflater {
        pub fn new() -> Self {
            let mut c = Compress::new(Compression::best(), true);
            c.set_dictionary(dictionary()).unwrap();
            Self(c)
        }

        pub fn block(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
            let mut plain = (pairs.len() as u32).to_be_bytes().to_vec();
            for (n, v) in pairs {
                plain.extend_from_slice(&(n.len() as u32).to_be_bytes());
                plain.extend_from_slice(n.as_bytes());
                plain.extend_from_slice(&(v.len() as u32).to_be_bytes());
                plain.extend_from_slice(v.as_bytes());
            }
            self.compress(&plain)
        }

        pub fn compress(&mut self, plain: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(plain.len() + 64);
            let before = self.0.total_in();
            loop {
                let done = (self.0.total_in() - before) as usize;
                out.reserve(4096);
                self.0
                    .compress_vec(&plain[done..], &mut out, FlushCompress::Sync)
                    .unwrap();
                if (self.0.total_in() - before) as usize == plain.len()
                    && out.capacity() > out.len()
                {
                    break;
                }
            }
            out
        }
    }

    pub fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = (0x8003_0000u32 | u32::from(kind)).to_be_bytes().to_vec();
        let len = (payload.len() as u32).to_be_bytes();
        f.extend_from_slice(&[flags, len[1], len[2], len[3]]);
        f.extend_from_slice(payload);
        f
    }

    pub fn syn_stream(z: &mut Deflater, stream: u32, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut p = stream.to_be_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&z.block(pairs));
        control(SYN_STREAM, 0, &p)
    }

    fn read_all(r: &mut FrameReader) -> Result<Vec<Frame>, SpdyError> {
        let mut frames = vec![];
        while let Some(f) = r.next_frame()? {
            frames.push(f);
        }
        Ok(frames)
    }

    #[test]
    fn frames_and_headers_in_one_zlib_stream() {
        let mut z = Deflater::new();
        let mut wire = syn_stream(&mut z, 1, &[("streamtype", "error")]);
        wire.extend(syn_stream(&mut z, 3, &[("streamtype", "stdout")]));
        wire.extend(data_frames(3, true, b"hello\n"));
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend(z.block(&[("status", "done"), ("x", "a\0b")]));
        wire.extend(control(HEADERS, 0, &p));
        wire.extend(goaway_frame(3, 0));
        let mut r = FrameReader::new();
        r.push(&wire);
        let frames = read_all(&mut r).unwrap();
        assert_eq!(frames.len(), 5);
        let FrameKind::SynStream {
            stream, headers, ..
        } = &frames[1].kind
        else {
            panic!("{:?}", frames[1].kind)
        };
        assert_eq!((*stream, headers.get("streamType")), (3, Some("stdout")));
        assert_eq!(
            frames[2].kind,
            FrameKind::Data {
                stream: 3,
                fin: true
            }
        );
        assert_eq!(frames[2].payload(), b"hello\n");
        let FrameKind::Headers { headers, .. } = &frames[3].kind else {
            panic!()
        };
        assert_eq!(headers.get("x"), Some("a"));
        assert_eq!(
            frames[4].kind,
            FrameKind::GoAway {
                last_good: 3,
                status: 0
            }
        );
        // Every byte went back out as it came in.
        let again: Vec<u8> = frames.iter().flat_map(|f| f.raw.to_vec()).collect();
        assert_eq!(again, wire);
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        let mut z = Deflater::new();
        let mut plain = 1u32.to_be_bytes().to_vec();
        plain.extend_from_slice(&1u32.to_be_bytes());
        plain.push(b'a');
        plain.extend_from_slice(&(8u32 << 20).to_be_bytes());
        plain.extend(std::iter::repeat_n(b'x', 8 << 20));
        let block = z.compress(&plain);
        assert!(block.len() < MAX_CONTROL_FRAME, "{}", block.len());
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend(block);
        let mut r = FrameReader::new();
        r.push(&control(HEADERS, 0, &p));
        assert_eq!(r.next_frame().unwrap_err(), SpdyError::HeaderBomb);
    }

    #[test]
    fn bad_frames_are_named() {
        let mut r = FrameReader::new();
        r.push(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]);
        assert_eq!(r.next_frame().unwrap_err(), SpdyError::Version(2));

        let mut r = FrameReader::new();
        r.push(&[0x80, 0x03, 0, 1, 0, 0x10, 0, 0]);
        assert!(matches!(
            r.next_frame().unwrap_err(),
            SpdyError::ControlTooLarge { .. }
        ));

        let mut r = FrameReader::new();
        r.push(&control(SYN_STREAM, 0, &[0, 0, 0, 1]));
        assert_eq!(r.next_frame().unwrap_err(), SpdyError::Short("SYN_STREAM"));

        let mut r = FrameReader::new();
        r.push(&control(
            SYN_REPLY,
            0,
            &[0, 0, 0, 1, 0x78, 0xbb, 1, 2, 3, 4],
        ));
        assert!(matches!(r.next_frame().unwrap_err(), SpdyError::Inflate(_)));

        let mut r = FrameReader::new();
        r.push(&data_frames(0, false, b"x"));
        assert_eq!(r.next_frame().unwrap_err(), SpdyError::StreamZero);

        // A header block that says it holds more than it does.
        let mut z = Deflater::new();
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend(z.compress(&[0, 0, 0, 9, 0, 0, 0, 1, b'a']));
        let mut r = FrameReader::new();
        r.push(&control(HEADERS, 0, &p));
        assert!(matches!(
            r.next_frame().unwrap_err(),
            SpdyError::HeaderBlock(_)
        ));
    }

    #[test]
    fn big_payloads_are_split() {
        let payload = vec![7u8; MAX_DATA + 10];
        let wire = data_frames(5, true, &payload);
        let mut r = FrameReader::new();
        r.push(&wire);
        let frames = read_all(&mut r).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[0].kind,
            FrameKind::Data {
                stream: 5,
                fin: false
            }
        );
        assert_eq!(frames[1].payload().len(), 10);
        assert_eq!(
            frames[1].kind,
            FrameKind::Data {
                stream: 5,
                fin: true
            }
        );
    }

    fn session() -> Vec<u8> {
        let mut z = Deflater::new();
        let mut wire = syn_stream(&mut z, 1, &[("streamtype", "error")]);
        wire.extend(syn_stream(
            &mut z,
            3,
            &[("streamtype", "data"), ("port", "8080"), ("requestid", "0")],
        ));
        wire.extend(data_frames(3, false, b"GET / HTTP/1.0\r\n\r\n"));
        wire.extend(control(PING, 0, &1u32.to_be_bytes()));
        wire.extend(data_frames(3, true, b""));
        wire
    }

    proptest! {
        /// The same frames come out of any chunking of the same bytes.
        #[test]
        fn any_chunking_reads_the_same(cuts in proptest::collection::vec(0usize..200, 0..12)) {
            let wire = session();
            let mut whole = FrameReader::new();
            whole.push(&wire);
            let expected: Vec<FrameKind> = read_all(&mut whole).unwrap().into_iter().map(|f| f.kind).collect();
            let mut r = FrameReader::new();
            let mut got = vec![];
            let mut at = 0;
            let mut cuts = cuts.clone();
            cuts.sort_unstable();
            for c in cuts.into_iter().chain([wire.len()]) {
                let c = c.min(wire.len()).max(at);
                r.push(&wire[at..c]);
                at = c;
                got.extend(read_all(&mut r).unwrap().into_iter().map(|f| f.kind));
            }
            prop_assert_eq!(got, expected);
        }

        /// Arbitrary bytes, alone or after a good start, end in frames or
        /// an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(junk in proptest::collection::vec(any::<u8>(), 0..600), after_good in any::<bool>()) {
            let mut r = FrameReader::new();
            if after_good {
                r.push(&session()[..40]);
            }
            r.push(&junk);
            for _ in 0..64 {
                match r.next_frame() {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }

        /// Arbitrary header blocks parse or fail cleanly.
        #[test]
        fn arbitrary_header_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_header_block(&block);
            let _ = HeaderInflater::new().inflate(&block);
        }
    }
}
