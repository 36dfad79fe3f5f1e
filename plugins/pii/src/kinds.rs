//! The kinds of personal data, the host detectors that find each in free
//! text, and the column names that hold each in tables.

pub struct Kind {
    pub name: &'static str,
    pub detectors: &'static [&'static str],
    /// Column names (or `_name` suffixes) that hold this kind of data.
    pub column_hints: &'static [&'static str],
}

/// In rule order: where two detectors match at the same place the earlier
/// one is tried, and when its check rejects the candidate the search goes
/// on after that start. National ids come before cards so a 15-digit INSEE
/// number is not first taken for a card that fails Luhn.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "email",
        detectors: &["email"],
        column_hints: &["email", "e_mail", "email_address", "mail"],
    },
    Kind {
        name: "phone",
        detectors: &["phone"],
        column_hints: &["phone", "phone_number", "mobile", "telephone", "tel", "fax"],
    },
    Kind {
        name: "national-id",
        // Narrowed by `national_ids`.
        detectors: NATIONAL_IDS,
        column_hints: &[
            "ssn",
            "social_security_number",
            "nino",
            "national_insurance_number",
            "insee",
            "nir",
            "national_id",
            "tax_id",
        ],
    },
    Kind {
        name: "payment-card",
        detectors: &["credit-card"],
        column_hints: &["card_number", "cc_number", "credit_card", "pan"],
    },
    Kind {
        name: "iban",
        detectors: &["iban"],
        column_hints: &["iban", "bank_account", "account_number"],
    },
    Kind {
        name: "ip",
        detectors: &["ipv4", "ipv6"],
        column_hints: &["ip", "ip_address", "client_ip", "remote_addr", "remote_ip"],
    },
];

/// The national identifiers the host can check.
pub const NATIONAL_IDS: &[&str] = &["us-ssn", "uk-nino", "fr-insee"];

pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

pub fn names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// True when `column` is named like one of `hints`: equal, or ending in
/// `_hint` (`billing_email`), case-insensitively. A prefix is not enough:
/// `email_verified` holds a flag, not an address.
pub fn column_matches(column: &str, hints: &[String]) -> bool {
    let column = column
        .rsplit('.')
        .next()
        .unwrap_or(column)
        .to_ascii_lowercase();
    hints.iter().any(|h| {
        let h = h.to_ascii_lowercase();
        column == h || column.ends_with(&format!("_{h}"))
    })
}
