//! Whether a rule matches a statement, and how to say what matched.
//!
//! Names compare case-insensitively, part by part from the right: a rule's
//! `users` matches `users`, `public.users` and `db.public.users`; a rule's
//! `public.users` matches `public.users` and `db.public.users`, never a bare
//! `users` (the policy cannot see the session's `search_path`).

use crate::bindings::postgres::{Statement, StatementKind};
use crate::config::Rule;

/// How many names a default reason lists before "and N more".
const LISTED_NAMES: usize = 5;

impl Rule {
    /// True if `s` meets every condition the rule gives.
    pub fn matches(&self, s: &Statement) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&s.kind))
            && any_match(&self.tables_read, &s.tables_read)
            && any_match(&self.tables_written, &s.tables_written)
            && any_match(&self.functions, &s.functions)
            && (!self.without_where || lacks_where(s))
    }

    /// What `s` did that the rule is about, e.g. `DROP of users` or
    /// `SELECT from secrets calling pg_read_file`.
    pub fn describe(&self, s: &Statement) -> String {
        let mut out = kind_label(s.kind).to_owned();
        let (written, read) = if self.tables_read.is_empty() && self.tables_written.is_empty() {
            // No table condition: name what the statement wrote, else read.
            if s.tables_written.is_empty() {
                (Vec::new(), all(&s.tables_read))
            } else {
                (all(&s.tables_written), Vec::new())
            }
        } else {
            (
                matching(&self.tables_written, &s.tables_written),
                matching(&self.tables_read, &s.tables_read),
            )
        };
        for (word, list) in [
            (" of ", written),
            (" from ", read),
            (" calling ", matching(&self.functions, &s.functions)),
        ] {
            if !list.is_empty() {
                out.push_str(word);
                out.push_str(&name_list(&list));
            }
        }
        if self.without_where {
            out.push_str(" without a WHERE clause");
        }
        out
    }
}

/// True for an UPDATE or DELETE without a WHERE clause.
fn lacks_where(s: &Statement) -> bool {
    matches!(s.kind, StatementKind::Update | StatementKind::Delete) && !s.has_where
}

/// True if the rule gives no names, or any of `actual` matches one of them.
fn any_match(rule: &[String], actual: &[String]) -> bool {
    rule.is_empty()
        || actual
            .iter()
            .any(|a| rule.iter().any(|r| name_matches(r, a)))
}

/// The names in `actual` that match any rule name (all of them when the rule
/// gives none).
fn matching<'a>(rule: &[String], actual: &'a [String]) -> Vec<&'a str> {
    if rule.is_empty() {
        return Vec::new();
    }
    actual
        .iter()
        .filter(|a| rule.iter().any(|r| name_matches(r, a)))
        .map(String::as_str)
        .collect()
}

fn all(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// True if every dot-separated part of `rule` equals the corresponding part
/// of `actual`, counting from the right.
pub fn name_matches(rule: &str, actual: &str) -> bool {
    let mut actual_parts = actual.rsplit('.');
    rule.rsplit('.')
        .all(|r| actual_parts.next().is_some_and(|a| eq_ignore_case(r, a)))
}

/// Unicode-aware case-insensitive equality, without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// `a, b and c`, or `a, b, c, d, e and 3 more`.
fn name_list(names: &[&str]) -> String {
    let shown = &names[..names.len().min(LISTED_NAMES)];
    let rest = names.len() - shown.len();
    match (shown, rest) {
        ([one], 0) => (*one).to_owned(),
        ([init @ .., last], 0) => format!("{} and {last}", init.join(", ")),
        (shown, rest) => format!("{} and {rest} more", shown.join(", ")),
    }
}

/// The statement kind as SQL spells it.
pub fn kind_label(kind: StatementKind) -> &'static str {
    use StatementKind as K;
    match kind {
        K::Select => "SELECT",
        K::Insert => "INSERT",
        K::Update => "UPDATE",
        K::Delete => "DELETE",
        K::Merge => "MERGE",
        K::Copy => "COPY",
        K::Create => "CREATE",
        K::Alter => "ALTER",
        K::Drop => "DROP",
        K::Truncate => "TRUNCATE",
        K::Grant => "GRANT",
        K::Revoke => "REVOKE",
        K::Transaction => "a transaction statement",
        K::Set => "SET",
        K::Show => "SHOW",
        K::Explain => "EXPLAIN",
        K::Call => "CALL",
        K::Other => "this statement",
    }
}
