//! Built-in detectors a policy can name instead of writing a pattern. Each is
//! a bounded regular expression, optionally with a check that removes false
//! positives (checksums, reserved ranges, entropy: `checks`) and a span that
//! narrows what is masked to the value of a `key = value` match.
//!
//! - `secrets`: credentials (gitleaks' families; `secrets/services.rs` the
//!   prefixed tokens of third-party services);
//! - `pii`: personal data.

pub mod checks;
mod pii;
mod secrets;

use std::ops::Range;

pub use checks::luhn;

/// A check a candidate match must pass to be masked.
pub type Check = fn(&[u8]) -> bool;

/// The part of a match that is masked, e.g. the value of `key = value`.
pub type ValueSpan = fn(&[u8]) -> Range<usize>;

pub struct Detector {
    pub name: &'static str,
    pub pattern: &'static str,
    pub validate: Option<Check>,
    /// The part of a match that is masked (the whole match when `None`).
    pub value: Option<ValueSpan>,
}

impl Detector {
    pub const fn new(name: &'static str, pattern: &'static str) -> Self {
        Self {
            name,
            pattern,
            validate: None,
            value: None,
        }
    }

    pub const fn checked(mut self, check: Check) -> Self {
        self.validate = Some(check);
        self
    }

    pub const fn value(mut self, span: ValueSpan) -> Self {
        self.value = Some(span);
        self
    }
}

fn all() -> impl Iterator<Item = &'static Detector> {
    secret_detectors().chain(pii::PII)
}

fn secret_detectors() -> impl Iterator<Item = &'static Detector> {
    secrets::SECRETS.iter().chain(secrets::SERVICES)
}

pub fn find(name: &str) -> Option<&'static Detector> {
    all().find(|d| d.name == name)
}

pub fn names() -> Vec<&'static str> {
    all().map(|d| d.name).collect()
}

/// The credential detectors, by name.
pub fn secret_names() -> Vec<&'static str> {
    secret_detectors().map(|d| d.name).collect()
}

/// The personal-data detectors, by name.
pub fn pii_names() -> Vec<&'static str> {
    pii::PII.iter().map(|d| d.name).collect()
}

/// The parts of `text` that `detector` masks, as the stream masker finds
/// them (checks applied, spans narrowed). For tests and measurements.
pub fn find_all<'t>(detector: &Detector, text: &'t [u8]) -> Vec<&'t [u8]> {
    let Ok(re) = regex_automata::meta::Regex::new(detector.pattern) else {
        return vec![];
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at <= text.len() {
        let Some(m) = re.search(&regex_automata::Input::new(text).span(at..text.len())) else {
            break;
        };
        let found = &text[m.range()];
        if detector.validate.is_some_and(|v| !v(found)) {
            // A rejected candidate may hide a real one that starts inside it.
            at = m.start() + 1;
            continue;
        }
        let span = detector.value.map_or(0..found.len(), |f| f(found));
        out.push(&found[span]);
        at = m.end().max(m.start() + 1);
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;

    fn matches(name: &str, text: &str) -> Vec<String> {
        let d = find(name).unwrap();
        find_all(d, text.as_bytes())
            .into_iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect()
    }

    #[test]
    fn every_detector_compiles_and_is_bounded() {
        for d in all() {
            let hir = regex_syntax::parse(d.pattern).unwrap();
            assert!(
                hir.properties().maximum_len().is_some(),
                "{} is unbounded",
                d.name
            );
            Regex::new(d.pattern).unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        assert!(all().all(|d| seen.insert(d.name)), "duplicate names");
    }

    #[test]
    fn every_detector_fits_in_one_compiled_rule_list() {
        // The secrets and pii plugins may sit in one chain: their rules are
        // compiled into one matcher, within the compiler's NFA size limit.
        let rules: Vec<_> = names()
            .into_iter()
            .map(|n| crate::mask::MaskRule {
                target: crate::mask::MaskTarget::Detector(n.into()),
                method: crate::mask::MaskMethod::Redact,
            })
            .collect();
        let once = crate::mask::MaskCompiler::new(b"k".to_vec())
            .compile(&rules, &[])
            .unwrap();
        // A chain repeats lists (a policy's request and response decisions,
        // two policies naming the same detectors): each rule counts once.
        let twice = [rules.clone(), rules].concat();
        let compiled = crate::mask::MaskCompiler::new(b"k".to_vec())
            .compile(&twice, &[])
            .unwrap();
        let count = |c: &crate::mask::CompiledMasks| c.text.as_ref().map_or(0, |t| t.rules.len());
        assert_eq!(count(&compiled), count(&once));
    }

    #[test]
    fn detectors_find_what_they_should() {
        assert_eq!(
            matches("aws-access-key-id", "key=AKIAIOSFODNN7EXAMPLE;"),
            ["AKIAIOSFODNN7EXAMPLE"]
        );
        assert_eq!(
            matches("email", "mail alice.b@example.co.uk now"),
            ["alice.b@example.co.uk"]
        );
        assert_eq!(
            matches("credit-card", "card 4111 1111 1111 1111 ok"),
            ["4111 1111 1111 1111"]
        );
        assert!(
            matches("credit-card", "order 1234567812345678").is_empty(),
            "fails Luhn"
        );
        assert_eq!(
            matches(
                "github-token",
                "t ghp_0123456789abcdefghijABCDEFGHIJ012345 x"
            )
            .len(),
            1
        );
        assert_eq!(
            matches(
                "connection-string-password",
                "postgres://app:s3cret@db:5432/x"
            ),
            ["postgres://app:s3cret@"]
        );
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0123456789abcdefghijklmnop\n-----END RSA PRIVATE KEY-----";
        assert_eq!(matches("private-key", pem), [pem]);
        let escaped = r#""private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n""#;
        assert_eq!(matches("private-key", escaped).len(), 1);
    }

    #[test]
    fn keyword_detectors_mask_only_the_value() {
        assert_eq!(
            matches(
                "aws-secret-access-key",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            ),
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        );
        assert_eq!(
            matches("generic-secret", r#"DB_PASSWORD: "q8X2vLp0Zr7TfN4w""#),
            ["q8X2vLp0Zr7TfN4w"]
        );
        assert_eq!(
            matches(
                "connection-string-kv-password",
                "Server=db;Database=app;User Id=sa;Password=Pa55w0rd!x;"
            ),
            ["Pa55w0rd!x"]
        );
    }

    #[test]
    fn a_rejected_candidate_does_not_hide_a_later_one() {
        // The first 16 digits fail Luhn; a valid card starts inside the run.
        let text = "1 4111 1111 1111 1111";
        assert_eq!(matches("credit-card", text), ["4111 1111 1111 1111"]);
    }

    #[test]
    fn personal_data() {
        assert_eq!(
            matches("iban", "pay GB82 WEST 1234 5698 7654 32 now"),
            ["GB82 WEST 1234 5698 7654 32"]
        );
        assert!(matches("iban", "GB82 WEST 1234 5698 7654 33").is_empty());
        assert_eq!(matches("us-ssn", "ssn 123-45-6789"), ["123-45-6789"]);
        assert!(matches("us-ssn", "ssn 666-45-6789").is_empty());
        assert_eq!(matches("uk-nino", "NI AB 12 34 56 C"), ["AB 12 34 56 C"]);
        assert_eq!(
            matches("phone", "call +1 415 555 2671"),
            ["+1 415 555 2671"]
        );
        assert_eq!(matches("phone", "call (415) 555-2671"), ["(415) 555-2671"]);
        assert_eq!(matches("phone", "tel 06 12 34 56 78"), ["06 12 34 56 78"]);
        assert_eq!(
            matches("ipv6", "from 2001:db8::8a2e:370:7334 ok"),
            ["2001:db8::8a2e:370:7334"]
        );
        assert!(matches("ipv6", "at 12:30:45").is_empty());
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let prose = "The quick brown fox, version 1.2.3, costs 42 dollars; see docs/index.html.";
        for d in all() {
            assert!(
                find_all(d, prose.as_bytes()).is_empty(),
                "{} matched prose",
                d.name
            );
        }
    }
}
