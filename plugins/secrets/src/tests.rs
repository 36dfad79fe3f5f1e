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

#[test]
fn saas_stands_for_every_service_category_once() {
    let saas = parse(r#"{"families": ["saas"]}"#).unwrap();
    let spelled =
        parse(r#"{"families": ["ai", "cloud", "devtools", "messaging", "payment", "registry"]}"#)
            .unwrap();
    assert_eq!(saas.rules, spelled.rules);
    assert!(saas.rules.len() > 60, "{}", saas.rules.len());
    // Named twice, directly and through the alias: its rules once.
    let twice = parse(r#"{"families": ["cloud", "saas", "cloud"]}"#).unwrap();
    assert_eq!(twice.rules, saas.rules);
}

/// The detector names in the host's credential detector sources, read from
/// `Detector::new("name", ...)`.
fn host_detectors() -> Vec<String> {
    let sources = [
        include_str!("../../../host/src/mask/detectors/secrets.rs"),
        include_str!("../../../host/src/mask/detectors/secrets/services.rs"),
    ];
    let mut names = Vec::new();
    for src in sources {
        for part in src.split("Detector::new(").skip(1) {
            let name = part
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
                .expect("a detector name");
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn every_host_credential_detector_is_in_exactly_one_family() {
    let host = host_detectors();
    assert!(host.len() > 80, "{}", host.len());
    for name in &host {
        let n = families::FAMILIES
            .iter()
            .filter(|(_, ds)| ds.contains(&name.as_str()))
            .count();
        assert_eq!(n, 1, "{name} is in {n} families");
    }
    for (family, detectors) in families::FAMILIES {
        for d in *detectors {
            assert!(
                host.iter().any(|h| h == d),
                "{family}: {d} is not a host detector"
            );
        }
    }
}
