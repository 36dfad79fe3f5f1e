//! Server-sent events, decoded incrementally as the WHATWG spec reads them
//! and encoded back, for every adapter that reads an event stream (LLM
//! completions, MCP answers). Lines end in CRLF, LF or CR; `data` lines join
//! with LF; a blank line ends an event; a comment line is kept as an item so
//! keep-alives still flow.
//!
//! The decoder yields what a relay must reproduce, and nothing more:
//!
//! - the same items however the bytes are chunked (property-tested);
//! - bounded: one line, and one event's data, are at most `limit` bytes. An
//!   event over it is skipped to its end and reported as
//!   [`Item::Oversized`] with its first bytes (so the answer it carried can
//!   still be named), never held whole;
//! - a stream that ends inside an event is [`SseError::Truncated`], so a
//!   half event never passes unchecked;
//! - a block with fields but no `data` line (an `id:` alone) is still an
//!   item, with empty data and `has_data` false: the spec dispatches no
//!   event for it, but it moves the client's last event id, so a relay
//!   passes it on, and writes it back without a data line.

/// One decoded unit of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A comment line (`: keep-alive`), without its colon.
    Comment(String),
    /// An event over the limit, dropped; the start of its data.
    Oversized(String),
}

/// How much of an oversized event's data is kept.
pub const OVERSIZED_HEAD: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// `event:`; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data` lines joined with LF; empty when the block had none.
    pub data: String,
    /// Whether the block had a data line (an empty one counts). Clients
    /// dispatch only such blocks; the others only set the last event id.
    pub has_data: bool,
    pub id: Option<String>,
    pub retry: Option<u64>,
}

impl Event {
    pub fn message(data: String) -> Event {
        Event {
            data,
            has_data: true,
            ..Event::default()
        }
    }

    /// An event of type `kind` (`None`: `message`) carrying `data`.
    pub fn named(kind: Option<String>, data: String) -> Event {
        Event {
            event: kind,
            ..Event::message(data)
        }
    }

    /// `message` unless the event names another type.
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("the upstream's event stream is not UTF-8")]
    NotUtf8,
    #[error("the upstream's event stream ended in the middle of an event")]
    Truncated,
}

/// The incremental decoder.
#[derive(Debug)]
pub struct Decoder {
    line: Vec<u8>,
    event: Event,
    /// Whether the event being read has any field yet.
    started: bool,
    /// The last byte seen was a CR, so a following LF ends nothing.
    after_cr: bool,
    /// The current line went over the limit; only its head is kept.
    line_over: bool,
    /// The current event went over the limit: lines are dropped until it ends.
    skipping: Option<String>,
    limit: usize,
}

impl Decoder {
    /// `limit` bounds one line and one event's data.
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            line: Vec::new(),
            event: Event::default(),
            started: false,
            after_cr: false,
            line_over: false,
            skipping: None,
            limit,
        }
    }

    /// Feeds a chunk; appends every item it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Item>) -> Result<(), SseError> {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() >= self.limit.max(OVERSIZED_HEAD) {
                        self.line_over = true;
                    } else {
                        self.line.push(b);
                    }
                }
            }
        }
        Ok(())
    }

    /// The stream ended: fine between events, truncated inside one.
    pub fn finish(&self) -> Result<(), SseError> {
        if self.started || self.skipping.is_some() || !self.line.is_empty() || self.line_over {
            Err(SseError::Truncated)
        } else {
            Ok(())
        }
    }

    fn end_line(&mut self, out: &mut Vec<Item>) -> Result<(), SseError> {
        let mut line = std::mem::take(&mut self.line);
        let line_over = std::mem::take(&mut self.line_over);
        if line_over {
            // Cut at a character boundary; the head is only for naming.
            line.truncate(OVERSIZED_HEAD);
            while std::str::from_utf8(&line).is_err() && !line.is_empty() {
                line.pop();
            }
        }
        let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.is_empty() && !line_over {
            if let Some(head) = self.skipping.take() {
                self.started = false;
                self.event = Event::default();
                out.push(Item::Oversized(head));
            } else if self.started {
                self.started = false;
                let mut event = std::mem::take(&mut self.event);
                // The spec drops the last LF that joining appended.
                if event.data.ends_with('\n') {
                    event.data.pop();
                }
                out.push(Item::Event(event));
            }
            return Ok(());
        }
        if self.skipping.is_some() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix(':') {
            if !line_over {
                out.push(Item::Comment(comment.to_string()));
            }
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        self.started = true;
        if line_over || (field == "data" && self.event.data.len() + value.len() + 1 > self.limit) {
            let mut head = std::mem::take(&mut self.event.data);
            if field == "data" {
                head.push_str(value);
            }
            let mut end = head.len().min(OVERSIZED_HEAD);
            while !head.is_char_boundary(end) {
                end -= 1;
            }
            head.truncate(end);
            self.skipping = Some(head);
            return Ok(());
        }
        match field {
            "data" => {
                self.event.data.push_str(value);
                self.event.data.push('\n');
                self.event.has_data = true;
            }
            "event" => self.event.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.event.id = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    self.event.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Writes `item` in the wire form a decoder reads back as the same item
/// (`\n` line ends, a blank line after an event).
pub fn encode(item: &Item, out: &mut Vec<u8>) {
    match item {
        // Never written: an oversized event is dropped, not forwarded.
        Item::Oversized(_) => {}
        Item::Comment(c) => {
            for line in split_lines(c) {
                out.extend_from_slice(b":");
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\n");
            }
        }
        Item::Event(e) => encode_event(e, out),
    }
}

/// Writes one event (see [`encode`]).
pub fn encode_event(e: &Event, out: &mut Vec<u8>) {
    if let Some(kind) = &e.event {
        field(out, "event", kind);
    }
    if let Some(id) = &e.id {
        field(out, "id", id);
    }
    if let Some(retry) = e.retry {
        field(out, "retry", &retry.to_string());
    }
    if e.has_data || !e.data.is_empty() {
        for line in split_lines(&e.data) {
            field(out, "data", line);
        }
    }
    out.extend_from_slice(b"\n");
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\n");
}

/// Splits on every line end the decoder recognises (so a CR inside data is
/// never written raw).
fn split_lines(s: &str) -> impl Iterator<Item = &str> {
    s.split("\r\n").flat_map(|l| l.split(['\n', '\r']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> (Vec<Item>, Result<(), SseError>) {
        let mut d = Decoder::new(1 << 16);
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = d.push(c, &mut out) {
                return (out, Err(e));
            }
        }
        let end = d.finish();
        (out, end)
    }

    /// The items of `bytes` cut at `cuts`, or the first error.
    fn decode_cut(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Item>, SseError> {
        let mut d = Decoder::new(1 << 20);
        let mut out = vec![];
        let mut at = 0;
        for &c in cuts {
            let c = c.min(bytes.len()).max(at);
            d.push(&bytes[at..c], &mut out)?;
            at = c;
        }
        d.push(&bytes[at..], &mut out)?;
        d.finish()?;
        Ok(out)
    }

    fn event(item: &Item) -> &Event {
        match item {
            Item::Event(e) => e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn reads_the_spec_examples() {
        let (items, end) = decode_all(&[
            b": ping\r\nevent: endpoint\r\ndata: /messages/?session_id=1\r\n\r\n",
            b"data: first\ndata: second\nid: 7\n\n",
            b"data\r\rdata:x\n\n",
        ]);
        assert_eq!(end, Ok(()));
        assert_eq!(items[0], Item::Comment(" ping".into()));
        let e = event(&items[1]);
        assert_eq!(
            (e.kind(), e.data.as_str()),
            ("endpoint", "/messages/?session_id=1")
        );
        let e = event(&items[2]);
        assert_eq!(
            (e.data.as_str(), e.id.as_deref()),
            ("first\nsecond", Some("7"))
        );
        assert_eq!(event(&items[3]).data, "");
        assert_eq!(event(&items[4]).data, "x");
    }

    #[test]
    fn provider_framings_read_alike() {
        // OpenAI: bare data lines, `[DONE]`; Anthropic: named events with
        // CRLF line ends and a `retry`.
        let text = b": keep-alive\r\nevent: delta\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nid: 7\nretry: 10\ndata\n\rdata: [DONE]\n\n";
        let items = decode_cut(text, &[]).unwrap();
        assert_eq!(items.len(), 5, "{items:?}");
        assert_eq!(items[0], Item::Comment(" keep-alive".into()));
        assert_eq!(event(&items[1]).event.as_deref(), Some("delta"));
        assert_eq!(event(&items[1]).data, "{\"a\":1}");
        assert_eq!(event(&items[2]).data, "x\ny");
        let e = event(&items[3]);
        assert_eq!(
            (e.id.as_deref(), e.retry, e.data.as_str()),
            (Some("7"), Some(10), "")
        );
        assert_eq!(event(&items[4]).data, "[DONE]");
    }

    #[test]
    fn an_id_alone_is_kept_for_the_client() {
        let items = decode_cut(b"id: 42\n\ndata: x\n\n", &[]).unwrap();
        let e = event(&items[0]);
        assert_eq!((e.id.as_deref(), e.data.as_str()), (Some("42"), ""));
        let mut wire = Vec::new();
        encode(&items[0], &mut wire);
        assert_eq!(wire, b"id: 42\n\n");
    }

    #[test]
    fn a_stream_cut_inside_an_event_is_truncated() {
        let (items, end) = decode_all(&[b"data: {\"jsonrpc\":\"2.0\",\"id\":1,"]);
        assert!(items.is_empty());
        assert_eq!(end, Err(SseError::Truncated));
        let (_, end) = decode_all(&[b"data: x\n"]);
        assert_eq!(end, Err(SseError::Truncated));
        assert!(decode_cut(b"data: 1\n\n", &[]).is_ok());
    }

    #[test]
    fn oversized_events_are_skipped_and_named() {
        let mut d = Decoder::new(16);
        let mut out = Vec::new();
        d.push(
            b"data: {\"id\":7,\"result\":\"0123456789\"}\n\ndata: ok\n\n",
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        let Item::Oversized(head) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(head.starts_with("{\"id\":7"), "{head}");
        assert_eq!(out[1], Item::Event(Event::message("ok".into())));
        let mut d = Decoder::new(8);
        let mut out = Vec::new();
        d.push(b"data: 0123\ndata: 456789\n\n", &mut out).unwrap();
        assert!(
            matches!(&out[0], Item::Oversized(h) if h == "0123\n456789"),
            "{out:?}"
        );
        assert_eq!(d.finish(), Ok(()));
        let mut d = Decoder::new(8);
        d.push(b"data: 0123456789", &mut out).unwrap();
        assert_eq!(d.finish(), Err(SseError::Truncated));
    }

    #[test]
    fn a_long_line_is_never_held_whole() {
        // A line with no end at all: memory stays at the head.
        let mut d = Decoder::new(64);
        let mut out = Vec::new();
        for _ in 0..1000 {
            d.push(&[b'x'; 1024], &mut out).unwrap();
        }
        assert!(d.line.len() <= OVERSIZED_HEAD, "{}", d.line.len());
        assert_eq!(d.finish(), Err(SseError::Truncated));
        d.push(b"\n\n", &mut out).unwrap();
        assert!(matches!(&out[..], [Item::Oversized(_)]), "{out:?}");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        let mut d = Decoder::new(64);
        assert_eq!(
            d.push(b"data: \xff\n\n", &mut vec![]),
            Err(SseError::NotUtf8)
        );
    }

    fn arb_item() -> impl Strategy<Value = Item> {
        prop_oneof![
            "[^\r\n]{0,12}".prop_map(Item::Comment),
            (
                proptest::option::of("[a-z_.]{1,12}"),
                "(.|\n){0,40}",
                proptest::option::of("[a-z0-9]{0,6}"),
                proptest::option::of(0u64..100_000),
            )
                .prop_map(|(event, data, id, retry)| Item::Event(Event {
                    event,
                    data,
                    has_data: true,
                    id,
                    retry
                })),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let cut = cut.min(bytes.len());
            let _ = decode_all(&[&bytes[..cut], &bytes[cut..]]);
            let mut d = Decoder::new(16);
            let _ = d.push(&bytes, &mut vec![]);
            let _ = d.finish();
        }

        /// Any chunking of the same bytes gives the same items (or error).
        #[test]
        fn chunking_does_not_matter(
            text in proptest::collection::vec(prop_oneof![
                Just(b"data: a\n".to_vec()), Just(b"data: \xc3\xa9\r\n".to_vec()),
                Just(b"\n".to_vec()), Just(b"\r\n".to_vec()), Just(b"\r".to_vec()),
                Just(b"event: e\n".to_vec()), Just(b": c\n".to_vec()),
                Just(b"data:{\"x\":\"y z\"}\n".to_vec()), Just(b"id: 1\n".to_vec()),
                Just(b"retry: 5\n".to_vec()), Just(b"\xff".to_vec()),
            ], 0..40),
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let bytes: Vec<u8> = text.concat();
            let mut cuts = cuts;
            cuts.sort();
            prop_assert_eq!(decode_cut(&bytes, &[]), decode_cut(&bytes, &cuts));
        }

        /// Encoded items decode to themselves, however the bytes are split.
        #[test]
        fn items_survive_encoding_and_any_chunking(items in prop::collection::vec(arb_item(), 0..6), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4)) {
            let mut wire = Vec::new();
            for i in &items { encode(i, &mut wire); }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.sort();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&wire[last..p]); last = p; }
            chunks.push(&wire[last..]);
            let (decoded, end) = decode_all(&chunks);
            prop_assert_eq!(end, Ok(()));
            // Data lines join with LF, so CRs inside data come back as LFs.
            let expected: Vec<Item> = items.iter().map(|i| match i {
                Item::Event(e) => Item::Event(Event { data: e.data.replace("\r\n", "\n").replace('\r', "\n"), ..e.clone() }),
                c => c.clone(),
            }).collect();
            prop_assert_eq!(decoded, expected);
        }

        /// Cutting a stream anywhere inside its last event is always noticed.
        #[test]
        fn any_cut_inside_an_event_is_truncated(data in "[a-z]{1,20}", cut in any::<prop::sample::Index>()) {
            let mut wire = Vec::new();
            encode(&Item::Event(Event::message(data)), &mut wire);
            let at = cut.index(wire.len() - 1) + 1; // never the whole event
            let at = at.min(wire.len() - 1);
            let (items, end) = decode_all(&[&wire[..at]]);
            prop_assert!(items.is_empty());
            prop_assert_eq!(end, Err(SseError::Truncated));
        }

        /// However big the events and however cut, nothing over the limit
        /// comes out whole, and what fits comes out intact.
        #[test]
        fn the_limit_holds_under_any_chunking(sizes in prop::collection::vec(0usize..200, 1..6), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let limit = 64;
            let mut wire = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                encode(&Item::Event(Event::message(format!("{i}{}", "x".repeat(*n)))), &mut wire);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.sort();
            let mut d = Decoder::new(limit);
            let mut out = Vec::new();
            let mut last = 0;
            for p in points { d.push(&wire[last..p], &mut out).unwrap(); last = p; }
            d.push(&wire[last..], &mut out).unwrap();
            prop_assert_eq!(d.finish(), Ok(()));
            prop_assert_eq!(out.len(), sizes.len());
            for (i, (item, n)) in out.iter().zip(&sizes).enumerate() {
                let len = i.to_string().len() + n;
                match item {
                    // Data and its joining LF fit in `limit`.
                    Item::Event(e) => prop_assert!(len < limit && e.data.len() == len),
                    Item::Oversized(head) => prop_assert!(len >= limit && head.len() <= OVERSIZED_HEAD),
                    Item::Comment(_) => prop_assert!(false),
                }
            }
        }
    }
}
