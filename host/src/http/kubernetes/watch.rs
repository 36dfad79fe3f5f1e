//! The framing of a JSON watch stream: one event per line. Each complete
//! line is masked as it arrives (`objects::mask_event`), so a watch that
//! runs for hours streams without being held; only the current, unfinished
//! event is buffered, up to the connection's JSON limit.

use super::objects::{self, ObjectError};
use crate::mask::CompiledMasks;

pub struct WatchMasker {
    pending: Vec<u8>,
    limit: usize,
    pub masked: u64,
}

impl WatchMasker {
    pub fn new(limit: usize) -> Self {
        Self {
            pending: Vec::new(),
            limit,
            masked: 0,
        }
    }

    /// Appends the masked form of every event `chunk` completes to `out`.
    pub fn push(
        &mut self,
        chunk: &[u8],
        masks: &CompiledMasks,
        out: &mut Vec<u8>,
    ) -> Result<(), ObjectError> {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            rest = &tail[1..];
            if self.pending.is_empty() {
                self.emit(line, masks, out)?;
            } else {
                self.pending.extend_from_slice(line);
                let whole = std::mem::take(&mut self.pending);
                self.check_size(whole.len())?;
                self.emit(&whole, masks, out)?;
            }
        }
        self.pending.extend_from_slice(rest);
        self.check_size(self.pending.len())
    }

    /// The end of the stream: a last event without its newline is masked
    /// too; a truncated one is an error, never passed on.
    pub fn finish(&mut self, masks: &CompiledMasks, out: &mut Vec<u8>) -> Result<(), ObjectError> {
        let last = std::mem::take(&mut self.pending);
        if last.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let (masked, n) = objects::mask_event(&last, masks)?;
        self.masked += n as u64;
        out.extend_from_slice(&masked);
        Ok(())
    }

    fn emit(
        &mut self,
        line: &[u8],
        masks: &CompiledMasks,
        out: &mut Vec<u8>,
    ) -> Result<(), ObjectError> {
        self.check_size(line.len())?;
        let (masked, n) = objects::mask_event(line, masks)?;
        self.masked += n as u64;
        out.extend_from_slice(&masked);
        out.push(b'\n');
        Ok(())
    }

    fn check_size(&self, len: usize) -> Result<(), ObjectError> {
        if len > self.limit {
            return Err(ObjectError::TooLarge {
                what: "watch event",
                limit: self.limit,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};
    use proptest::prelude::*;
    use serde_json::json;

    fn masks() -> std::sync::Arc<CompiledMasks> {
        let rules = vec![MaskRule {
            target: MaskTarget::JsonPointer("/data/*".into()),
            method: MaskMethod::Redact,
        }];
        MaskCompiler::new(b"k".to_vec())
            .compile(&rules, &[])
            .unwrap()
    }

    fn stream(n: usize) -> Vec<u8> {
        let mut s = Vec::new();
        for i in 0..n {
            let ev = json!({"type": "ADDED", "object": {"kind": "Secret", "metadata": {"name": format!("s{i}"), "resourceVersion": i.to_string()}, "data": {"k": "c2VjcmV0LXZhbHVl"}}});
            s.extend(serde_json::to_vec(&ev).unwrap());
            s.push(b'\n');
        }
        s
    }

    proptest! {
        /// However the stream is cut into chunks, the output is the same,
        /// every event is masked and no secret value gets through.
        #[test]
        fn chunking_does_not_matter(cuts in prop::collection::vec(1usize..200, 0..20), n in 1usize..6) {
            let m = masks();
            let input = stream(n);
            let mut whole = Vec::new();
            let mut w = WatchMasker::new(1 << 20);
            w.push(&input, &m, &mut whole).unwrap();
            w.finish(&m, &mut whole).unwrap();

            let mut out = Vec::new();
            let mut w = WatchMasker::new(1 << 20);
            let mut rest = &input[..];
            for c in cuts {
                let c = c.min(rest.len());
                let (a, b) = rest.split_at(c);
                w.push(a, &m, &mut out).unwrap();
                rest = b;
            }
            w.push(rest, &m, &mut out).unwrap();
            w.finish(&m, &mut out).unwrap();
            prop_assert_eq!(&out, &whole);
            prop_assert_eq!(w.masked, n as u64);
            prop_assert!(!String::from_utf8_lossy(&out).contains("c2VjcmV0LXZhbHVl"));
        }

        /// Arbitrary bytes never panic and never come out unmasked as a
        /// valid event carrying the secret.
        #[test]
        fn arbitrary_bytes_are_masked_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let m = masks();
            let mut out = Vec::new();
            let mut w = WatchMasker::new(256);
            let _ = w.push(&bytes, &m, &mut out).and_then(|_| w.finish(&m, &mut out));
        }
    }

    #[test]
    fn truncated_and_oversized_events_are_errors() {
        let m = masks();
        let mut s = stream(2);
        s.truncate(s.len() - 10);
        let mut out = Vec::new();
        let mut w = WatchMasker::new(1 << 20);
        w.push(&s, &m, &mut out).unwrap();
        assert!(matches!(
            w.finish(&m, &mut out),
            Err(ObjectError::BadEvent(_))
        ));

        let mut w = WatchMasker::new(64);
        let err = w.push(&stream(1), &m, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("at most 64 bytes per watch event"),
            "{err}"
        );
    }
}
