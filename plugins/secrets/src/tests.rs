use gatehouse_sdk::testing;
use gatehouse_sdk::types::{MaskMethod, MaskTarget};

use super::*;

fn detectors(d: &Decision) -> Vec<String> {
    d.mask_rules()
        .unwrap_or(&[])
        .iter()
        .filter_map(|r| match &r.target {
            MaskTarget::Detector(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn defaults_mask_every_family_both_ways() {
    let c = parse("{}").unwrap();
    let ctx = testing::context().build();
    for direction in [Direction::Request, Direction::Response] {
        let d = decide(&c, &ctx, direction);
        let names = detectors(&d);
        for (_, family) in families::FAMILIES {
            for det in *family {
                assert!(names.iter().any(|n| n == det), "{det} missing");
            }
        }
    }
}

#[test]
fn families_exclude_and_method_select_the_rules() {
    let c = parse(r#"{"families": ["aws", "github"], "exclude": ["aws-secret-access-key"], "method": "hash"}"#)
        .unwrap();
    let d = decide(&c, &testing::context().build(), Direction::Response);
    assert_eq!(detectors(&d), ["aws-access-key-id", "github-token"]);
    assert!(
        d.mask_rules()
            .unwrap()
            .iter()
            .all(|r| r.method == MaskMethod::Hash)
    );
}

#[test]
fn directions_and_exempt_groups() {
    let c = parse(r#"{"mask_requests": false, "unless_groups": ["secops"]}"#).unwrap();
    assert!(decide(&c, &testing::context().build(), Direction::Request).is_allow());
    assert!(!decide(&c, &testing::context().build(), Direction::Response).is_allow());
    let secops = testing::context().groups(["secops"]).build();
    assert!(decide(&c, &secops, Direction::Response).is_allow());
}

#[test]
fn bad_settings_name_the_key() {
    let err = |s: &str| parse(s).unwrap_err();
    assert!(
        err(r#"{"families": ["gihtub"]}"#).starts_with("families[0]: unknown family \"gihtub\"")
    );
    assert!(err(r#"{"exclude": ["nope"]}"#).starts_with("exclude[0]: unknown detector"));
    assert!(err(r#"{"method": "shred"}"#).starts_with("method: unknown method"));
    assert!(
        err(r#"{"patterns": [{"pattern": "("}]}"#)
            .starts_with("patterns[0].pattern: invalid regex")
    );
    assert!(err(r#"{"patterns": [{"pattern": "tok_[a-z]+"}]}"#).contains("bound every repetition"));
    assert!(
        err(r#"{"mask_requests": "yes"}"#).starts_with("mask_requests: expected true or false")
    );
    assert!(err(r#"{"famlies": []}"#).contains("unknown key \"famlies\""));
    assert!(err("[]").contains("expected an object"));
}

#[test]
fn extra_patterns_keep_their_own_method() {
    let c = parse(r#"{"families": [], "patterns": [{"pattern": "tok_[a-z]{8}", "method": {"partial": {"prefix": 4}}}]}"#)
        .unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(
        c.rules[0].method,
        MaskMethod::Partial(gatehouse_sdk::types::PartialKeep {
            prefix: 4,
            suffix: 0
        })
    );
}
