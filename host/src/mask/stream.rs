//! Masks a byte stream chunk by chunk. It holds back only the last `window`
//! bytes (the longest possible match), so a secret split across chunk
//! boundaries is still found and memory stays bounded whatever the body size.

use std::sync::Arc;

use regex_automata::Input;

use super::compile::TextMatcher;
use super::method;

pub struct StreamMasker {
    matcher: Arc<TextMatcher>,
    hash_key: Arc<[u8]>,
    /// Held-back bytes; the first `context` of them were already emitted.
    carry: Vec<u8>,
    context: usize,
    /// How many matches were masked so far.
    pub masked: u64,
}

/// Bytes of already-emitted text kept in front of the carry, so that
/// look-behind assertions (`\b`) see the same context as in one pass.
const LOOK_BEHIND: usize = 4;

impl StreamMasker {
    pub fn new(matcher: Arc<TextMatcher>, hash_key: Arc<[u8]>) -> Self {
        Self {
            matcher,
            hash_key,
            carry: Vec::new(),
            context: 0,
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
        // A match starting at `start` with `start + window <= len` ends inside
        // `buf`, look-ahead included, whatever follows; later ones may grow.
        let settled = len.saturating_sub(window).max(self.context);
        let emitted = self.scan(&buf, out, |start| start + window <= len);
        let boundary = emitted.max(settled);
        out.extend_from_slice(&buf[emitted..boundary]);
        let keep_from = boundary.saturating_sub(LOOK_BEHIND);
        self.context = boundary - keep_from;
        self.carry = buf[keep_from..].to_vec();
    }

    /// Ends the stream: everything held back is masked and emitted.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let buf = std::mem::take(&mut self.carry);
        let emitted = self.scan(&buf, out, |_| true);
        out.extend_from_slice(&buf[emitted..]);
        self.context = 0;
    }

    /// Replaces the final matches in `buf` (after the context bytes), writing
    /// the text before each and its replacement. Returns how far into `buf`
    /// it has written.
    fn scan(&mut self, buf: &[u8], out: &mut Vec<u8>, is_final: impl Fn(usize) -> bool) -> usize {
        let mut emitted = self.context.min(buf.len());
        let mut at = emitted;
        while at <= buf.len() {
            let input = Input::new(buf).span(at..buf.len());
            let Some(m) = self.matcher.regex.search(&input) else {
                break;
            };
            if !is_final(m.start()) {
                break;
            }
            let rule = &self.matcher.rules[m.pattern().as_usize()];
            let value = &buf[m.range()];
            if rule.validate.is_some_and(|v| !v(value)) {
                // A rejected candidate may hide a real match that starts
                // inside it (a digit run failing Luhn before a card number).
                at = m.start() + 1;
                continue;
            }
            let span = rule.value.map_or(0..value.len(), |f| f(value));
            let span = span.start.min(value.len())
                ..span.end.clamp(span.start.min(value.len()), value.len());
            out.extend_from_slice(&buf[emitted..m.start() + span.start]);
            method::apply(
                rule.method,
                &value[span.clone()],
                &rule.label,
                &self.hash_key,
                out,
            );
            out.extend_from_slice(&value[span.end..]);
            emitted = m.end();
            at = m.end().max(m.start() + 1);
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
        assert!(out.len() >= filler.len() - 12);
        assert!(m.carry.len() <= 12 + LOOK_BEHIND);
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

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::mask::{MaskCompiler, MaskMethod, MaskRule, MaskTarget};

    fn matcher() -> (Arc<TextMatcher>, Arc<[u8]>) {
        let rules: Vec<_> = ["aws-access-key-id", "email", "credit-card"]
            .iter()
            .map(|d| MaskRule {
                target: MaskTarget::Detector(d.to_string()),
                method: MaskMethod::Redact,
            })
            .chain(std::iter::once(MaskRule {
                target: MaskTarget::Pattern("tok-[0-9a-f]{8}".into()),
                method: MaskMethod::Hash,
            }))
            .collect();
        let c = MaskCompiler::new(b"k".to_vec())
            .compile(&rules, &["hunter2-secret".into()])
            .unwrap();
        (c.text.clone().unwrap(), c.hash_key.clone())
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ a-z0-9.,:\"{}]{0,40}",
            Just("AKIAIOSFODNN7EXAMPLE".to_string()),
            Just("alice@example.com".to_string()),
            Just("4111 1111 1111 1111".to_string()),
            Just("tok-deadbeef".to_string()),
            Just("hunter2-secret".to_string()),
        ]
    }

    proptest! {
        /// However a body is cut into chunks, the streamed result is the
        /// one-shot result, and no listed secret survives.
        #[test]
        fn chunking_never_changes_the_result(pieces in prop::collection::vec(piece(), 0..30), cuts in prop::collection::vec(0usize..2000, 0..12)) {
            // Pieces are separated as words so the detectors' word boundaries hold.
            let text = pieces.join(" ");
            let glued = pieces.concat();
            let (m, key) = matcher();
            let whole = mask_all(&m, &key, text.as_bytes());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (text.len() + 1)).collect();
            cuts.sort_unstable();
            let mut masker = StreamMasker::new(m, key);
            let mut out = Vec::new();
            let mut last = 0;
            for c in cuts {
                masker.push(&text.as_bytes()[last..c], &mut out);
                last = c;
            }
            masker.push(&text.as_bytes()[last..], &mut out);
            masker.finish(&mut out);
            prop_assert_eq!(&out, &whole);
            // Glued pieces test word boundaries across cuts: still equal.
            let (m2, key2) = matcher();
            let whole_glued = mask_all(&m2, &key2, glued.as_bytes());
            let mut masker = StreamMasker::new(m2, key2);
            let mut glued_out = Vec::new();
            for c in glued.as_bytes().chunks(7) {
                masker.push(c, &mut glued_out);
            }
            masker.finish(&mut glued_out);
            prop_assert_eq!(glued_out, whole_glued);
            let out = String::from_utf8_lossy(&out);
            for secret in ["AKIAIOSFODNN7EXAMPLE", "alice@example.com", "hunter2-secret", "tok-deadbeef"] {
                prop_assert!(!out.contains(secret), "{} survived in {}", secret, out);
            }
        }
    }
}
