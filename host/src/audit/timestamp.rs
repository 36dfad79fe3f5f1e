//! Times in the audit trail are milliseconds since the Unix epoch (UTC).
//! This turns them into RFC 3339 text for people, and reads the forms a
//! person or a script gives when searching: epoch milliseconds, an RFC 3339
//! date-time, a plain date, or a span back from now (`15m`, `2h`, `7d`).

/// `2026-11-26T10:04:05.123Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (d, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(d);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: give epoch milliseconds, an RFC 3339 time (2026-11-26T10:00:00Z, \
     2026-11-26T11:00:00+01:00), a date (2026-11-26, midnight UTC) or a span back from now (15m, 2h, 7d)"
)]
pub struct BadTime(pub String);

/// Reads a time as milliseconds since the epoch. `now_ms` anchors spans.
/// A date-time without a zone is taken as UTC.
pub fn parse(text: &str, now_ms: i64) -> Result<i64, BadTime> {
    let t = text.trim();
    let bad = || BadTime(text.to_string());
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    if let Some(span) = span_ms(t) {
        return Ok(now_ms - span);
    }
    parse_rfc3339(t).ok_or_else(bad)
}

/// `15m`, `2h`, `7d`, `30s`.
fn span_ms(t: &str) -> Option<i64> {
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return None;
    }
    let (h, mi) = (num(11..13)?, num(14..16)?);
    let mut i = 16;
    let mut s = 0;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b':') {
        s = num(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut end = start;
            while end < b.len() && b[end].is_ascii_digit() {
                end += 1;
            }
            if end == start {
                return None;
            }
            let digits = &t[start..end.min(start + 3)];
            frac_ms = digits.parse::<i64>().ok()? * 10_i64.pow(3 - digits.len() as u32);
            i = end;
        }
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let offset_min = match &t[i..] {
        "" | "Z" | "z" => 0,
        zone => {
            let zb = zone.as_bytes();
            if zb.len() != 6 || !matches!(zb[0], b'+' | b'-') || zb[3] != b':' {
                return None;
            }
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if zb[0] == b'-' { -m } else { m }
        }
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_reads_back() {
        for ms in [0, 1_700_000_000_123, 951_782_400_000, -86_400_000 + 5] {
            assert_eq!(parse(&format_ms(ms), 0), Ok(ms), "{}", format_ms(ms));
        }
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn reads_the_forms_people_give() {
        let at = 1_700_000_000_000;
        assert_eq!(parse("1700000000000", 0), Ok(at));
        assert_eq!(parse("2023-11-14T22:13:20Z", 0), Ok(at));
        assert_eq!(parse("2023-11-14T23:13:20+01:00", 0), Ok(at));
        assert_eq!(parse("2023-11-14T17:13:20-05:00", 0), Ok(at));
        assert_eq!(parse("2023-11-14 22:13:20", 0), Ok(at));
        assert_eq!(parse("2023-11-14T22:13:20.5Z", 0), Ok(at + 500));
        assert_eq!(parse("2023-11-14T22:13Z", 0), Ok(at - 20_000));
        assert_eq!(parse("2023-11-14", 0), Ok(at - 80_000_000));
        assert_eq!(parse("2h", at), Ok(at - 7_200_000));
        assert_eq!(parse("15m", at), Ok(at - 900_000));
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-02-30",
            "2023-11-14T25:00Z",
            "2023-11-14T22:13:20+0100",
            "5w",
            "2023-11-14T22:13:20.Z",
        ] {
            assert!(parse(bad, at).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse("soon", 0)
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }
}
