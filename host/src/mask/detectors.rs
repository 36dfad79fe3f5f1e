//! Built-in detectors a policy can name instead of writing a pattern. Each is
//! a bounded regular expression, optionally with a check that removes false
//! positives (the Luhn sum for card numbers).

pub struct Detector {
    pub name: &'static str,
    pub pattern: &'static str,
    pub validate: Option<fn(&[u8]) -> bool>,
}

const DETECTORS: &[Detector] = &[
    Detector {
        name: "aws-access-key-id",
        pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[0-9A-Z]{16}(?-u:\b)",
        validate: None,
    },
    Detector {
        name: "github-token",
        pattern: r"(?-u:\b)(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
        validate: None,
    },
    Detector {
        name: "gitlab-token",
        pattern: r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,64}(?-u:\b)",
        validate: None,
    },
    Detector {
        name: "slack-token",
        pattern: r"(?-u:\b)xox[abposr]-[A-Za-z0-9-]{10,250}",
        validate: None,
    },
    Detector {
        name: "stripe-key",
        pattern: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}(?-u:\b)",
        validate: None,
    },
    Detector {
        name: "anthropic-api-key",
        pattern: r"(?-u:\b)sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{32,128}",
        validate: None,
    },
    Detector {
        name: "openai-api-key",
        pattern: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200}|(?-u:\b)sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}",
        validate: None,
    },
    Detector {
        name: "jwt",
        pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,2048}\.eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{16,1024}",
        validate: None,
    },
    Detector {
        name: "private-key",
        pattern: r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\s:,-]{32,8192}?-----END[A-Z ]{0,20} PRIVATE KEY(?: BLOCK)?-----",
        validate: None,
    },
    Detector {
        name: "connection-string-password",
        pattern: r"(?-u:\b)[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,128}:[^\s@/]{1,256}@",
        validate: None,
    },
    Detector {
        name: "email",
        pattern: r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?-u:\b)",
        validate: None,
    },
    Detector {
        name: "credit-card",
        pattern: r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        validate: Some(luhn),
    },
    Detector {
        name: "ipv4",
        pattern: r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
        validate: None,
    },
];

pub fn find(name: &str) -> Option<&'static Detector> {
    DETECTORS.iter().find(|d| d.name == name)
}

pub fn names() -> Vec<&'static str> {
    DETECTORS.iter().map(|d| d.name).collect()
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta::Regex;

    fn matches(name: &str, text: &str) -> Vec<String> {
        let d = find(name).unwrap();
        let re = Regex::new(d.pattern).unwrap();
        re.find_iter(text.as_bytes())
            .map(|m| &text[m.range()])
            .filter(|s| d.validate.is_none_or(|v| v(s.as_bytes())))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_detector_compiles_and_is_bounded() {
        for d in DETECTORS {
            let hir = regex_syntax::parse(d.pattern).unwrap();
            assert!(
                hir.properties().maximum_len().is_some(),
                "{} is unbounded",
                d.name
            );
            Regex::new(d.pattern).unwrap();
        }
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
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let prose = "The quick brown fox, version 1.2.3, costs 42 dollars; see docs/index.html.";
        for d in DETECTORS {
            assert!(
                matches(d.name, prose).is_empty(),
                "{} matched prose",
                d.name
            );
        }
    }
}
