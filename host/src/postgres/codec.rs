//! The PostgreSQL v3 wire format: framing, decoding what clients send, and
//! encoding the few backend messages Gatehouse writes itself. Everything a
//! client or upstream sends passes through [`decode_frontend`] or the small
//! backend decoders here, which never panic on any input (a property test
//! feeds them arbitrary bytes).

use bytes::{BufMut, Bytes, BytesMut};

/// Startup packet codes (the second int32 of an untyped packet).
pub const PROTOCOL_3_0: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("message '{tag}' of {len} bytes is larger than the {max}-byte limit")]
    TooLarge { tag: char, len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> WireError {
    WireError::Malformed(what.into())
}

/// A typed message: its tag and body (without the length word).
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    pub body: Bytes,
}

impl Frame {
    pub fn new(tag: u8, body: impl Into<Bytes>) -> Frame {
        Frame {
            tag,
            body: body.into(),
        }
    }

    /// Appends the frame in wire form.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(5 + self.body.len());
        out.put_u8(self.tag);
        out.put_i32(self.body.len() as i32 + 4);
        out.put_slice(&self.body);
    }
}

/// A cursor over a message body that fails instead of panicking.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(malformed(format!(
                "needed {n} more bytes, {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A NUL-terminated string.
    pub fn cstr(&mut self) -> Result<&'a str, WireError> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("string without a terminating NUL"))?;
        let s = std::str::from_utf8(&rest[..end]).map_err(|_| malformed("string is not UTF-8"))?;
        self.pos += end + 1;
        Ok(s)
    }

    /// A length-prefixed value; -1 is NULL.
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(malformed(format!("negative value length {len}")));
        }
        self.bytes(len as usize).map(Some)
    }

    fn count(&mut self, what: &str) -> Result<usize, WireError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(malformed(format!("negative {what} count {n}")));
        }
        Ok(n as usize)
    }

    pub fn end(&self, what: &str) -> Result<(), WireError> {
        if self.remaining() != 0 {
            return Err(malformed(format!(
                "{} trailing bytes after {what}",
                self.remaining()
            )));
        }
        Ok(())
    }
}

/// What a client sends once the session is up.
#[derive(Debug, PartialEq)]
pub enum FrontendMessage<'a> {
    Query(&'a str),
    Parse {
        name: &'a str,
        sql: &'a str,
        param_types: Vec<i32>,
    },
    Bind {
        portal: &'a str,
        statement: &'a str,
        param_formats: Vec<i16>,
        params: Vec<Option<&'a [u8]>>,
        result_formats: Vec<i16>,
    },
    /// `kind` is `S` (statement) or `P` (portal).
    Describe {
        kind: u8,
        name: &'a str,
    },
    Execute {
        portal: &'a str,
        max_rows: i32,
    },
    Close {
        kind: u8,
        name: &'a str,
    },
    Sync,
    Flush,
    Terminate,
    CopyData,
    CopyDone,
    CopyFail(&'a str),
    FunctionCall,
    /// Password, SASL initial response or SASL response (all tag `p`).
    Password(&'a [u8]),
}

/// Decodes one frontend message. Unknown tags are an error, as in PostgreSQL.
pub fn decode_frontend(tag: u8, body: &[u8]) -> Result<FrontendMessage<'_>, WireError> {
    let mut c = Cursor::new(body);
    let msg = match tag {
        b'Q' => {
            let sql = c.cstr()?;
            c.end("Query")?;
            FrontendMessage::Query(sql)
        }
        b'P' => {
            let name = c.cstr()?;
            let sql = c.cstr()?;
            let n = c.count("parameter type")?;
            let mut param_types = Vec::with_capacity(n.min(c.remaining() / 4));
            for _ in 0..n {
                param_types.push(c.i32()?);
            }
            c.end("Parse")?;
            FrontendMessage::Parse {
                name,
                sql,
                param_types,
            }
        }
        b'B' => {
            let portal = c.cstr()?;
            let statement = c.cstr()?;
            let nf = c.count("parameter format")?;
            let mut param_formats = Vec::with_capacity(nf.min(c.remaining() / 2));
            for _ in 0..nf {
                param_formats.push(c.i16()?);
            }
            let np = c.count("parameter")?;
            let mut params = Vec::with_capacity(np.min(c.remaining() / 4));
            for _ in 0..np {
                params.push(c.value()?);
            }
            let nr = c.count("result format")?;
            let mut result_formats = Vec::with_capacity(nr.min(c.remaining() / 2));
            for _ in 0..nr {
                result_formats.push(c.i16()?);
            }
            c.end("Bind")?;
            if nf > 1 && nf != np {
                return Err(malformed(format!(
                    "Bind has {nf} parameter formats for {np} parameters"
                )));
            }
            FrontendMessage::Bind {
                portal,
                statement,
                param_formats,
                params,
                result_formats,
            }
        }
        b'D' | b'C' => {
            let kind = c.u8()?;
            if kind != b'S' && kind != b'P' {
                return Err(malformed(format!(
                    "{} target must be 'S' or 'P', not {:?}",
                    if tag == b'D' { "Describe" } else { "Close" },
                    kind as char
                )));
            }
            let name = c.cstr()?;
            c.end("Describe/Close")?;
            if tag == b'D' {
                FrontendMessage::Describe { kind, name }
            } else {
                FrontendMessage::Close { kind, name }
            }
        }
        b'E' => {
            let portal = c.cstr()?;
            let max_rows = c.i32()?;
            c.end("Execute")?;
            FrontendMessage::Execute { portal, max_rows }
        }
        b'S' => FrontendMessage::Sync,
        b'H' => FrontendMessage::Flush,
        b'X' => FrontendMessage::Terminate,
        b'd' => FrontendMessage::CopyData,
        b'c' => FrontendMessage::CopyDone,
        b'f' => FrontendMessage::CopyFail(c.cstr()?),
        b'F' => FrontendMessage::FunctionCall,
        b'p' => FrontendMessage::Password(body),
        other => {
            return Err(malformed(format!(
                "unknown message type {:?}",
                other as char
            )));
        }
    };
    Ok(msg)
}

/// The first packet of a connection.
#[derive(Debug, PartialEq)]
pub enum StartupPacket {
    Ssl,
    GssEnc,
    Cancel {
        process_id: i32,
        secret: Vec<u8>,
    },
    Startup {
        minor: u16,
        params: Vec<(String, String)>,
    },
}

/// Decodes a startup packet body (after the length word).
pub fn decode_startup(body: &[u8]) -> Result<StartupPacket, WireError> {
    let mut c = Cursor::new(body);
    let code = c.i32()?;
    match code {
        SSL_REQUEST => Ok(StartupPacket::Ssl),
        GSSENC_REQUEST => Ok(StartupPacket::GssEnc),
        CANCEL_REQUEST => {
            let process_id = c.i32()?;
            let secret = c.bytes(c.remaining())?.to_vec();
            if secret.is_empty() || secret.len() > 256 {
                return Err(malformed("cancel key of a wrong length"));
            }
            Ok(StartupPacket::Cancel { process_id, secret })
        }
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            loop {
                let key = c.cstr()?;
                if key.is_empty() {
                    break;
                }
                let value = c.cstr()?;
                params.push((key.to_string(), value.to_string()));
            }
            c.end("StartupMessage")?;
            Ok(StartupPacket::Startup {
                minor: (v & 0xffff) as u16,
                params,
            })
        }
        v => Err(malformed(format!(
            "unsupported protocol version {}.{}; Gatehouse speaks 3.0",
            v >> 16,
            v & 0xffff
        ))),
    }
}

/// A `SASLInitialResponse` (tag `p` during a SASL login): the mechanism the
/// client chose and its first message, `None` when it sent none (length -1).
/// The `SASLResponse`s that follow are the bare message body.
pub fn decode_sasl_initial(body: &[u8]) -> Result<(&str, Option<&[u8]>), WireError> {
    let mut c = Cursor::new(body);
    let mechanism = c.cstr()?;
    let data = c.value()?;
    c.end("SASLInitialResponse")?;
    Ok((mechanism, data))
}

/// One column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDescription {
    pub name: String,
    pub table_oid: u32,
    pub column: i16,
    pub type_oid: u32,
    pub type_size: i16,
    pub type_modifier: i32,
    pub format: i16,
}

pub fn decode_row_description(body: &[u8]) -> Result<Vec<FieldDescription>, WireError> {
    let mut c = Cursor::new(body);
    let n = c.count("field")?;
    let mut fields = Vec::with_capacity(n.min(c.remaining() / 19));
    for _ in 0..n {
        fields.push(FieldDescription {
            name: c.cstr()?.to_string(),
            table_oid: c.i32()? as u32,
            column: c.i16()?,
            type_oid: c.i32()? as u32,
            type_size: c.i16()?,
            type_modifier: c.i32()?,
            format: c.i16()?,
        });
    }
    c.end("RowDescription")?;
    Ok(fields)
}

/// The values of a `DataRow`, borrowed from its body.
pub fn decode_data_row(body: &[u8]) -> Result<Vec<Option<&[u8]>>, WireError> {
    let mut c = Cursor::new(body);
    let n = c.count("column")?;
    let mut values = Vec::with_capacity(n.min(c.remaining() / 4));
    for _ in 0..n {
        values.push(c.value()?);
    }
    c.end("DataRow")?;
    Ok(values)
}

pub fn encode_data_row<'a>(values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) -> Frame {
    let mut b = BytesMut::new();
    b.put_i16(values.len() as i16);
    for v in values {
        match v {
            Some(v) => {
                b.put_i32(v.len() as i32);
                b.put_slice(v);
            }
            None => b.put_i32(-1),
        }
    }
    Frame::new(b'D', b.freeze())
}

/// The fields of an `ErrorResponse` or `NoticeResponse`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notice {
    pub fields: Vec<(u8, String)>,
}

impl Notice {
    /// An error or notice with severity, SQLSTATE and message.
    pub fn new(severity: &str, code: &str, message: impl Into<String>) -> Notice {
        Notice {
            fields: vec![
                (b'S', severity.to_string()),
                (b'V', severity.to_string()),
                (b'C', code.to_string()),
                (b'M', message.into()),
            ],
        }
    }

    pub fn with(mut self, field: u8, value: impl Into<String>) -> Notice {
        self.fields.push((field, value.into()));
        self
    }

    pub fn get(&self, field: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }

    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }

    pub fn decode(body: &[u8]) -> Result<Notice, WireError> {
        let mut c = Cursor::new(body);
        let mut fields = Vec::new();
        loop {
            let f = c.u8()?;
            if f == 0 {
                break;
            }
            // Upstream text is not always valid UTF-8 (client_encoding); keep it readable.
            let rest = &body[c.pos..];
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| malformed("notice field without a terminating NUL"))?;
            fields.push((f, String::from_utf8_lossy(&rest[..end]).into_owned()));
            c.pos += end + 1;
        }
        Ok(Notice { fields })
    }

    /// As an `ErrorResponse` (`E`) or `NoticeResponse` (`N`).
    pub fn frame(&self, tag: u8) -> Frame {
        let mut b = BytesMut::new();
        for (f, v) in &self.fields {
            b.put_u8(*f);
            put_cstr(&mut b, v);
        }
        b.put_u8(0);
        Frame::new(tag, b.freeze())
    }
}

pub fn put_cstr(b: &mut BytesMut, s: &str) {
    // A NUL inside would end the string early; PostgreSQL strings cannot hold one.
    for part in s.split('\0') {
        b.put_slice(part.as_bytes());
    }
    b.put_u8(0);
}

/// Backend messages Gatehouse writes on its own.
pub mod backend {
    use super::*;

    pub fn auth_ok() -> Frame {
        Frame::new(b'R', Bytes::from_static(&[0, 0, 0, 0]))
    }

    pub fn auth_cleartext() -> Frame {
        Frame::new(b'R', Bytes::from_static(&[0, 0, 0, 3]))
    }

    pub fn auth_sasl(mechanisms: &[&str]) -> Frame {
        let mut b = BytesMut::new();
        b.put_i32(10);
        for m in mechanisms {
            put_cstr(&mut b, m);
        }
        b.put_u8(0);
        Frame::new(b'R', b.freeze())
    }

    pub fn auth_sasl_continue(data: &[u8]) -> Frame {
        let mut b = BytesMut::new();
        b.put_i32(11);
        b.put_slice(data);
        Frame::new(b'R', b.freeze())
    }

    pub fn auth_sasl_final(data: &[u8]) -> Frame {
        let mut b = BytesMut::new();
        b.put_i32(12);
        b.put_slice(data);
        Frame::new(b'R', b.freeze())
    }

    pub fn backend_key_data(process_id: i32, secret: i32) -> Frame {
        let mut b = BytesMut::new();
        b.put_i32(process_id);
        b.put_i32(secret);
        Frame::new(b'K', b.freeze())
    }

    pub fn parameter_status(name: &str, value: &str) -> Frame {
        let mut b = BytesMut::new();
        put_cstr(&mut b, name);
        put_cstr(&mut b, value);
        Frame::new(b'S', b.freeze())
    }

    pub fn ready_for_query(status: u8) -> Frame {
        Frame::new(b'Z', Bytes::copy_from_slice(&[status]))
    }

    /// Tells a client asking for 3.x (x > 0) that 3.0 is what it gets, and
    /// which `_pq_.` options were not recognised.
    pub fn negotiate_protocol_version(unrecognised: &[String]) -> Frame {
        let mut b = BytesMut::new();
        b.put_i32(PROTOCOL_3_0);
        b.put_i32(unrecognised.len() as i32);
        for o in unrecognised {
            put_cstr(&mut b, o);
        }
        Frame::new(b'v', b.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bind_round_trip_fields() {
        let mut b = BytesMut::new();
        put_cstr(&mut b, "p1");
        put_cstr(&mut b, "s1");
        b.put_i16(1);
        b.put_i16(0);
        b.put_i16(2);
        b.put_i32(3);
        b.put_slice(b"abc");
        b.put_i32(-1);
        b.put_i16(1);
        b.put_i16(1);
        let m = decode_frontend(b'B', &b).unwrap();
        assert_eq!(
            m,
            FrontendMessage::Bind {
                portal: "p1",
                statement: "s1",
                param_formats: vec![0],
                params: vec![Some(&b"abc"[..]), None],
                result_formats: vec![1],
            }
        );
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        assert!(decode_frontend(b'Q', b"select 1").is_err());
        assert!(decode_frontend(b'Q', b"select 1\0x").is_err());
        assert!(decode_frontend(b'E', b"\0\0\0").is_err());
        assert!(decode_frontend(b'?', b"").is_err());
        assert!(decode_data_row(&[0, 1, 0xff, 0xff, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn startup_packets() {
        let mut b = BytesMut::new();
        b.put_i32(PROTOCOL_3_0);
        put_cstr(&mut b, "user");
        put_cstr(&mut b, "bot");
        b.put_u8(0);
        assert_eq!(
            decode_startup(&b).unwrap(),
            StartupPacket::Startup {
                minor: 0,
                params: vec![("user".into(), "bot".into())]
            }
        );
        assert_eq!(
            decode_startup(&SSL_REQUEST.to_be_bytes()).unwrap(),
            StartupPacket::Ssl
        );
        assert!(decode_startup(&(2i32 << 16).to_be_bytes()).is_err());
    }

    #[test]
    fn data_row_round_trip() {
        let f = encode_data_row([Some(&b"x"[..]), None, Some(&b""[..])].into_iter());
        let v = decode_data_row(&f.body).unwrap();
        assert_eq!(v, vec![Some(&b"x"[..]), None, Some(&b""[..])]);
    }

    /// Every way of reading `bytes` the proxy has, none of which may panic.
    fn decode_all_ways(bytes: &[u8]) {
        let _ = decode_startup(bytes.get(4..).unwrap_or(&[]));
        if let Some((&tag, rest)) = bytes.split_first() {
            let body = rest.get(4..).unwrap_or(&[]);
            let _ = decode_frontend(tag, body);
            let _ = decode_row_description(body);
            let _ = decode_data_row(body);
            let _ = Notice::decode(body);
        }
    }

    /// The kept corpus (`host/fuzz-corpus/pg`): each seed, each of its
    /// truncations and each single-byte corruption.
    #[test]
    fn corpus_seeds_truncations_and_corruptions_never_panic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus/pg");
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
            let path = entry.expect("a corpus entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("bin") {
                continue;
            }
            let seed = std::fs::read(&path).expect("a seed");
            seeds += 1;
            for n in 0..=seed.len() {
                decode_all_ways(&seed[..n]);
            }
            for i in 0..seed.len() {
                for flip in [0xff_u8, 0x80, 0x01] {
                    let mut m = seed.clone();
                    m[i] ^= flip;
                    decode_all_ways(&m);
                }
            }
        }
        assert!(seeds >= 10, "the corpus in {} went missing", dir.display());
    }

    #[test]
    fn sasl_initial_response() {
        let mut b = BytesMut::new();
        put_cstr(&mut b, "SCRAM-SHA-256");
        b.put_i32(3);
        b.put_slice(b"n,,");
        assert_eq!(
            decode_sasl_initial(&b).unwrap(),
            ("SCRAM-SHA-256", Some(&b"n,,"[..]))
        );
        let mut none = BytesMut::new();
        put_cstr(&mut none, "SCRAM-SHA-256");
        none.put_i32(-1);
        assert_eq!(decode_sasl_initial(&none).unwrap().1, None);
        assert!(decode_sasl_initial(&b[..b.len() - 1]).is_err());
        b.put_u8(0);
        assert!(decode_sasl_initial(&b).is_err());
        assert!(decode_sasl_initial(b"SCRAM-SHA-256").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn decoders_never_panic(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frontend(tag, &body);
            let _ = decode_startup(&body);
            let _ = decode_sasl_initial(&body);
            let _ = decode_row_description(&body);
            let _ = decode_data_row(&body);
            let _ = Notice::decode(&body);
        }

        #[test]
        fn structured_bind_never_panics(
            counts in proptest::collection::vec(any::<i16>(), 3),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut b = BytesMut::new();
            put_cstr(&mut b, "");
            put_cstr(&mut b, "");
            for c in counts {
                b.put_i16(c);
                b.put_slice(&tail);
            }
            let _ = decode_frontend(b'B', &b);
        }
    }
}
