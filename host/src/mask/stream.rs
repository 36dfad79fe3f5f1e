//! Masks a byte stream chunk by chunk. It holds back only the last `window`
//! bytes (the longest possible match), so a secret split across chunk
//! boundaries is still found and memory stays bounded whatever the body size.

use std::sync::Arc;

use super::compile::TextMatcher;
use super::method;

pub struct StreamMasker {
    matcher: Arc<TextMatcher>,
    hash_key: Arc<[u8]>,
    carry: Vec<u8>,
    /// How many matches were masked so far.
    pub masked: u64,
}

impl StreamMasker {
    pub fn new(matcher: Arc<TextMatcher>, hash_key: Arc<[u8]>) -> Self {
        Self {
            matcher,
            hash_key,
            carry: Vec::new(),
            masked: 0,
        }
    }

    /// Feeds a chunk; appends to `out` everything that can no longer be part
    /// of a match.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.carry.extend_from_slice(chunk);
        let buf = std::mem::take(&mut self.carry);
        let window = self.matcher.window;
        let len = buf.len();
        // A match starting at or before `settled` ends inside `buf` whatever follows.
        let settled = len.saturating_sub(window);
        let emitted = self.scan(&buf, out, |start| start <= settled);
        let boundary = emitted.max(settled.min(len));
        out.extend_from_slice(&buf[emitted..boundary]);
        self.carry = buf[boundary..].to_vec();
    }

    /// Ends the stream: everything held back is masked and emitted.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let buf = std::mem::take(&mut self.carry);
        let emitted = self.scan(&buf, out, |_| true);
        out.extend_from_slice(&buf[emitted..]);
    }

    /// Replaces the final matches in `buf`, writing the text before each and
    /// its replacement. Returns how far into `buf` it has written.
    fn scan(&mut self, buf: &[u8], out: &mut Vec<u8>, is_final: impl Fn(usize) -> bool) -> usize {
        let mut emitted = 0;
        for m in self.matcher.regex.find_iter(buf) {
            if !is_final(m.start()) {
                break;
            }
            let rule = &self.matcher.rules[m.pattern().as_usize()];
            let value = &buf[m.range()];
            if rule.validate.is_some_and(|v| !v(value)) {
                continue;
            }
            out.extend_from_slice(&buf[emitted..m.start()]);
            method::apply(rule.method, value, &rule.label, &self.hash_key, out);
            emitted = m.end();
            self.masked += 1;
        }
        emitted
    }
}

/// Masks a complete value in one go.
pub fn mask_all(matcher: &Arc<TextMatcher>, hash_key: &Arc<[u8]>, value: &[u8]) -> Vec<u8> {
    let mut m = StreamMasker::new(matcher.clone(), hash_key.clone());
    let mut out = Vec::with_capacity(value.len());
    m.push(value, &mut out);
    m.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};

    fn masker(targets: &[MaskTarget]) -> StreamMasker {
        let rules: Vec<_> = targets
            .iter()
            .map(|t| MaskRule {
                target: t.clone(),
                method: MaskMethod::Redact,
            })
            .collect();
        let c = MaskCompiler::new(b"k".to_vec())
            .compile(&rules, &[])
            .unwrap();
        StreamMasker::new(c.text.clone().unwrap(), c.hash_key.clone())
    }

    fn run(m: &mut StreamMasker, chunks: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for c in chunks {
            m.push(c, &mut out);
        }
        m.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";

    #[test]
    fn a_secret_split_across_chunks_is_masked() {
        let text = format!("{{\"key\":\"{KEY}\",\"ok\":true}}");
        for split in 0..=text.len() {
            let mut m = masker(&[MaskTarget::Detector("aws-access-key-id".into())]);
            let (a, b) = text.as_bytes().split_at(split);
            let out = run(&mut m, &[a, b]);
            assert_eq!(
                out, "{\"key\":\"[MASKED:aws-access-key-id]\",\"ok\":true}",
                "split at {split}"
            );
        }
    }

    #[test]
    fn byte_at_a_time_streams_are_masked() {
        let text = format!("a {KEY} b {KEY} c");
        let mut m = masker(&[MaskTarget::Detector("aws-access-key-id".into())]);
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(
            run(&mut m, &chunks),
            "a [MASKED:aws-access-key-id] b [MASKED:aws-access-key-id] c"
        );
        assert_eq!(m.masked, 2);
    }

    #[test]
    fn held_back_bytes_stay_within_the_window() {
        let mut m = masker(&[MaskTarget::Pattern("secret-[0-9]{4}".into())]);
        let mut out = Vec::new();
        let filler = vec![b'x'; 1 << 20];
        m.push(&filler, &mut out);
        assert!(out.len() >= filler.len() - 11);
        assert!(m.carry.len() <= 11);
    }

    #[test]
    fn validators_drop_false_positives() {
        let mut m = masker(&[MaskTarget::Detector("credit-card".into())]);
        assert_eq!(
            run(&mut m, &[b"4111111111111111 1234567812345678"]),
            "[MASKED:credit-card] 1234567812345678"
        );
    }
}
