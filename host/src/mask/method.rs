//! How a matched value is replaced.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::MaskMethod;

/// Applies `method` to `value`. `label` names what was found (a detector or
/// `pattern`) and appears in redactions so readers know why text is gone.
pub fn apply(method: MaskMethod, value: &[u8], label: &str, hash_key: &[u8], out: &mut Vec<u8>) {
    match method {
        MaskMethod::Redact => {
            out.extend_from_slice(b"[MASKED:");
            out.extend_from_slice(label.as_bytes());
            out.push(b']');
        }
        MaskMethod::Partial { prefix, suffix } => {
            let text = String::from_utf8_lossy(value);
            let chars: Vec<char> = text.chars().collect();
            let (p, s) = (prefix as usize, suffix as usize);
            // Never reveal more than half of a value, whatever was asked.
            let keep = chars.len() / 2;
            let (p, s) = if p + s > keep {
                (p.min(keep / 2), s.min(keep - keep / 2))
            } else {
                (p, s)
            };
            let mut buf = String::with_capacity(text.len());
            buf.extend(&chars[..p]);
            buf.extend(std::iter::repeat_n('*', chars.len() - p - s));
            buf.extend(&chars[chars.len() - s..]);
            out.extend_from_slice(buf.as_bytes());
        }
        MaskMethod::Hash => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(hash_key) else {
                out.extend_from_slice(b"[MASKED]");
                return;
            };
            mac.update(value);
            let digest = mac.finalize().into_bytes();
            out.extend_from_slice(b"[HASH:");
            out.extend_from_slice(hex::encode(&digest[..8]).as_bytes());
            out.push(b']');
        }
    }
}

/// The same, into a new string.
pub fn apply_to_string(method: MaskMethod, value: &str, label: &str, hash_key: &[u8]) -> String {
    let mut out = Vec::new();
    apply(method, value.as_bytes(), label, hash_key, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_names_the_label() {
        assert_eq!(
            apply_to_string(MaskMethod::Redact, "secret", "email", b"k"),
            "[MASKED:email]"
        );
    }

    #[test]
    fn partial_keeps_ends_and_never_more_than_half() {
        let m = MaskMethod::Partial {
            prefix: 2,
            suffix: 4,
        };
        assert_eq!(
            apply_to_string(m, "4111111111111111", "card", b"k"),
            "41**********1111"
        );
        // A short value keeps at most half of itself.
        assert_eq!(apply_to_string(m, "abcd", "x", b"k"), "a**d");
        assert_eq!(apply_to_string(m, "é€ab", "x", b"k"), "é**b");
    }

    #[test]
    fn hash_is_stable_per_key_and_hides_the_value() {
        let a = apply_to_string(MaskMethod::Hash, "alice@example.com", "email", b"k1");
        let b = apply_to_string(MaskMethod::Hash, "alice@example.com", "email", b"k1");
        let c = apply_to_string(MaskMethod::Hash, "alice@example.com", "email", b"k2");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!a.contains("alice"));
    }
}
