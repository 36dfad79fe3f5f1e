use gatehouse_sdk::testing;
use gatehouse_sdk::types::{MaskMethod, MaskTarget};

use super::*;

fn col(name: &str) -> Column {
    Column {
        name: name.into(),
        table: Some("public.users".into()),
        type_name: "text".into(),
    }
}

fn targets(d: &Decision) -> Vec<String> {
    d.mask_rules()
        .unwrap_or(&[])
        .iter()
        .map(|r| match &r.target {
            MaskTarget::Column(c) => format!("column:{c}"),
            MaskTarget::Detector(c) => format!("detector:{c}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn columns_by_name_and_free_text() {
    let c = parse(r#"{"kinds": ["email", "national-id"], "national_ids": ["us-ssn"]}"#).unwrap();
    let d = decide_columns(
        &c,
        &testing::context().build(),
        &[
            col("id"),
            col("billing_email"),
            col("email_verified"),
            col("ssn"),
        ],
    );
    assert_eq!(
        targets(&d),
        [
            "column:billing_email",
            "column:ssn",
            "detector:email",
            "detector:us-ssn"
        ]
    );
    assert_eq!(
        d.annotation("columns"),
        Some("billing_email=email,ssn=national-id")
    );
}

#[test]
fn per_kind_methods_and_extra_hints() {
    let c = parse(r#"{"kinds": ["email"], "method": "hash", "methods": {"email": {"partial": {"prefix": 2}}}, "column_hints": {"email": ["contact"]}, "free_text": false}"#)
        .unwrap();
    let d = decide_columns(&c, &testing::context().build(), &[col("contact")]);
    assert_eq!(targets(&d), ["column:contact"]);
    assert_eq!(
        d.mask_rules().unwrap()[0].method,
        MaskMethod::Partial(gatehouse_sdk::types::PartialKeep {
            prefix: 2,
            suffix: 0
        })
    );
    assert!(decide_text(&c, &testing::context().build(), Direction::Response).is_allow());
}

#[test]
fn exempt_groups_see_everything() {
    let c = parse(r#"{"unless_groups": ["privacy"]}"#).unwrap();
    let ctx = testing::context().groups(["privacy"]).build();
    assert!(decide_columns(&c, &ctx, &[col("email")]).is_allow());
    assert!(decide_text(&c, &ctx, Direction::Request).is_allow());
}

#[test]
fn bad_settings_name_the_key() {
    let err = |s: &str| parse(s).unwrap_err();
    assert!(err(r#"{"kinds": ["emial"]}"#).starts_with("kinds[0]: unknown kind \"emial\""));
    assert!(
        err(r#"{"national_ids": ["de-steuer"]}"#)
            .starts_with("national_ids[0]: unknown national id")
    );
    assert!(err(r#"{"methods": {"emial": "hash"}}"#).starts_with("methods.emial: unknown kind"));
    assert!(err(r#"{"methods": {"email": "shred"}}"#).starts_with("methods.email: unknown method"));
    assert!(
        err(r#"{"column_hints": {"email": "contact"}}"#)
            .starts_with("column_hints.email: expected an array")
    );
    assert!(err(r#"{"columns": 1}"#).starts_with("columns: expected true or false"));
    assert!(err(r#"{"colums": true}"#).contains("unknown key \"colums\""));
}
