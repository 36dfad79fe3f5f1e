//! Output that cannot drive the terminal it is printed on. What the CLI
//! prints comes from callers of the gateway (statements, paths, bodies,
//! reasons), so a control sequence in it could rewrite the screen, and a
//! bidirectional override could make a statement read as another. Such
//! characters are written as `\uXXXX`, which is also a valid escape inside
//! JSON strings, so `--json` output stays valid JSON.

use std::io::{self, Write};

/// Wraps a writer; newlines and tabs pass, other controls are escaped.
pub struct TerminalSafe<W: Write> {
    inner: W,
    /// The start of a UTF-8 sequence cut by the previous write.
    pending: Vec<u8>,
}

impl<W: Write> TerminalSafe<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }
}

/// C0 controls but newline and tab, DEL, C1 controls, and the bidirectional
/// formatting characters (Unicode's "Trojan Source" set).
fn escaped(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl<W: Write> TerminalSafe<W> {
    fn emit(&mut self, text: &str) -> io::Result<()> {
        if !text.chars().any(escaped) {
            return self.inner.write_all(text.as_bytes());
        }
        let mut out = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if escaped(c) {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push(c);
            }
        }
        self.inner.write_all(out.as_bytes())
    }
}

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(buf);
        let mut rest = bytes.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    self.emit(s)?;
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Checked by from_utf8 up to valid_up_to.
                    self.emit(std::str::from_utf8(valid).unwrap_or_default())?;
                    match e.error_len() {
                        // A sequence cut at the end: wait for its rest.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                        Some(n) => {
                            self.emit("\u{fffd}")?;
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.pending.clear();
            self.emit("\u{fffd}")?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for TerminalSafe<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(chunks: &[&[u8]]) -> String {
        let mut buf = Vec::new();
        {
            let mut w = TerminalSafe::new(&mut buf);
            for c in chunks {
                w.write_all(c).unwrap();
            }
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        assert_eq!(
            safe(&[b"DROP\x1b[2J TABLE\r\n\tok"]),
            "DROP\\u001b[2J TABLE\\u000d\n\tok"
        );
        assert_eq!(
            safe(&["a\u{202e}b\u{2066}c\u{9b}d".as_bytes()]),
            "a\\u202eb\\u2066c\\u009bd"
        );
        assert_eq!(safe(&["héllo ✓".as_bytes()]), "héllo ✓");
        // Valid JSON stays valid, with the same meaning.
        let v: serde_json::Value =
            serde_json::from_str(&safe(&["{\"sql\": \"x\u{202e}y\"}".as_bytes()])).unwrap();
        assert_eq!(v["sql"], "x\u{202e}y");
    }

    #[test]
    fn characters_cut_between_writes_are_kept_whole() {
        let s = "x\u{202e}é".as_bytes();
        assert_eq!(safe(&[&s[..2], &s[2..4], &s[4..]]), "x\\u202eé");
        assert_eq!(safe(&[b"a\xffb"]), "a\u{fffd}b");
        assert_eq!(safe(&[b"a\xc3"]), "a\u{fffd}");
    }
}
