//! What a statement does, from a real parse: `sqlparser` with its
//! PostgreSQL dialect. Pure Rust (no C toolchain, no libclang at build
//! time), fast enough to run on every statement, and maintained against
//! PostgreSQL's grammar; what it cannot parse is reported as a parse error
//! so the policy still decides (it is never a silent allow).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde_json::value::RawValue;
use sqlparser::ast::{
    Expr, ObjectName, ObjectType, Query, SelectInto, SetExpr, Statement, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Mirrors the WIT `statement-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatementKind {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Copy,
    Create,
    Alter,
    Drop,
    Truncate,
    Grant,
    Revoke,
    Transaction,
    Set,
    Show,
    Explain,
    Call,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementInfo {
    pub kind: StatementKind,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
    pub has_where: bool,
    pub functions: Vec<String>,
}

/// The analysis of one SQL string (which may hold several statements).
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub statements: Vec<StatementInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// This analysis as JSON, made on first use: the statement's shape in
    /// decision-cache keys, and what audit records copy.
    #[serde(skip)]
    rendered: OnceLock<Box<RawValue>>,
    /// The same JSON as a shared string, for cache keys.
    #[serde(skip)]
    shape: OnceLock<Arc<str>>,
}

impl PartialEq for Analysis {
    fn eq(&self, other: &Self) -> bool {
        self.statements == other.statements && self.parse_error == other.parse_error
    }
}

impl Eq for Analysis {}

impl Analysis {
    /// The analysis as JSON; the same for every statement that differs only
    /// in literals.
    pub fn shape(&self) -> Arc<str> {
        self.shape
            .get_or_init(|| Arc::from(self.rendered().get()))
            .clone()
    }

    /// The analysis as JSON, rendered once.
    pub fn rendered(&self) -> &RawValue {
        self.rendered.get_or_init(|| {
            serde_json::value::to_raw_value(self).unwrap_or_else(|_| RawValue::NULL.to_owned())
        })
    }
}

/// Parses and classifies `sql`. Never fails: a parse failure is part of the answer.
pub fn analyze(sql: &str) -> Analysis {
    match Parser::parse_sql(&PostgreSqlDialect {}, sql) {
        Ok(stmts) => Analysis {
            statements: stmts.iter().map(classify).collect(),
            parse_error: None,
            rendered: OnceLock::new(),
            shape: OnceLock::new(),
        },
        Err(e) => Analysis {
            statements: vec![],
            parse_error: Some(e.to_string()),
            rendered: OnceLock::new(),
            shape: OnceLock::new(),
        },
    }
}

/// Analyses of statements seen before, keyed by their literal-free form.
///
/// What [`analyze`] reports (kinds, tables, WHERE, functions) depends on the
/// statement's tokens, never on the values of its numeric and string
/// literals; so `... WHERE aid = 17` and `... WHERE aid = 42` share one
/// analysis, and the parse runs once per statement shape instead of once per
/// statement. The key keeps every other token verbatim (identifiers with
/// their quoting, operators, keywords, `$n` placeholders, dollar-quoted
/// bodies) and the class of each literal. Statements that fail to parse are
/// not kept: their error message may quote a literal of that statement.
///
/// Most statements take a byte scan for their key ([`plain_literal_free_form`]);
/// anything that scan does not fully understand goes through the real
/// tokenizer instead. The two kinds of key never meet (distinct prefixes).
pub struct AnalysisCache {
    entries: Mutex<HashMap<Box<str>, Arc<Analysis>>>,
}

/// Longest statement kept; longer ones are analysed every time.
const CACHED_SQL_MAX: usize = 8 * 1024;
const CACHE_CAPACITY: usize = 4096;

impl Default for AnalysisCache {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl AnalysisCache {
    pub fn analyze(&self, sql: &str) -> Arc<Analysis> {
        let Some(key) = (sql.len() <= CACHED_SQL_MAX)
            .then(|| plain_literal_free_form(sql).or_else(|| literal_free_form(sql)))
            .flatten()
        else {
            return Arc::new(analyze(sql));
        };
        if let Some(hit) = self.lock().get(key.as_str()) {
            return hit.clone();
        }
        let fresh = Arc::new(analyze(sql));
        if fresh.parse_error.is_none() {
            let mut entries = self.lock();
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(key.into_boxed_str(), fresh.clone());
        }
        fresh
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<Analysis>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The statement's tokens with literals replaced by their class, whitespace
/// and comments dropped; `None` when it does not tokenize.
fn literal_free_form(sql: &str) -> Option<String> {
    use std::fmt::Write;
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut key = String::with_capacity(sql.len() + 1);
    key.push('t');
    for t in &tokens {
        match t {
            Token::Whitespace(_) => continue,
            Token::Number(..) => key.push_str("?num"),
            Token::SingleQuotedString(_) => key.push_str("?str"),
            Token::EscapedStringLiteral(_) => key.push_str("?estr"),
            Token::NationalStringLiteral(_) => key.push_str("?nstr"),
            Token::UnicodeStringLiteral(_) => key.push_str("?ustr"),
            Token::HexStringLiteral(_) => key.push_str("?xstr"),
            Token::SingleQuotedByteStringLiteral(_) => key.push_str("?bstr"),
            // Words print with their quoting, so "Foo" and Foo differ.
            Token::Word(w) => {
                let _ = write!(key, "w{w}");
            }
            other => {
                let _ = write!(key, "{other}");
            }
        }
        key.push('\u{1}');
    }
    Some(key)
}

/// The literal-free form of a statement made of plain SQL only, found by one
/// pass over its bytes: the text verbatim (whitespace included), except that
/// each unsigned decimal number and each plain `'...'` string is replaced by
/// its class. `None` (use the tokenizer) for anything the pass does not take
/// apart with certainty: non-ASCII or control bytes, comments, quoted
/// identifiers, dollar quotes, prefixed strings (`E'`, `U&'`, `B'`, `X'`,
/// `N'`), backslashes in strings, exponents, `.5`, `0x1F`, `1_000`,
/// unterminated strings. So two statements with the same key differ only
/// inside literals that the tokenizer reads as the same kinds of literal.
fn plain_literal_free_form(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let mut key = String::with_capacity(sql.len() + 1);
    key.push('f');
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let start = i;
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                if b.get(i) == Some(&b'\'') {
                    return None;
                }
                key.push_str(&sql[start..i]);
                continue;
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if b.get(i)
                    .is_some_and(|&n| word(n) || matches!(n, b'.' | b'\'' | b'"'))
                {
                    return None;
                }
                key.push_str("\u{1}n");
                continue;
            }
            b'\'' => {
                if i > 0 && b[i - 1] == b'&' {
                    return None;
                }
                i += 1;
                loop {
                    match b.get(i)? {
                        b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
                        b'\'' => break,
                        b'\\' => return None,
                        n if *n >= 0x80 || (n.is_ascii_control() && !n.is_ascii_whitespace()) => {
                            return None;
                        }
                        _ => i += 1,
                    }
                }
                i += 1;
                if b.get(i)
                    .is_some_and(|&n| word(n) || n == b'\'' || n == b'"')
                {
                    return None;
                }
                key.push_str("\u{1}s");
                continue;
            }
            b'$' => {
                // `$n` placeholders verbatim; anything else may open a dollar quote.
                let start = i;
                i += 1;
                if !b.get(i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i)
                    .is_some_and(|&n| word(n) || n == b'.' || n == b'\'')
                {
                    return None;
                }
                key.push_str(&sql[start..i]);
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
            b' ' | b'\t' | b'\n' | b'\r' => key.push(c as char),
            b'(' | b')' | b',' | b';' | b'=' | b'<' | b'>' | b'+' | b'-' | b'*' | b'/' | b'%'
            | b'^' | b':' | b'[' | b']' | b'|' | b'&' | b'~' | b'!' | b'@' | b'#' | b'?' | b'.' => {
                key.push(c as char)
            }
            _ => return None,
        }
        i += 1;
    }
    Some(key)
}

fn classify(stmt: &Statement) -> StatementInfo {
    let mut v = Collector::default();
    let _ = stmt.visit(&mut v);
    let written = v.written.clone();
    // Each written target was also visited as a relation once; the rest were read.
    let mut reads = v.relations.clone();
    for w in &written {
        if let Some(i) = reads.iter().position(|r| r == w) {
            reads.remove(i);
        }
    }
    let ctes = v.ctes;
    let mut tables_read: Vec<String> = Vec::new();
    for r in reads {
        if !ctes.contains(&r) && !tables_read.contains(&r) {
            tables_read.push(r);
        }
    }
    let mut tables_written: Vec<String> = Vec::new();
    for w in written {
        if !ctes.contains(&w) && !tables_written.contains(&w) {
            tables_written.push(w);
        }
    }
    let has_where = match stmt {
        Statement::Update(u) => u.selection.is_some(),
        Statement::Delete(d) => d.selection.is_some(),
        _ => false,
    };
    StatementInfo {
        kind: kind_of(stmt),
        tables_read,
        tables_written,
        has_where,
        functions: v.functions,
    }
}

fn kind_of(stmt: &Statement) -> StatementKind {
    use StatementKind as K;
    match stmt {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                kind_of(s)
            }
            _ => K::Select,
        },
        Statement::Insert(_) => K::Insert,
        Statement::Update(_) => K::Update,
        Statement::Delete(_) => K::Delete,
        Statement::Merge(_) => K::Merge,
        Statement::Copy { .. } => K::Copy,
        Statement::Truncate(_) => K::Truncate,
        Statement::Grant(_) | Statement::GrantRole(_) | Statement::AlterDefaultPrivileges(_) => {
            K::Grant
        }
        Statement::Revoke(_) | Statement::RevokeRole(_) => K::Revoke,
        Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. } => K::Transaction,
        Statement::Set(_) | Statement::Reset(_) => K::Set,
        Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCreate { .. } => K::Show,
        Statement::Explain { .. } | Statement::ExplainTable { .. } => K::Explain,
        Statement::Call(_) => K::Call,
        Statement::Drop { .. }
        | Statement::DropFunction(_)
        | Statement::DropDomain(_)
        | Statement::DropProcedure { .. }
        | Statement::DropPolicy(_)
        | Statement::DropRule(_)
        | Statement::DropTrigger(_)
        | Statement::DropExtension(_)
        | Statement::DropOperator(_)
        | Statement::DropOperatorFamily(_)
        | Statement::DropOperatorClass(_)
        | Statement::DropSecret { .. }
        | Statement::DropConnector { .. } => K::Drop,
        Statement::AlterTable(_)
        | Statement::AlterSchema(_)
        | Statement::AlterIndex { .. }
        | Statement::AlterView(_)
        | Statement::AlterFunction(_)
        | Statement::AlterType(_)
        | Statement::AlterCollation(_)
        | Statement::AlterOperator(_)
        | Statement::AlterOperatorFamily(_)
        | Statement::AlterOperatorClass(_)
        | Statement::AlterTextSearch(_)
        | Statement::AlterRole { .. }
        | Statement::AlterPolicy(_)
        | Statement::AlterTrigger(_)
        | Statement::AlterUser(_)
        | Statement::RenameTable(_)
        | Statement::Comment { .. } => K::Alter,
        Statement::CreateView(_)
        | Statement::CreateTable(_)
        | Statement::CreateVirtualTable { .. }
        | Statement::CreateIndex(_)
        | Statement::CreateRole(_)
        | Statement::CreateServer(_)
        | Statement::CreateForeignTable(_)
        | Statement::CreateForeignDataWrapper(_)
        | Statement::CreateUserMapping(_)
        | Statement::CreatePolicy(_)
        | Statement::CreateRule(_)
        | Statement::CreateOperator(_)
        | Statement::CreateOperatorFamily(_)
        | Statement::CreateOperatorClass(_)
        | Statement::CreateTextSearch(_)
        | Statement::CreateAggregate(_)
        | Statement::CreateExtension(_)
        | Statement::CreateCollation(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateTrigger(_)
        | Statement::CreateProcedure { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateType { .. }
        | Statement::CreateUser(_) => K::Create,
        _ => K::Other,
    }
}

/// Collects relations, written targets, functions and CTE names in one walk.
#[derive(Default)]
struct Collector {
    relations: Vec<String>,
    written: Vec<String>,
    functions: Vec<String>,
    ctes: Vec<String>,
}

impl Collector {
    fn write_targets(&mut self, stmt: &Statement) {
        let mut targets = Vec::new();
        let mut visit_into = |node: &dyn VisitRelations| node.relations(&mut targets);
        match stmt {
            Statement::Insert(i) => visit_into(&i.table),
            Statement::Update(u) => targets.extend(table_factor_name(&u.table.relation)),
            Statement::Delete(d) => {
                for n in &d.tables {
                    targets.push(name(n));
                }
                let from = match &d.from {
                    sqlparser::ast::FromTable::WithFromKeyword(t)
                    | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
                };
                if d.tables.is_empty() {
                    for t in from {
                        targets.extend(table_factor_name(&t.relation));
                    }
                }
            }
            Statement::Merge(m) => targets.extend(table_factor_name(&m.table)),
            Statement::Truncate(t) => {
                for n in &t.table_names {
                    targets.push(name(&n.name));
                }
            }
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::View | ObjectType::MaterializedView,
                names,
                ..
            } => targets.extend(names.iter().map(name)),
            Statement::CreateTable(c) => targets.push(name(&c.name)),
            Statement::AlterTable(a) => targets.push(name(&a.name)),
            Statement::Copy {
                source: sqlparser::ast::CopySource::Table { table_name, .. },
                to,
                ..
            } => {
                // The grammar does not visit COPY's table as a relation.
                if *to {
                    self.relations.push(name(table_name));
                } else {
                    targets.push(name(table_name));
                }
            }
            _ => {}
        }
        self.written.extend(targets);
    }
}

/// A node whose relations can be listed on their own.
trait VisitRelations {
    fn relations(&self, out: &mut Vec<String>);
}

impl<T: Visit> VisitRelations for T {
    fn relations(&self, out: &mut Vec<String>) {
        let _ = sqlparser::ast::visit_relations(self, |r| {
            out.push(name(r));
            ControlFlow::<()>::Continue(())
        });
    }
}

fn table_factor_name(t: &sqlparser::ast::TableFactor) -> Option<String> {
    match t {
        sqlparser::ast::TableFactor::Table { name: n, .. } => Some(name(n)),
        _ => None,
    }
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.relations.push(name(relation));
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        self.write_targets(statement);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.push(ident(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &sqlparser::ast::Select) -> ControlFlow<()> {
        if let Some(SelectInto { targets, .. }) = &select.into {
            for t in targets {
                match t {
                    Expr::Identifier(i) => self.written.push(ident(i)),
                    Expr::CompoundIdentifier(parts) => self
                        .written
                        .push(parts.iter().map(ident).collect::<Vec<_>>().join(".")),
                    _ => {}
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            let n = name(&f.name);
            if !self.functions.contains(&n) {
                self.functions.push(n);
            }
        }
        ControlFlow::Continue(())
    }
}

/// PostgreSQL folds unquoted identifiers to lower case; quoted ones are kept.
fn ident(i: &sqlparser::ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

fn name(n: &ObjectName) -> String {
    n.0.iter()
        .map(|p| match p.as_ident() {
            Some(i) => ident(i),
            None => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> StatementInfo {
        let a = analyze(sql);
        assert!(a.parse_error.is_none(), "{sql}: {:?}", a.parse_error);
        assert_eq!(a.statements.len(), 1);
        a.statements.into_iter().next().unwrap()
    }

    #[test]
    fn select_reads_tables_and_calls_functions() {
        let s = one(
            "WITH recent AS (SELECT * FROM Orders) SELECT lower(u.email), count(*) FROM public.users u JOIN recent r ON r.uid = u.id GROUP BY 1",
        );
        assert_eq!(s.kind, StatementKind::Select);
        assert_eq!(s.tables_read, vec!["orders", "public.users"]);
        assert!(s.tables_written.is_empty());
        assert_eq!(s.functions, vec!["lower", "count"]);
    }

    #[test]
    fn writes_are_told_apart_from_reads() {
        let s = one("INSERT INTO audit_copy SELECT * FROM accounts");
        assert_eq!(s.kind, StatementKind::Insert);
        assert_eq!(s.tables_written, vec!["audit_copy"]);
        assert_eq!(s.tables_read, vec!["accounts"]);

        let s = one("UPDATE accounts SET balance = 0");
        assert_eq!(s.kind, StatementKind::Update);
        assert!(!s.has_where);
        assert_eq!(s.tables_written, vec!["accounts"]);

        let s = one("DELETE FROM accounts WHERE id IN (SELECT id FROM closed)");
        assert!(s.has_where);
        assert_eq!(s.tables_written, vec!["accounts"]);
        assert_eq!(s.tables_read, vec!["closed"]);

        let s = one("SELECT * INTO backup FROM accounts");
        assert_eq!(s.tables_written, vec!["backup"]);
    }

    #[test]
    fn ddl_and_utility_statements() {
        assert_eq!(one("DROP TABLE users").kind, StatementKind::Drop);
        assert_eq!(one("DROP TABLE users").tables_written, vec!["users"]);
        assert_eq!(
            one("TRUNCATE \"Users\"").tables_written,
            vec!["Users".to_string()]
        );
        assert_eq!(one("CREATE TABLE t (id int)").kind, StatementKind::Create);
        assert_eq!(
            one("ALTER TABLE t ADD COLUMN x int").kind,
            StatementKind::Alter
        );
        assert_eq!(one("BEGIN").kind, StatementKind::Transaction);
        assert_eq!(one("SET search_path = x").kind, StatementKind::Set);
        assert_eq!(one("GRANT SELECT ON t TO bob").kind, StatementKind::Grant);
        assert_eq!(
            one("COPY t FROM STDIN").tables_written,
            vec!["t".to_string()]
        );
        assert_eq!(one("COPY t TO STDOUT").tables_read, vec!["t".to_string()]);
        assert_eq!(one("EXPLAIN SELECT 1").kind, StatementKind::Explain);
    }

    #[test]
    fn several_statements_and_parse_errors() {
        let a = analyze("BEGIN; DELETE FROM t; COMMIT");
        assert_eq!(a.statements.len(), 3);
        assert_eq!(a.statements[1].kind, StatementKind::Delete);
        let a = analyze("SELEC 1");
        assert!(a.parse_error.is_some());
        assert!(a.statements.is_empty());
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(analyze(&sql).parse_error.is_some());
    }

    #[test]
    fn statements_that_differ_only_in_literals_share_one_analysis() {
        let cache = AnalysisCache::default();
        let a = cache.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 17;");
        let b = cache.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 42;");
        assert!(Arc::ptr_eq(&a, &b), "same shape, one parse");
        // Through the tokenizer (a comment), whitespace and comments do not count.
        let c = cache.analyze("SELECT abalance /* one */ FROM pgbench_accounts WHERE aid = 1;");
        let d = cache.analyze("SELECT abalance\n  FROM pgbench_accounts /* two */ WHERE aid = 2;");
        assert!(Arc::ptr_eq(&c, &d), "same tokens, one parse");
        assert_eq!(*c, *a);
        assert_eq!(
            *a,
            analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 42")
        );
        // Anything but a literal's value is a different statement.
        let other = [
            "SELECT abalance FROM pgbench_branches WHERE aid = 17",
            "SELECT abalance FROM \"PgBench_Accounts\" WHERE aid = 17",
            "SELECT abalance FROM pgbench_accounts WHERE aid = '17'",
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 17; DROP TABLE t",
            "SELECT abalance FROM pgbench_accounts",
        ];
        for sql in other {
            let c = cache.analyze(sql);
            assert!(!Arc::ptr_eq(&a, &c), "{sql}");
            assert_eq!(*c, analyze(sql), "{sql}");
        }
        let d = cache.analyze("DELETE FROM t WHERE id = 1");
        let e = cache.analyze("DELETE FROM t");
        assert!(d.statements[0].has_where && !e.statements[0].has_where);
    }

    #[test]
    fn failed_parses_are_not_shared() {
        let cache = AnalysisCache::default();
        let a = cache.analyze("SELEC 'secret-one'");
        let b = cache.analyze("SELEC 'secret-two'");
        assert!(a.parse_error.is_some());
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(
            !b.parse_error
                .as_deref()
                .unwrap_or("")
                .contains("secret-one")
        );
    }

    #[test]
    fn the_byte_scan_takes_plain_sql_and_leaves_the_rest_to_the_tokenizer() {
        let key = plain_literal_free_form;
        assert_eq!(
            key("SELECT abalance FROM pgbench_accounts WHERE aid = 17;"),
            key("SELECT abalance FROM pgbench_accounts WHERE aid = 123456;")
        );
        assert_eq!(
            key("UPDATE t SET v = 'it''s' WHERE id = $1 AND x > 2.5"),
            key("UPDATE t SET v = 'x' WHERE id = $1 AND x > 7")
        );
        assert_ne!(key("SELECT 1"), key("SELECT '1'"));
        assert_ne!(key("SELECT a FROM t"), key("SELECT a  FROM t"));
        assert_ne!(key("SELECT $1"), key("SELECT $2"));
        for sql in [
            "SELECT 1 -- comment",
            "SELECT 1 /* c */",
            "SELECT \"Name\" FROM t",
            "SELECT $$body$$",
            "SELECT $tag$x$tag$",
            "SELECT E'a\\nb'",
            "SELECT U&'d\\0061t'",
            "SELECT x'1F', b'101', n'abc'",
            "SELECT 'a\\'' FROM t",
            "SELECT 1e5",
            "SELECT .5",
            "SELECT 0x1F",
            "SELECT 1_000",
            "SELECT 1.2.3",
            "SELECT 'unterminated",
            "SELECT 'a''b'c'",
            "SELECT 'é'",
            "SELECT café FROM t",
            "SELECT 1\u{0}",
            "SELECT t.1",
            "SELECT $1x",
        ] {
            assert_eq!(key(sql), None, "{sql}");
        }
    }

    /// Builds a statement from parts; literals come from the random values
    /// so that two calls with different values differ only inside literals.
    fn statement_from(parts: &[u8], numbers: &[u32], strings: &[String]) -> String {
        const WORDS: &[&str] = &[
            "SELECT", "FROM", "WHERE", "t", "u", "a", "b", "DELETE", "UPDATE", "SET", "INSERT",
            "INTO", "VALUES", "DROP", "TABLE", "AND", "OR", "LIMIT", "now", "count", "E", "x",
        ];
        const PUNCT: &[&str] = &[
            " ", "\n", "(", ")", ",", ";", "=", "<", ">", "*", ".", "::", "-", "/", "$1", "'",
            "\"", "--", "/*", "*/", "$$", "\\",
        ];
        let (mut n, mut s) = (numbers.iter().cycle(), strings.iter().cycle());
        let mut out = String::new();
        for &p in parts {
            match p % 4 {
                0 => out.push_str(WORDS[p as usize / 4 % WORDS.len()]),
                1 => out.push_str(PUNCT[p as usize / 4 % PUNCT.len()]),
                2 => out.push_str(&n.next().copied().unwrap_or(0).to_string()),
                _ => {
                    out.push('\'');
                    out.push_str(&s.next().cloned().unwrap_or_default().replace('\'', "''"));
                    out.push('\'');
                }
            }
            if p % 3 == 0 {
                out.push(' ');
            }
        }
        out
    }

    const TEMPLATES: &[&str] = &[
        "SELECT abalance FROM pgbench_accounts WHERE aid = {n};",
        "UPDATE pgbench_accounts SET abalance = abalance + {n} WHERE aid = {n};",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({n}, {n}, {n}, {n}, CURRENT_TIMESTAMP);",
        "SELECT * FROM customers WHERE email = {s} AND id > {n} LIMIT {n}",
        "DELETE FROM orders WHERE note = {s} OR total < {n}.{n}",
        "SELECT lower({s}), count(*) FROM t GROUP BY 1 HAVING count(*) > {n}",
        "SELECT {s}::text, $1, a.b FROM a JOIN b ON a.id = b.id WHERE a.x IN ({n}, {n})",
        "DROP TABLE t{n}",
        "SELECT 1 FROM t WHERE {s} = {s}; DELETE FROM t",
    ];

    fn fill(template: &str, numbers: &[u32], strings: &[String]) -> String {
        let (mut n, mut s) = (numbers.iter().cycle(), strings.iter().cycle());
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let slot = &rest[i..i + 3];
            if slot == "{n}" {
                out.push_str(&n.next().copied().unwrap_or(0).to_string());
            } else {
                out.push('\'');
                out.push_str(&s.next().cloned().unwrap_or_default().replace('\'', "''"));
                out.push('\'');
            }
            rest = &rest[i + 3..];
        }
        out.push_str(rest);
        out
    }

    proptest::proptest! {
        /// Real statements with any literal values (quotes, backslashes,
        /// comment markers and non-ASCII text inside strings included): the
        /// cache answers exactly what a fresh parse answers.
        #[test]
        fn the_cache_answers_what_a_fresh_parse_answers(
            t in 0..TEMPLATES.len(),
            n1 in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..4),
            n2 in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..4),
            s1 in proptest::collection::vec("(.|--|/\\*|\\\\|')*", 1..4),
            s2 in proptest::collection::vec("[a-z@. ]{0,8}", 1..4),
        ) {
            let cache = AnalysisCache::default();
            for sql in [fill(TEMPLATES[t], &n2, &s2), fill(TEMPLATES[t], &n1, &s1)] {
                let fresh = analyze(&sql);
                proptest::prop_assert!(fresh.parse_error.is_none(), "{}: {:?}", sql, fresh.parse_error);
                proptest::prop_assert_eq!(&*cache.analyze(&sql), &fresh, "{}", sql);
            }
        }
    }

    proptest::proptest! {
        /// Two statements with the same byte-scan key get the same analysis:
        /// the scan never puts statements that differ outside literals, or
        /// whose literals the tokenizer reads differently, under one key.
        #[test]
        fn one_byte_scan_key_means_one_analysis(
            parts in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..24),
            n1 in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..4),
            n2 in proptest::collection::vec(proptest::prelude::any::<u32>(), 1..4),
            s1 in proptest::collection::vec(".{0,6}", 1..4),
            s2 in proptest::collection::vec(".{0,6}", 1..4),
        ) {
            let a = statement_from(&parts, &n1, &s1);
            let b = statement_from(&parts, &n2, &s2);
            if let (Some(ka), Some(kb)) = (plain_literal_free_form(&a), plain_literal_free_form(&b))
                && ka == kb
            {
                let (x, y) = (analyze(&a), analyze(&b));
                if x.parse_error.is_none() && y.parse_error.is_none() {
                    proptest::prop_assert_eq!(x, y, "{} | {}", a, b);
                }
            }
            // Through the cache, every statement gets its own analysis's answer.
            let cache = AnalysisCache::default();
            let (ca, cb) = (cache.analyze(&a), cache.analyze(&b));
            let (fa, fb) = (analyze(&a), analyze(&b));
            if fa.parse_error.is_none() {
                proptest::prop_assert_eq!(&*ca, &fa, "{}", a);
            }
            if fb.parse_error.is_none() {
                proptest::prop_assert_eq!(&*cb, &fb, "{}", b);
            }
        }
    }
}
