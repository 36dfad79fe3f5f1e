//! Server-sent events: an incremental parser that gives the same events
//! however the bytes are chunked, and the encoder that re-frames them.
//! Comments (keep-alives) carry nothing and are dropped.

/// One event as the SSE spec defines it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("the event stream is not UTF-8")]
    NotUtf8,
    #[error("an event of the stream is over {0} bytes")]
    TooLarge(usize),
    #[error("the event stream ended in the middle of an event")]
    Truncated,
}

/// Parses a stream of bytes into events.
pub struct SseParser {
    /// The current, unterminated line.
    line: Vec<u8>,
    /// The event being assembled.
    event: SseEvent,
    /// Whether any field of `event` was seen.
    started: bool,
    /// Whether a data line was seen (an event with no data is not dispatched).
    has_data: bool,
    /// The previous byte was a `\r`: a following `\n` belongs to it.
    after_cr: bool,
    /// Bytes in the current event, for the size limit.
    size: usize,
    max_event: usize,
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        Self {
            line: Vec::new(),
            event: SseEvent::default(),
            started: false,
            has_data: false,
            after_cr: false,
            size: 0,
            max_event,
        }
    }

    /// Feeds bytes; appends every event they complete.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(line, out)?;
                }
                _ => {
                    self.size += 1;
                    if self.size > self.max_event {
                        return Err(SseError::TooLarge(self.max_event));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an event begun but not terminated by a blank line
    /// means the stream was cut.
    pub fn finish(&mut self) -> Result<(), SseError> {
        if !self.line.is_empty() || self.started {
            return Err(SseError::Truncated);
        }
        Ok(())
    }

    fn line_done(&mut self, line: Vec<u8>, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.event));
            }
            self.event = SseEvent::default();
            self.started = false;
            self.has_data = false;
            self.size = 0;
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.event.id = Some(value.to_string()),
            "retry" => {
                if let Ok(n) = value.parse() {
                    self.event.retry = Some(n)
                }
            }
            // Unknown fields are ignored, as the spec says.
            _ => return Ok(()),
        }
        self.started = true;
        Ok(())
    }
}

/// Writes `ev` in canonical framing (`\n` line ends, a blank line after).
pub fn encode(ev: &SseEvent, out: &mut Vec<u8>) {
    if let Some(e) = &ev.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = &ev.id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(r) = ev.retry {
        out.extend_from_slice(format!("retry: {r}\n").as_bytes());
    }
    for line in ev.data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_chunked(bytes: &[u8], cuts: &[usize]) -> Result<Vec<SseEvent>, SseError> {
        let mut p = SseParser::new(1 << 20);
        let mut out = vec![];
        let mut at = 0;
        for &c in cuts {
            let c = c.min(bytes.len()).max(at);
            p.push(&bytes[at..c], &mut out)?;
            at = c;
        }
        p.push(&bytes[at..], &mut out)?;
        p.finish()?;
        Ok(out)
    }

    #[test]
    fn parses_the_spec_forms() {
        let text = b": keep-alive\r\nevent: delta\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nid: 7\nretry: 10\ndata\n\r";
        let evs = parse_chunked(text, &[]).unwrap();
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].event.as_deref(), Some("delta"));
        assert_eq!(evs[0].data, "{\"a\":1}");
        assert_eq!(evs[1].data, "x\ny");
        assert_eq!(evs[2].id.as_deref(), Some("7"));
        assert_eq!(evs[2].retry, Some(10));
        assert_eq!(evs[2].data, "");
    }

    #[test]
    fn a_cut_event_is_truncation() {
        assert_eq!(
            parse_chunked(b"data: {\"a\":1}\n", &[]),
            Err(SseError::Truncated)
        );
        assert_eq!(
            parse_chunked(b"data: {\"a\"", &[]),
            Err(SseError::Truncated)
        );
        assert!(parse_chunked(b"data: 1\n\n", &[]).is_ok());
    }

    #[test]
    fn limits_and_utf8() {
        let mut p = SseParser::new(8);
        assert_eq!(
            p.push(b"data: 0123456789\n\n", &mut vec![]),
            Err(SseError::TooLarge(8))
        );
        let mut p = SseParser::new(64);
        assert_eq!(
            p.push(b"data: \xff\n\n", &mut vec![]),
            Err(SseError::NotUtf8)
        );
    }

    fn arb_event() -> impl Strategy<Value = SseEvent> {
        (
            proptest::option::of("[a-z_.]{1,12}"),
            "[^\r\n]{0,20}(\n[^\r\n]{0,20}){0,3}",
            proptest::option::of("[a-z0-9]{1,6}"),
        )
            .prop_map(|(event, data, id)| SseEvent {
                event,
                data,
                id,
                retry: None,
            })
    }

    proptest! {
        /// Any chunking of the same bytes gives the same events.
        #[test]
        fn chunking_does_not_matter(
            text in proptest::collection::vec(prop_oneof![
                Just(b"data: a\n".to_vec()), Just(b"data: \xc3\xa9\r\n".to_vec()),
                Just(b"\n".to_vec()), Just(b"\r\n".to_vec()), Just(b"\r".to_vec()),
                Just(b"event: e\n".to_vec()), Just(b": c\n".to_vec()),
                Just(b"data:{\"x\":\"y z\"}\n".to_vec()), Just(b"id: 1\n".to_vec()),
            ], 0..40),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let bytes: Vec<u8> = text.concat();
            let mut cuts = cuts;
            cuts.sort();
            let whole = parse_chunked(&bytes, &[]);
            let chunked = parse_chunked(&bytes, &cuts);
            prop_assert_eq!(whole, chunked);
        }

        /// What `encode` writes parses back to the same events, however cut.
        #[test]
        fn encode_round_trips(
            events in proptest::collection::vec(arb_event(), 0..8),
            cuts in proptest::collection::vec(0usize..600, 0..10),
        ) {
            let mut bytes = vec![];
            for e in &events {
                encode(e, &mut bytes);
            }
            let mut cuts = cuts;
            cuts.sort();
            prop_assert_eq!(parse_chunked(&bytes, &cuts).unwrap(), events);
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut p = SseParser::new(128);
            let _ = p.push(&bytes, &mut vec![]);
            let _ = p.finish();
        }
    }
}
