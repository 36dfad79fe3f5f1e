//! The checks detectors run on a candidate match, where a regular
//! expression alone would flag too much: checksums (Luhn, IBAN mod-97,
//! INSEE key), reserved ranges (US SSN, UK NINO), and Shannon entropy for
//! generic secret assignments.

use std::ops::Range;

/// The Luhn checksum over the digits of `candidate` (separators skipped).
pub fn luhn(candidate: &[u8]) -> bool {
    let digits: Vec<u32> = candidate
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| (b - b'0') as u32)
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616: the country's length and the mod-97 check (the first four
/// characters moved to the end, letters as 10..35, remainder 1).
pub fn iban(candidate: &[u8]) -> bool {
    let chars: Vec<u8> = candidate
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(u8::to_ascii_uppercase)
        .collect();
    if !(15..=34).contains(&chars.len()) {
        return false;
    }
    if let Some(len) = iban_length(&chars[..2])
        && len != chars.len()
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'A'..=b'Z' => (c - b'A') as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Lengths of common countries' IBANs; others are checked by mod-97 only.
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"AT" => 20,
        b"BE" => 16,
        b"CH" => 21,
        b"DE" => 22,
        b"DK" => 18,
        b"ES" => 24,
        b"FI" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"IE" => 22,
        b"IT" => 27,
        b"LU" => 20,
        b"NL" => 18,
        b"NO" => 15,
        b"PL" => 28,
        b"PT" => 25,
        b"SE" => 24,
        _ => return None,
    })
}

/// A US Social Security number outside the never-issued ranges: area 000,
/// 666 and 900-999, group 00, serial 0000.
pub fn us_ssn(candidate: &[u8]) -> bool {
    let d: Vec<u8> = candidate
        .iter()
        .filter(|b| b.is_ascii_digit())
        .copied()
        .collect();
    if d.len() != 9 {
        return false;
    }
    let area = &d[..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..] != b"0000"
}

/// A UK National Insurance number whose prefix is allocatable.
pub fn uk_nino(candidate: &[u8]) -> bool {
    let prefix: Vec<u8> = candidate
        .iter()
        .take(2)
        .map(u8::to_ascii_uppercase)
        .collect();
    !matches!(
        prefix.as_slice(),
        b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ"
    )
}

/// A French INSEE (NIR) number whose two-digit key is 97 - (number mod 97);
/// Corsican departments 2A and 2B count as 19 and 18.
pub fn fr_insee(candidate: &[u8]) -> bool {
    let s: Vec<u8> = candidate
        .iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(u8::to_ascii_uppercase)
        .collect();
    if s.len() != 15 {
        return false;
    }
    let (body, key) = s.split_at(13);
    let mut digits = body.to_vec();
    // Corsica: 2A counts as 19, 2B as 18.
    if digits[5] == b'2' && matches!(digits[6], b'A' | b'B') {
        digits[5] = b'1';
        digits[6] = if body[6] == b'A' { b'9' } else { b'8' };
    }
    let Ok(text) = std::str::from_utf8(&digits) else {
        return false;
    };
    let (Ok(n), Ok(k)) = (
        text.parse::<u64>(),
        std::str::from_utf8(key).unwrap_or("x").parse::<u64>(),
    ) else {
        return false;
    };
    97 - (n % 97) == k
}

/// An IPv6 address by the standard library's parser (the pattern is
/// loose), written with at least two groups, one of them with a decimal
/// digit: `fe80::1` and `2001:db8::7334` pass, Rust paths such as
/// `B::Error` (which parses as `b::`) and words like `dead::beef` do not.
pub fn ipv6(candidate: &[u8]) -> bool {
    let Some(text) = std::str::from_utf8(candidate).ok() else {
        return false;
    };
    if text.parse::<std::net::Ipv6Addr>().is_err() {
        return false;
    }
    let groups: Vec<&str> = text.split(':').filter(|g| !g.is_empty()).collect();
    groups.len() >= 2 && groups.iter().any(|g| g.bytes().any(|b| b.is_ascii_digit()))
}

/// An E.164 or national phone number with 8 to 15 digits.
pub fn phone(candidate: &[u8]) -> bool {
    let n = candidate.iter().filter(|b| b.is_ascii_digit()).count();
    (8..=15).contains(&n)
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let len = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / len;
            -p * p.log2()
        })
        .sum()
}

/// The value of a `key = value` / `key: "value"` assignment match: after
/// the first `=` or `:` (and `>` of `=>`), without quotes and spaces.
pub fn assigned_value(m: &[u8]) -> Range<usize> {
    let Some(op) = m.iter().position(|&b| b == b'=' || b == b':') else {
        return 0..m.len();
    };
    let mut start = op + 1;
    while start < m.len() && matches!(m[start], b'=' | b'>' | b' ' | b'\t' | b'"' | b'\'' | b'`') {
        start += 1;
    }
    let mut end = m.len();
    while end > start && matches!(m[end - 1], b'"' | b'\'' | b'`' | b' ') {
        end -= 1;
    }
    start..end
}

/// Values that stand for a secret rather than being one: documentation
/// placeholders, template and environment references, already-masked text.
fn is_placeholder(value: &[u8]) -> bool {
    const PLACEHOLDERS: &[&str] = &[
        "example",
        "xxxx",
        "changeme",
        "placeholder",
        "your",
        "dummy",
        "redacted",
        "masked",
        "${",
        "{{",
        "env",
        "process.",
        "settings.",
        "config.",
        "self.",
        "test",
    ];
    let lower = String::from_utf8_lossy(value).to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

fn has_letters_and_digits(value: &[u8]) -> bool {
    value.iter().any(u8::is_ascii_digit) && value.iter().any(u8::is_ascii_alphabetic)
}

/// The generic-secret check: the assigned value is long, mixed, and random
/// enough (entropy at least 3.5 bits per character, as gitleaks' generic
/// rule), and is not a placeholder or a reference to something else.
pub fn generic_secret(m: &[u8]) -> bool {
    let value = &m[assigned_value(m)];
    value.len() >= 12
        && entropy(value) >= 3.5
        && has_letters_and_digits(value)
        && !is_placeholder(value)
}

/// The check of a value assigned to a key named after a service (gitleaks'
/// keyword rules: `TWITTER_CONSUMER_KEY = ...`): the name already says what
/// it is, so the bar is lower than for a generic name (15 characters,
/// entropy 3.0), but the value still mixes letters and digits (ids made of
/// digits only are not secrets) and is not a placeholder.
pub fn service_secret(m: &[u8]) -> bool {
    let value = &m[assigned_value(m)];
    value.len() >= 15
        && entropy(value) >= 3.0
        && has_letters_and_digits(value)
        && !is_placeholder(value)
}

/// A random-looking token body: after its 4-character prefix, letters and
/// digits both present. For prefixes short or common enough that a word or
/// identifier could follow them (`API-`, `cio`, `oy2`, `4b1d`).
pub fn random_body(m: &[u8]) -> bool {
    m.len() > 4 && has_letters_and_digits(&m[4..])
}

/// The credential of an `Authorization: <scheme> <credential>` match.
pub fn authorization_value(m: &[u8]) -> Range<usize> {
    let after_op = assigned_value(m);
    let rest = &m[after_op.clone()];
    // Skip the scheme (`Bearer`, `Basic`, ...) and the spaces after it.
    let scheme = rest
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(0);
    let mut start = after_op.start + scheme;
    while start < m.len() && (m[start] == b' ' || m[start] == b'\t') {
        start += 1;
    }
    start..after_op.end
}

/// An `Authorization` credential that is not a placeholder: 12 characters or
/// more, entropy at least 3.0.
pub fn authorization(m: &[u8]) -> bool {
    let value = &m[authorization_value(m)];
    value.len() >= 12 && entropy(value) >= 3.0 && !is_placeholder(value)
}

/// The password of a `curl -u user:password` match: after the first `:`
/// that follows the `-u` / `--user` option.
pub fn curl_password(m: &[u8]) -> Range<usize> {
    let option = m
        .windows(2)
        .rposition(|w| w == b"-u")
        .or_else(|| m.windows(6).rposition(|w| w == b"--user"))
        .unwrap_or(0);
    let colon = m[option..]
        .iter()
        .position(|&b| b == b':')
        .map_or(m.len(), |c| option + c + 1);
    let mut end = m.len();
    while end > colon && matches!(m[end - 1], b'"' | b'\'') {
        end -= 1;
    }
    colon..end
}

/// A `curl -u` password that is not a placeholder or a shell reference.
pub fn curl_user(m: &[u8]) -> bool {
    let value = &m[curl_password(m)];
    const WEAK: &[&[u8]] = &[b"pass", b"password", b"pwd", b"secret", b"token"];
    value.len() >= 3
        && !value.starts_with(b"$")
        && !value.starts_with(b"<")
        && !value.iter().all(|b| *b == b'*' || *b == b'x' || *b == b'X')
        && !WEAK.iter().any(|w| value.eq_ignore_ascii_case(w))
        && !is_placeholder(value)
}

/// A base64-encoded JWT: the text decodes to `eyJ...` with three dotted
/// parts, the first two starting `eyJ` (a JSON object).
pub fn jwt_base64(m: &[u8]) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    // Whole 4-character groups only: a match may end mid-group.
    let body: Vec<u8> = m
        .iter()
        .take_while(|b| **b != b'=')
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'/',
            other => *other,
        })
        .collect();
    let whole = body.len() - body.len() % 4;
    let Ok(decoded) = STANDARD_NO_PAD.decode(&body[..whole]) else {
        return false;
    };
    let mut parts = decoded.split(|b| *b == b'.');
    matches!(
        (parts.next(), parts.next()),
        (Some(header), Some(claims)) if header.starts_with(b"eyJ") && claims.starts_with(b"eyJ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_mod97() {
        assert!(iban(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"FR1420041010050500013M02606"));
        assert!(!iban(b"GB82 WEST 1234 5698 7654 33"));
        assert!(!iban(b"DE8937040044053201300"), "wrong length for DE");
    }

    #[test]
    fn ssn_ranges() {
        assert!(us_ssn(b"123-45-6789"));
        assert!(!us_ssn(b"000-45-6789"));
        assert!(!us_ssn(b"666-45-6789"));
        assert!(!us_ssn(b"912-45-6789"));
        assert!(!us_ssn(b"123-00-6789"));
        assert!(!us_ssn(b"123-45-0000"));
    }

    #[test]
    fn insee_key() {
        // 1 84 12 76 451 089, key 97 - (1841276451089 mod 97).
        let n: u64 = 1_841_276_451_089;
        let key = 97 - n % 97;
        assert!(fr_insee(format!("1841276451089{key:02}").as_bytes()));
        assert!(!fr_insee(
            format!("1841276451089{:02}", (key % 97) + 1).as_bytes()
        ));
        let n: u64 = 2_691_019_000_001; // 2A as 19
        let key = 97 - n % 97;
        assert!(fr_insee(format!("269102A000001{key:02}").as_bytes()));
    }

    #[test]
    fn ipv6_needs_two_groups_and_a_digit() {
        assert!(ipv6(b"fe80::1"));
        assert!(ipv6(b"2001:db8::8a2e:370:7334"));
        assert!(!ipv6(b"B::"));
        assert!(!ipv6(b"dead::beef"));
        assert!(!ipv6(b"12:30:45"));
    }

    #[test]
    fn nino_prefixes() {
        assert!(uk_nino(b"AB123456C"));
        assert!(!uk_nino(b"GB123456C"));
    }

    #[test]
    fn entropy_and_generic_secrets() {
        assert!(entropy(b"aaaaaaaa") < 0.01);
        assert!(generic_secret(b"api_key = \"9f8A7c6E5d4B3a2F1e0D\""));
        assert!(!generic_secret(b"password = \"changeme-please-123\""));
        assert!(!generic_secret(b"token: aaaaaaaaaaaaaaaa"));
        assert_eq!(assigned_value(b"secret: 'abc'"), 9..12);
        assert_eq!(assigned_value(b"token => \"x1\""), 10..12);
    }
}
