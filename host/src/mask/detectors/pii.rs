//! Personal data detectors: e-mail addresses, phone numbers, payment cards
//! (Luhn), IBANs (mod-97), national identifiers with their checks, and IP
//! addresses.

use super::Detector;
use super::checks::{fr_insee, iban, ipv6, luhn, phone, uk_nino, us_ssn};

pub const PII: &[Detector] = &[
    Detector::new(
        "email",
        r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?-u:\b)",
    ),
    // E.164 (`+` and 8-15 digits, optionally grouped), North American
    // `(555) 123-4567` / `555-123-4567`, and European national numbers with a
    // trunk `0` written in groups (`06 12 34 56 78`, `020 7946 0958`).
    Detector::new(
        "phone",
        r"(?:\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}(?-u:\b)|(?:\(|(?-u:\b))[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4}(?-u:\b)|(?-u:\b)0[1-9][0-9]{0,3}(?:[ .][0-9]{2,4}){2,4}(?-u:\b))",
    )
    .checked(phone),
    Detector::new(
        "credit-card",
        r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
    )
    .checked(luhn),
    Detector::new(
        "iban",
        r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?-u:\b)",
    )
    .checked(iban),
    Detector::new(
        "us-ssn",
        r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
    )
    .checked(us_ssn),
    Detector::new(
        "uk-nino",
        r"(?-u:\b)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?-u:\b)",
    )
    .checked(uk_nino),
    Detector::new(
        "fr-insee",
        r"(?-u:\b)[12] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[AB]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?-u:\b)",
    )
    .checked(fr_insee),
    Detector::new(
        "ipv4",
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
    ),
    Detector::new(
        "ipv6",
        r"(?i:(?-u:\b)(?:[0-9a-f]{1,4}:){1,7}(?:(?::[0-9a-f]{1,4}){1,6}|[0-9a-f]{1,4}|:)(?-u:\b)|(?-u:\b)(?:[0-9a-f]{1,4}:){1,6}:(?-u:\b))",
    )
    .checked(ipv6),
];
