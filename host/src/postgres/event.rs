//! The policy's view of a PostgreSQL statement and result, built from the
//! wire messages and the SQL analysis.

use std::sync::Arc;

use super::codec::FieldDescription;
use super::sql::{Analysis, StatementKind};
use crate::http::event::SessionMeta;
use crate::identity::Principal;
use crate::policy::bindings::{postgres as wit_pg, types as wit};

pub fn context(
    principal: &Principal,
    session: &SessionMeta,
    labels: &[(String, String)],
    request_id: &str,
) -> wit::Context {
    crate::http::event::context(
        principal,
        session,
        labels,
        request_id,
        wit::Protocol::Postgres,
    )
}

/// The caller's identity as a cache key part: everything of the principal a
/// policy sees.
pub fn principal_key(p: &Principal) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
        p.subject,
        p.issuer,
        p.kind.as_str(),
        p.groups.join("\u{1}"),
        p.acting_for.as_deref().unwrap_or("")
    )
}

/// A bound parameter as the policy sees it: text-format values as text,
/// binary ones as `\x`-prefixed hex (the form `bytea` output uses).
pub fn parameter_text(value: Option<&[u8]>, binary: bool) -> Option<String> {
    let v = value?;
    Some(if binary {
        format!("\\x{}", hex::encode(v))
    } else {
        String::from_utf8_lossy(v).into_owned()
    })
}

pub fn query(sql: &str, parameters: Vec<Option<String>>, analysis: &Analysis) -> wit_pg::Query {
    wit_pg::Query {
        sql: sql.to_string(),
        parameters,
        statements: analysis
            .statements
            .iter()
            .map(|s| wit_pg::Statement {
                kind: kind(s.kind),
                tables_read: s.tables_read.clone(),
                tables_written: s.tables_written.clone(),
                has_where: s.has_where,
                functions: s.functions.clone(),
            })
            .collect(),
        parse_error: analysis.parse_error.clone(),
    }
}

fn kind(k: StatementKind) -> wit_pg::StatementKind {
    use StatementKind as K;
    use wit_pg::StatementKind as W;
    match k {
        K::Select => W::Select,
        K::Insert => W::Insert,
        K::Update => W::Update,
        K::Delete => W::Delete,
        K::Merge => W::Merge,
        K::Copy => W::Copy,
        K::Create => W::Create,
        K::Alter => W::Alter,
        K::Drop => W::Drop,
        K::Truncate => W::Truncate,
        K::Grant => W::Grant,
        K::Revoke => W::Revoke,
        K::Transaction => W::Transaction,
        K::Set => W::Set,
        K::Show => W::Show,
        K::Explain => W::Explain,
        K::Call => W::Call,
        K::Other => W::Other,
    }
}

/// A result column with its table and type resolved to names.
#[derive(Debug, Clone)]
pub struct ResolvedColumn {
    pub field: FieldDescription,
    /// `schema.table`, when the column comes straight from a table.
    pub table: Option<Arc<str>>,
    pub type_name: Arc<str>,
}

pub fn columns(cols: &[ResolvedColumn]) -> Vec<wit_pg::Column> {
    cols.iter()
        .map(|c| wit_pg::Column {
            name: c.field.name.clone(),
            table: c.table.as_deref().map(str::to_string),
            type_name: c.type_name.to_string(),
        })
        .collect()
}
