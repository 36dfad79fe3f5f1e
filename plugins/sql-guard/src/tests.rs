use super::*;
use bindings::meta::Guest as _;
use bindings::postgres::{Guest as _, StatementKind as K};
use gatehouse_sdk::MaskRule;
use gatehouse_sdk::testing::{self, context};
use gatehouse_sdk::types::{ApprovalScope, Grant, MaskMethod, PartialKeep, Protocol};

/// Close to the example in `plugins/README.md` (checked on its own below).
const SETTINGS: &str = r#"{
  "rules": [
    {"action": "deny", "kinds": ["drop", "truncate"], "unless_groups": ["dba"],
     "reason": "DROP and TRUNCATE need a DBA"},
    {"action": "deny", "tables_read": ["secrets"]},
    {"action": "deny", "functions": ["pg_read_file"]},
    {"action": "deny", "without_where": true, "unless_groups": ["dba"]},
    {"action": "approve", "tables_written": ["payments"], "approvers": ["finance"],
     "timeout_secs": 120, "grant_secs": 600},
    {"action": "approve", "kinds": ["alter"], "tables_written": ["public.users"],
     "approvers": ["dba", "sec"], "reason": "schema changes need a DBA"}
  ],
  "unparsable": "deny",
  "mask": [
    {"column": "email", "method": "partial", "prefix": 2, "suffix": 4},
    {"detector": "credit-card", "method": "redact"},
    {"pattern": "sk_live_[A-Za-z0-9]{10,}", "method": "hash"},
    {"column": "ssn", "unless_groups": ["hr"]}
  ]
}"#;

/// A statement fixture: `st(K::Select).reads(["users"])`.
fn st(kind: K) -> Statement {
    Statement {
        kind,
        tables_read: Vec::new(),
        tables_written: Vec::new(),
        has_where: false,
        functions: Vec::new(),
    }
}

fn strings<const N: usize>(names: [&str; N]) -> Vec<String> {
    names.into_iter().map(str::to_owned).collect()
}

trait StatementFixture {
    fn reads<const N: usize>(self, tables: [&str; N]) -> Statement;
    fn writes<const N: usize>(self, tables: [&str; N]) -> Statement;
    fn calls<const N: usize>(self, functions: [&str; N]) -> Statement;
    fn with_where(self) -> Statement;
}

impl StatementFixture for Statement {
    fn reads<const N: usize>(mut self, tables: [&str; N]) -> Statement {
        self.tables_read = strings(tables);
        self
    }
    fn writes<const N: usize>(mut self, tables: [&str; N]) -> Statement {
        self.tables_written = strings(tables);
        self
    }
    fn calls<const N: usize>(mut self, functions: [&str; N]) -> Statement {
        self.functions = strings(functions);
        self
    }
    fn with_where(mut self) -> Statement {
        self.has_where = true;
        self
    }
}

fn query(statements: Vec<Statement>) -> Query {
    Query {
        sql: "-- fixture".into(),
        parameters: Vec::new(),
        statements,
        parse_error: None,
    }
}

fn unparsable_query(error: &str) -> Query {
    Query {
        sql: "SELEC 1".into(),
        parameters: Vec::new(),
        statements: Vec::new(),
        parse_error: Some(error.into()),
    }
}

fn on_query(settings: &str, groups: &[&str], q: Query) -> Decision {
    testing::with_settings(settings, || {
        let ctx = context()
            .protocol(Protocol::Postgres)
            .groups(groups.iter().copied())
            .build();
        SqlGuard::on_query(ctx, q)
    })
}

fn run(settings: &str, groups: &[&str], statements: Vec<Statement>) -> Decision {
    on_query(settings, groups, query(statements))
}

// --- kinds and unless_groups ---

#[test]
fn deny_by_kind_with_reason() {
    let d = run(SETTINGS, &[], vec![st(K::Drop).writes(["users"])]);
    assert_eq!(d.deny_reason(), Some("DROP and TRUNCATE need a DBA"));
    assert_eq!(d.annotation("rule"), Some("rules[0]"));
    let d = run(SETTINGS, &[], vec![st(K::Truncate).writes(["audit"])]);
    assert_eq!(d.annotation("rule"), Some("rules[0]"));
}

#[test]
fn default_reason_names_what_matched() {
    let settings = r#"{"rules": [{"action": "deny", "kinds": ["drop"]}]}"#;
    let d = run(settings, &[], vec![st(K::Drop).writes(["users"])]);
    assert_eq!(d.deny_reason(), Some("DROP of users is not allowed"));
    let d = run(settings, &[], vec![st(K::Drop)]);
    assert_eq!(d.deny_reason(), Some("DROP is not allowed"));
}

#[test]
fn unless_groups_exempts_and_falls_through() {
    // A DBA's DROP passes rule 0; nothing else matches, so the masks apply.
    let d = run(SETTINGS, &["dba"], vec![st(K::Drop).writes(["users"])]);
    assert_eq!(d.annotation("rule"), Some("mask"));
    // Exempt from a deny, a caller still meets later rules.
    let d = run(SETTINGS, &["dba"], vec![st(K::Delete).writes(["payments"])]);
    assert_eq!(d.annotation("rule"), Some("rules[4]"));
    assert!(d.approval().is_some());
}

#[test]
fn kinds_absent_or_empty_match_every_kind() {
    let settings = r#"{"rules": [{"action": "deny", "kinds": [], "tables_read": ["t"]}]}"#;
    for kind in [K::Select, K::Insert, K::Other] {
        assert!(
            run(settings, &[], vec![st(kind).reads(["t"])])
                .deny_reason()
                .is_some()
        );
    }
    // A rule with no conditions matches any statement, but not an empty query.
    let settings = r#"{"rules": [{"action": "deny", "unless_groups": ["dba"]}]}"#;
    let d = run(settings, &[], vec![st(K::Select)]);
    assert_eq!(d.deny_reason(), Some("SELECT is not allowed"));
    assert!(run(settings, &["dba"], vec![st(K::Select)]).is_allow());
    assert!(run(settings, &[], vec![]).is_allow());
}

// --- tables, functions, WHERE ---

#[test]
fn tables_read() {
    let d = run(
        SETTINGS,
        &[],
        vec![st(K::Select).reads(["orders", "secrets"])],
    );
    assert_eq!(d.deny_reason(), Some("SELECT from secrets is not allowed"));
    assert_eq!(d.annotation("rule"), Some("rules[1]"));
    // Written, not read: rule 1 does not apply.
    let d = run(SETTINGS, &[], vec![st(K::Insert).writes(["secrets"])]);
    assert_eq!(d.annotation("rule"), Some("mask"));
}

#[test]
fn table_names_ignore_case_and_bare_names_ignore_the_schema() {
    for name in [
        "secrets",
        "SECRETS",
        "public.secrets",
        "Vault.Secrets",
        "db.s.secrets",
    ] {
        let d = run(SETTINGS, &[], vec![st(K::Select).reads([name])]);
        assert_eq!(d.annotation("rule"), Some("rules[1]"), "{name}");
    }
    assert_eq!(
        run(SETTINGS, &[], vec![st(K::Select).reads(["secrets_old"])]).annotation("rule"),
        Some("mask")
    );
}

#[test]
fn qualified_names_match_only_that_schema() {
    let settings = r#"{"rules": [{"action": "deny", "tables_written": ["Public.Users"]}]}"#;
    for name in ["public.users", "PUBLIC.USERS", "db.public.users"] {
        let d = run(
            settings,
            &[],
            vec![st(K::Update).writes([name]).with_where()],
        );
        assert_eq!(d.annotation("rule"), Some("rules[0]"), "{name}");
    }
    for name in ["users", "other.users", "public.users2"] {
        let d = run(
            settings,
            &[],
            vec![st(K::Update).writes([name]).with_where()],
        );
        assert!(d.is_allow(), "{name}: {d:?}");
    }
}

#[test]
fn tables_written() {
    let settings = r#"{"rules": [{"action": "deny", "tables_written": ["payments"]}]}"#;
    let d = run(
        settings,
        &[],
        vec![st(K::Insert).writes(["Payments"]).reads(["staging"])],
    );
    assert_eq!(d.deny_reason(), Some("INSERT of Payments is not allowed"));
    // Read only: no match.
    assert!(run(settings, &[], vec![st(K::Select).reads(["payments"])]).is_allow());
}

#[test]
fn functions_match_with_or_without_schema() {
    for f in ["pg_read_file", "PG_READ_FILE", "pg_catalog.pg_read_file"] {
        let d = run(SETTINGS, &[], vec![st(K::Select).calls(["lower", f])]);
        assert_eq!(d.annotation("rule"), Some("rules[2]"), "{f}");
        assert_eq!(
            d.deny_reason().map(str::to_owned),
            Some(format!("SELECT calling {f} is not allowed"))
        );
    }
    let d = run(
        SETTINGS,
        &[],
        vec![st(K::Select).calls(["pg_read_binary_file"])],
    );
    assert_eq!(d.annotation("rule"), Some("mask"));
}

#[test]
fn without_where_only_hits_update_and_delete() {
    let d = run(SETTINGS, &[], vec![st(K::Update).writes(["accounts"])]);
    assert_eq!(
        d.deny_reason(),
        Some("UPDATE of accounts without a WHERE clause is not allowed")
    );
    assert_eq!(d.annotation("rule"), Some("rules[3]"));
    let d = run(SETTINGS, &[], vec![st(K::Delete).writes(["accounts"])]);
    assert_eq!(d.annotation("rule"), Some("rules[3]"));
    for s in [
        st(K::Update).writes(["accounts"]).with_where(),
        st(K::Delete).writes(["accounts"]).with_where(),
        st(K::Select).reads(["accounts"]),
        st(K::Insert).writes(["accounts"]),
    ] {
        assert_eq!(run(SETTINGS, &[], vec![s]).annotation("rule"), Some("mask"));
    }
    // `false` is no condition at all.
    let settings =
        r#"{"rules": [{"action": "deny", "kinds": ["update"], "without_where": false}]}"#;
    assert!(
        run(settings, &[], vec![st(K::Update).with_where()])
            .deny_reason()
            .is_some()
    );
}

#[test]
fn one_statement_must_meet_every_condition() {
    let settings = r#"{"rules": [{"action": "deny", "kinds": ["delete"], "tables_written": ["payments"],
                                  "functions": ["now"]}]}"#;
    // The conditions are spread over two statements: no match.
    let split = vec![
        st(K::Delete).writes(["users"]).calls(["now"]).with_where(),
        st(K::Update).writes(["payments"]).with_where(),
    ];
    assert!(run(settings, &[], split).is_allow());
    // Any one statement meeting all of them is enough.
    let d = run(
        settings,
        &[],
        vec![
            st(K::Transaction),
            st(K::Delete)
                .writes(["payments"])
                .calls(["now"])
                .with_where(),
            st(K::Transaction),
        ],
    );
    assert_eq!(
        d.deny_reason(),
        Some("DELETE of payments calling now is not allowed")
    );
}

#[test]
fn long_default_reasons_list_five_names() {
    let settings = r#"{"rules": [{"action": "deny", "kinds": ["truncate"]}]}"#;
    let d = run(
        settings,
        &[],
        vec![st(K::Truncate).writes(["a", "b", "c", "d", "e", "f", "g"])],
    );
    assert_eq!(
        d.deny_reason(),
        Some("TRUNCATE of a, b, c, d, e and 2 more is not allowed")
    );
    let d = run(settings, &[], vec![st(K::Truncate).writes(["a", "b"])]);
    assert_eq!(d.deny_reason(), Some("TRUNCATE of a and b is not allowed"));
    let long = "x".repeat(3000);
    let d = run(settings, &[], vec![st(K::Truncate).writes([long.as_str()])]);
    let reason = d.deny_reason().expect("deny");
    assert!(reason.len() <= config::MAX_REASON_BYTES && reason.ends_with('…'));
}

// --- approval ---

#[test]
fn deny_wins_over_an_earlier_approve_rule() {
    let settings = r#"{"rules": [
        {"action": "approve", "kinds": ["drop"], "approvers": ["dba"]},
        {"action": "deny", "tables_written": ["users"]}
    ]}"#;
    let d = run(settings, &[], vec![st(K::Drop).writes(["users"])]);
    assert_eq!(d.annotation("rule"), Some("rules[1]"));
    let d = run(settings, &[], vec![st(K::Drop).writes(["orders"])]);
    assert_eq!(d.annotation("rule"), Some("rules[0]"));
}

#[test]
fn approve_with_grant_keyed_by_rule_and_tables() {
    let d = run(
        SETTINGS,
        &[],
        vec![
            st(K::Update)
                .writes(["Payments"])
                .reads(["rates"])
                .with_where(),
            st(K::Insert).writes(["payments"]).reads(["audit"]),
            st(K::Select).reads(["unrelated"]),
        ],
    );
    let a = d.approval().expect("approval");
    assert_eq!(a.reason, "UPDATE of Payments needs approval");
    assert_eq!(a.approver_groups, ["finance"]);
    assert_eq!(a.timeout_secs, 120);
    assert_eq!(
        a.scope,
        ApprovalScope::Grant(Grant {
            key: "rules[4] audit,payments,rates".into(),
            duration_secs: 600
        })
    );
    assert_eq!(d.annotation("rule"), Some("rules[4]"));
}

#[test]
fn approve_once_with_defaults() {
    let d = run(SETTINGS, &[], vec![st(K::Alter).writes(["public.users"])]);
    let a = d.approval().expect("approval");
    assert_eq!(a.reason, "schema changes need a DBA");
    assert_eq!(a.approver_groups, ["dba", "sec"]);
    assert_eq!(a.timeout_secs, config::DEFAULT_TIMEOUT_SECS);
    assert_eq!(a.scope, ApprovalScope::Once);
    assert_eq!(d.annotation("rule"), Some("rules[5]"));
}

#[test]
fn approve_grant_without_tables_uses_a_star() {
    let settings = r#"{"rules": [{"action": "approve", "kinds": ["set"], "approvers": ["dba"], "grant_secs": 60}]}"#;
    let d = run(settings, &[], vec![st(K::Set)]);
    let a = d.approval().expect("approval");
    assert_eq!(a.reason, "SET needs approval");
    assert_eq!(
        a.scope,
        ApprovalScope::Grant(Grant {
            key: "rules[0] *".into(),
            duration_secs: 60
        })
    );
}

#[test]
fn approve_rules_honour_unless_groups() {
    let settings = r#"{"rules": [{"action": "approve", "kinds": ["create"], "approvers": ["dba"],
                                  "unless_groups": ["dba", "migrations"]}]}"#;
    assert!(run(settings, &[], vec![st(K::Create)]).approval().is_some());
    assert!(run(settings, &["migrations"], vec![st(K::Create)]).is_allow());
}

// --- unparsable SQL ---

#[test]
fn unparsable_is_denied_by_default() {
    for settings in ["{}", r#"{"unparsable": "deny"}"#] {
        let d = on_query(
            settings,
            &["dba"],
            unparsable_query("Expected SELECT, found SELEC"),
        );
        assert_eq!(
            d.deny_reason(),
            Some(
                "the query could not be parsed, so sql-guard cannot check it: Expected SELECT, found SELEC"
            )
        );
        assert_eq!(d.annotation("rule"), Some("unparsable"));
    }
}

#[test]
fn unparsable_allow_still_masks() {
    let settings =
        r#"{"unparsable": "allow", "mask": [{"column": "ssn", "unless_groups": ["hr"]}]}"#;
    let d = on_query(settings, &[], unparsable_query("bad"));
    assert_eq!(d.mask_rules(), Some(&[MaskRule::column("ssn")][..]));
    assert_eq!(d.annotation("rule"), Some("mask"));
    assert_eq!(d.annotation("unparsable"), Some("allow"));
    let d = on_query(settings, &["hr"], unparsable_query("bad"));
    assert!(d.is_allow());
    assert_eq!(d.annotation("rule"), Some("unparsable"));
}

#[test]
fn unparsable_approve() {
    let settings =
        r#"{"unparsable": {"action": "approve", "approvers": ["dba"], "timeout_secs": 60}}"#;
    let d = on_query(settings, &[], unparsable_query("bad"));
    let a = d.approval().expect("approval");
    assert_eq!(a.approver_groups, ["dba"]);
    assert_eq!(a.timeout_secs, 60);
    assert_eq!(a.scope, ApprovalScope::Once);
    assert!(a.reason.ends_with(": bad"));
    assert_eq!(d.annotation("rule"), Some("unparsable"));
}

// --- masks ---

#[test]
fn masks_for_everyone_and_per_group() {
    let d = run(SETTINGS, &[], vec![st(K::Select).reads(["users"])]);
    let rules = d.mask_rules().expect("mask");
    assert_eq!(
        rules,
        [
            MaskRule::column("email").partial(2, 4),
            MaskRule::detector("credit-card"),
            MaskRule::pattern("sk_live_[A-Za-z0-9]{10,}").hash(),
            MaskRule::column("ssn"),
        ]
    );
    assert_eq!(d.annotation("rule"), Some("mask"));
    // HR sees the SSN column; the other masks still apply.
    let d = run(SETTINGS, &["hr"], vec![st(K::Select).reads(["users"])]);
    assert_eq!(d.mask_rules().map(<[_]>::len), Some(3));
    assert!(
        !d.mask_rules()
            .expect("mask")
            .contains(&MaskRule::column("ssn"))
    );
    // Every entry exempted: plain allow.
    let settings = r#"{"mask": [{"column": "ssn", "unless_groups": ["hr"]}]}"#;
    let d = run(settings, &["hr"], vec![st(K::Select)]);
    assert!(d.is_allow());
    // Only the promise that the decision may be reused for the same shape.
    assert_eq!(d.annotation("rule"), None);
    assert_eq!(d.annotation("gatehouse:cache"), Some("statement"));
}

#[test]
fn mask_targets_and_methods() {
    let settings = r#"{"mask": [
        {"column": "public.users.email", "method": "partial", "suffix": 3},
        {"column": "type:bytea", "method": "hash"},
        {"column": "users.ssn", "method": "redact"}
    ]}"#;
    let d = run(settings, &[], vec![st(K::Select)]);
    let rules = d.mask_rules().expect("mask");
    assert_eq!(
        rules[0].method,
        MaskMethod::Partial(PartialKeep {
            prefix: 0,
            suffix: 3
        })
    );
    assert_eq!(rules[1], MaskRule::column("type:bytea").hash());
    assert_eq!(rules[2], MaskRule::column("users.ssn"));
}

#[test]
fn denied_queries_carry_no_masks() {
    let d = run(SETTINGS, &[], vec![st(K::Select).reads(["secrets"])]);
    assert!(d.mask_rules().is_none());
}

#[test]
fn on_result_columns_masks_again() {
    let d = testing::with_settings(SETTINGS, || {
        SqlGuard::on_result_columns(
            context().build(),
            query(vec![st(K::Select).reads(["users"])]),
            vec![Column {
                name: "email".into(),
                table: Some("public.users".into()),
                type_name: "text".into(),
            }],
        )
    });
    // Held statements get their masks here once approved.
    assert!(d.mask_rules().is_some_and(|r| !r.is_empty()));
}

#[test]
fn allow_with_empty_settings() {
    for settings in ["{}", "", "  "] {
        assert!(run(settings, &[], vec![st(K::Drop).writes(["users"])]).is_allow());
    }
}

#[test]
fn invalid_settings_at_runtime_fail_closed() {
    let d = run(r#"{"rules": 1}"#, &[], vec![st(K::Select)]);
    assert!(d.deny_reason().is_some_and(|r| r.contains("misconfigured")));
    assert_eq!(d.annotation("rule"), Some("settings"));
    assert_eq!(
        testing::take_logs()[0].field("error"),
        Some("rules: expected an array")
    );
}

#[test]
fn name_matching() {
    assert!(name_matches("users", "users"));
    assert!(name_matches("users", "public.users"));
    assert!(name_matches("USERS", "Public.users"));
    assert!(name_matches("public.users", "public.users"));
    assert!(name_matches("public.users", "db.public.users"));
    assert!(!name_matches("public.users", "users"));
    assert!(!name_matches("public.users", "private.users"));
    assert!(!name_matches("users", "users2"));
    assert!(name_matches("ÜSERS", "üsers"));
}

// --- describe and validate-config ---

#[test]
fn describe_has_schema() {
    let d = SqlGuard::describe();
    assert_eq!(d.name, "sql-guard");
    assert_eq!(d.protocols, [Protocol::Postgres]);
    let schema: serde_json::Value =
        serde_json::from_str(&d.settings_schema).expect("schema is JSON");
    assert_eq!(schema["type"], "object");
    let kinds: Vec<&str> = schema["$defs"]["kind"]["enum"]
        .as_array()
        .expect("kind enum")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let known: Vec<&str> = KINDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(kinds, known);
}

#[test]
fn validate_accepts_examples() {
    assert_eq!(SqlGuard::validate_config(SETTINGS.into()), Ok(()));
    assert_eq!(SqlGuard::validate_config(String::new()), Ok(()));
    assert_eq!(SqlGuard::validate_config("{}".into()), Ok(()));
    assert_eq!(
        SqlGuard::validate_config(r#"{"unparsable": "allow", "rules": null, "mask": []}"#.into()),
        Ok(())
    );
}

#[test]
fn readme_example_is_valid() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split_once("## sql-guard")
        .map(|(_, rest)| rest)
        .expect("README has a sql-guard section");
    let example = section
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(json, _)| json)
        .expect("the section has a JSON example");
    assert_eq!(SqlGuard::validate_config(example.into()), Ok(()));
}

fn err(settings: &str) -> String {
    match SqlGuard::validate_config(settings.into()) {
        Ok(()) => panic!("expected an error for {settings}"),
        Err(e) => e,
    }
}

#[test]
fn top_level_errors() {
    assert!(err("{").starts_with("settings are not valid JSON"));
    assert_eq!(err("[1]"), "settings: expected a JSON object");
    assert_eq!(
        err(r#"{"rule": []}"#),
        r#"settings: unknown key "rule" (expected one of: rules, unparsable, mask)"#
    );
    assert_eq!(err(r#"{"rules": {}}"#), "rules: expected an array");
    assert_eq!(err(r#"{"mask": "x"}"#), "mask: expected an array");
    let many = format!(
        r#"{{"mask": [{}]}}"#,
        vec![r#"{"column": "a"}"#; 129].join(",")
    );
    assert_eq!(err(&many), "mask: 129 entries (at most 128)");
}

#[test]
fn rule_errors() {
    assert_eq!(err(r#"{"rules": ["x"]}"#), "rules[0]: expected an object");
    assert_eq!(
        err(r#"{"rules": [{"kinds": ["drop"]}]}"#),
        r#"rules[0].action: required, "deny" or "approve""#
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "block"}]}"#),
        r#"rules[0].action: expected "deny" or "approve""#
    );
    assert!(
        err(r#"{"rules": [{"action": "deny"}, {"action": "deny", "kind": ["drop"]}]}"#)
            .starts_with(r#"rules[1]: unknown key "kind" (expected one of: action, kinds,"#)
    );
    assert!(
        err(r#"{"rules": [{"action": "deny", "kinds": ["select", "dorp"]}]}"#).starts_with(
            r#"rules[0].kinds[1]: unknown statement kind "dorp" (expected one of: select, insert,"#
        )
    );
    assert!(
        err(r#"{"rules": [{"action": "deny", "kinds": ["DROP"]}]}"#)
            .starts_with(r#"rules[0].kinds[0]: unknown statement kind "DROP""#)
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "kinds": "drop"}]}"#),
        "rules[0].kinds: expected an array"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "tables_read": [1]}]}"#),
        "rules[0].tables_read[0]: expected a string"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "tables_written": ["ok", "public."]}]}"#),
        r#"rules[0].tables_written[1]: expected a table name, bare or schema-qualified, got "public.""#
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "functions": [""]}]}"#),
        r#"rules[0].functions[0]: expected a function name, bare or schema-qualified, got """#
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "without_where": "yes"}]}"#),
        "rules[0].without_where: expected true or false"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "kinds": ["select"], "without_where": true}]}"#),
        "rules[0].without_where: only UPDATE and DELETE can lack a WHERE clause, and kinds lists neither"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "unless_groups": "dba"}]}"#),
        "rules[0].unless_groups: expected an array"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "reason": ""}]}"#),
        "rules[0].reason: expected 1 to 2048 bytes"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "reason": 3}]}"#),
        "rules[0].reason: expected a string"
    );
}

#[test]
fn approval_errors() {
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "approvers": ["dba"]}]}"#),
        r#"rules[0].approvers: only "approve" rules take approvers"#
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "deny", "grant_secs": 5}]}"#),
        r#"rules[0].grant_secs: only "approve" rules take grant_secs"#
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "approve"}]}"#),
        "rules[0].approvers: approval needs at least one approver group"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "approve", "approvers": [""]}]}"#),
        "rules[0].approvers[0]: expected a non-empty string"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "approve", "approvers": ["dba"], "timeout_secs": 0}]}"#),
        "rules[0].timeout_secs: expected 1 to 86400 seconds, got 0"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "approve", "approvers": ["dba"], "timeout_secs": 90000}]}"#),
        "rules[0].timeout_secs: expected 1 to 86400 seconds, got 90000"
    );
    assert_eq!(
        err(r#"{"rules": [{"action": "approve", "approvers": ["dba"], "grant_secs": -1}]}"#),
        "rules[0].grant_secs: expected a whole number from 0 to 4294967295"
    );
}

#[test]
fn unparsable_errors() {
    assert!(err(r#"{"unparsable": "approve"}"#).starts_with(
        r#"unparsable: an approval needs approvers: write {"action": "approve", "approvers": ["dba"]"#
    ));
    assert_eq!(
        err(r#"{"unparsable": "ignore"}"#),
        r#"unparsable: expected "deny", "allow" or {"action": "approve", "approvers": [...]}"#
    );
    assert!(
        err(r#"{"unparsable": {"action": "deny"}}"#)
            .starts_with(r#"unparsable.action: expected "approve""#)
    );
    assert_eq!(
        err(r#"{"unparsable": {"action": "approve"}}"#),
        "unparsable.approvers: approval needs at least one approver group"
    );
    assert!(
        err(r#"{"unparsable": {"action": "approve", "approvers": ["dba"], "grant_secs": 5}}"#)
            .starts_with(r#"unparsable: unknown key "grant_secs""#)
    );
}

#[test]
fn mask_errors() {
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "detector": "email"}]}"#),
        "mask[0]: expected exactly one of column, detector, pattern"
    );
    assert_eq!(
        err(r#"{"mask": [{"method": "hash"}]}"#),
        "mask[0]: expected exactly one of column, detector, pattern"
    );
    assert_eq!(
        err(r#"{"mask": [{"header": "authorization"}]}"#),
        "mask[0]: header and json_pointer masks apply to HTTP, not SQL results"
    );
    assert!(
        err(r#"{"mask": [{"column": "a", "colour": "red"}]}"#)
            .starts_with(r#"mask[0]: unknown key "colour""#)
    );
    assert_eq!(
        err(r#"{"mask": [{"column": ""}]}"#),
        "mask[0].column: expected a non-empty string"
    );
    for bad in ["type:", "users.", ".email", "a..b"] {
        assert_eq!(
            err(&format!(r#"{{"mask": [{{"column": "{bad}"}}]}}"#)),
            format!(
                r#"mask[0].column: expected a column name, table.column or type:NAME, got "{bad}""#
            )
        );
    }
    assert!(
        err(r#"{"mask": [{"column": "a"}, {"pattern": "(", "method": "hash"}]}"#)
            .starts_with("mask[1].pattern: invalid regex")
    );
    let long = format!(r#"{{"mask": [{{"pattern": "{}"}}]}}"#, "a".repeat(1025));
    assert_eq!(err(&long), "mask[0].pattern: 1025 bytes (at most 1024)");
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "method": "blur"}]}"#),
        r#"mask[0].method: unknown method "blur" (expected "redact", "hash" or "partial")"#
    );
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "method": {"partial": {"prefix": 1}}}]}"#),
        r#"mask[0].method: expected "redact", "hash" or "partial""#
    );
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "prefix": 2}]}"#),
        r#"mask[0].prefix: only with "method": "partial""#
    );
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "method": "hash", "suffix": 2}]}"#),
        r#"mask[0].suffix: only with "method": "partial""#
    );
    assert_eq!(
        err(r#"{"mask": [{"column": "a", "method": "partial", "prefix": 256}]}"#),
        "mask[0].prefix: expected a whole number from 0 to 255"
    );
    assert_eq!(
        err(r#"{"mask": [{"detector": "email", "unless_groups": [true]}]}"#),
        "mask[0].unless_groups[0]: expected a string"
    );
}
