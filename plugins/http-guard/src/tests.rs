use super::*;
use bindings::http::Guest as _;
use bindings::meta::Guest as _;
use gatehouse_sdk::MaskRule;
use gatehouse_sdk::testing::{self, context, http_request, http_response};
use gatehouse_sdk::types::{ApprovalScope, Grant, MaskMethod, MaskTarget, PartialKeep};

const SETTINGS: &str = r#"{
  "deny": [
    {"methods": ["DELETE"], "path_prefix": "/admin", "path_regex": null, "unless_groups": ["ops"], "reason": "admin API is read-only for agents"},
    {"path_regex": "^/secrets/[0-9]+$"}
  ],
  "approve": [
    {"methods": ["post"], "path_prefix": "/deploy", "approver_groups": ["ops"], "timeout_secs": 120, "grant_secs": 0, "reason": "deploys need approval"},
    {"methods": ["PUT"], "path_prefix": "/config", "approver_groups": ["ops", "sec"], "grant_secs": 600}
  ],
  "mask_response": [
    {"detector": "aws-access-key-id"},
    {"pattern": "sk-[A-Za-z0-9]{20,40}", "method": "redact"},
    {"header": "x-internal-token", "method": "hash"},
    {"json_pointer": "/password", "method": {"partial": {"prefix": 2, "suffix": 2}}}
  ]
}"#;

fn on_request(settings: &str, groups: &[&str], method: &str, path: &str) -> Decision {
    testing::with_settings(settings, || {
        HttpGuard::on_request(
            context().groups(groups.iter().copied()).build(),
            http_request(method, path).into(),
        )
    })
}

#[test]
fn deny_first_matching_rule() {
    let d = on_request(SETTINGS, &[], "delete", "/admin/users/1");
    assert_eq!(d.deny_reason(), Some("admin API is read-only for agents"));
    assert_eq!(d.annotation("rule"), Some("deny[0]"));
}

#[test]
fn deny_skipped_for_unless_groups() {
    let d = on_request(SETTINGS, &["ops"], "DELETE", "/admin/users/1");
    assert!(d.is_allow(), "{d:?}");
}

#[test]
fn deny_method_and_path_must_both_match() {
    assert!(on_request(SETTINGS, &[], "GET", "/admin/users").is_allow());
    assert!(on_request(SETTINGS, &[], "DELETE", "/public").is_allow());
}

#[test]
fn deny_by_regex_with_default_reason() {
    let d = on_request(SETTINGS, &[], "GET", "/secrets/42");
    assert_eq!(d.deny_reason(), Some("denied by http-guard rule deny[1]"));
    assert_eq!(d.annotation("rule"), Some("deny[1]"));
    assert!(on_request(SETTINGS, &[], "GET", "/secrets/abc").is_allow());
}

#[test]
fn approve_once() {
    let d = on_request(SETTINGS, &[], "POST", "/deploy/web");
    let a = d.approval().expect("approval");
    assert_eq!(a.reason, "deploys need approval");
    assert_eq!(a.approver_groups, ["ops"]);
    assert_eq!(a.timeout_secs, 120);
    assert_eq!(a.scope, ApprovalScope::Once);
    assert_eq!(d.annotation("rule"), Some("approve[0]"));
}

#[test]
fn approve_grant() {
    let d = on_request(SETTINGS, &[], "put", "/config/db");
    let a = d.approval().expect("approval");
    assert_eq!(a.timeout_secs, config::DEFAULT_TIMEOUT_SECS);
    assert_eq!(
        a.scope,
        ApprovalScope::Grant(Grant {
            key: "PUT /config".into(),
            duration_secs: 600
        })
    );
    assert_eq!(a.reason, "approval required by http-guard rule approve[1]");
    assert_eq!(d.annotation("rule"), Some("approve[1]"));
}

#[test]
fn mask_request_when_nothing_else_matches() {
    let settings = r#"{"mask_request": [{"header": "authorization"}],
                       "deny": [{"path_prefix": "/x"}]}"#;
    let d = on_request(settings, &[], "GET", "/y");
    let rules = d.mask_rules().expect("mask");
    assert_eq!(rules, [MaskRule::header("authorization")]);
    assert_eq!(d.annotation("rule"), Some("mask_request"));
    // deny still wins
    assert!(
        on_request(settings, &[], "GET", "/x")
            .deny_reason()
            .is_some()
    );
}

#[test]
fn allow_with_empty_settings() {
    assert!(on_request("{}", &[], "DELETE", "/admin").is_allow());
    assert!(on_request("", &[], "GET", "/").is_allow());
}

#[test]
fn on_response_masks() {
    let d = testing::with_settings(SETTINGS, || {
        HttpGuard::on_response(
            context().build(),
            http_request("GET", "/").into(),
            http_response(200).header("x-internal-token", "t").into(),
        )
    });
    let rules = d.mask_rules().expect("mask");
    assert_eq!(rules.len(), 4);
    assert_eq!(
        rules[0].target,
        MaskTarget::Detector("aws-access-key-id".into())
    );
    assert_eq!(rules[0].method, MaskMethod::Redact);
    assert_eq!(rules[1].method, MaskMethod::Redact);
    assert_eq!(rules[2].method, MaskMethod::Hash);
    assert_eq!(
        rules[3].method,
        MaskMethod::Partial(PartialKeep {
            prefix: 2,
            suffix: 2
        })
    );
    assert_eq!(d.annotation("rule"), Some("mask_response"));
}

#[test]
fn on_response_allows_without_rules() {
    let d = testing::with_settings(r#"{"mask_request": [{"header": "a"}]}"#, || {
        HttpGuard::on_response(
            context().build(),
            http_request("GET", "/").into(),
            http_response(200).into(),
        )
    });
    assert!(d.is_allow());
}

#[test]
fn invalid_settings_at_runtime_fail_closed() {
    let d = on_request(r#"{"deny": 1}"#, &[], "GET", "/");
    assert!(d.deny_reason().is_some_and(|r| r.contains("misconfigured")));
    assert_eq!(
        testing::take_logs()[0].field("error"),
        Some("deny: expected an array")
    );
}

#[test]
fn describe_has_schema() {
    let d = HttpGuard::describe();
    assert_eq!(d.name, "http-guard");
    let schema: serde_json::Value =
        serde_json::from_str(&d.settings_schema).expect("schema is JSON");
    assert_eq!(schema["type"], "object");
}

#[test]
fn validate_accepts_example() {
    assert_eq!(HttpGuard::validate_config(SETTINGS.into()), Ok(()));
    assert_eq!(HttpGuard::validate_config(String::new()), Ok(()));
    assert_eq!(HttpGuard::validate_config("{}".into()), Ok(()));
}

fn err(settings: &str) -> String {
    match HttpGuard::validate_config(settings.into()) {
        Ok(()) => panic!("expected an error for {settings}"),
        Err(e) => e,
    }
}

#[test]
fn validation_errors_name_the_key() {
    assert_eq!(
        err(r#"{"deny": [{}, {"methods": ["GET", "GTE"]}]}"#),
        r#"deny[1].methods: unknown method "GTE""#
    );
    assert!(err("[1]").starts_with("settings: expected a JSON object"));
    assert!(err("{").starts_with("settings are not valid JSON"));
    assert!(err(r#"{"denny": []}"#).starts_with(r#"settings: unknown key "denny""#));
    assert!(
        err(r#"{"deny": [{"path_regex": "("}]}"#).starts_with("deny[0].path_regex: invalid regex")
    );
    assert!(err(r#"{"deny": [{"reson": "x"}]}"#).starts_with(r#"deny[0]: unknown key "reson""#));
    assert_eq!(err(r#"{"deny": ["x"]}"#), "deny[0]: expected an object");
    assert_eq!(
        err(r#"{"deny": [{"unless_groups": [1]}]}"#),
        "deny[0].unless_groups[0]: expected a string"
    );
    assert_eq!(
        err(r#"{"approve": [{}, {}, {"timeout_secs": -1}]}"#),
        "approve[2].timeout_secs: expected a whole number from 0 to 4294967295"
    );
    assert_eq!(
        err(r#"{"approve": [{"grant_secs": "1"}]}"#)
            .split(':')
            .next(),
        Some("approve[0].grant_secs")
    );
    assert_eq!(
        err(r#"{"approve": [{"methods": "GET"}]}"#),
        "approve[0].methods: expected an array"
    );
}

#[test]
fn mask_validation_errors() {
    assert_eq!(
        err(r#"{"mask_response": [{"header": "a", "detector": "email"}]}"#),
        "mask_response[0]: expected exactly one of header, json_pointer, pattern, detector"
    );
    assert_eq!(
        err(r#"{"mask_response": [{"method": "hash"}]}"#),
        "mask_response[0]: expected exactly one of header, json_pointer, pattern, detector"
    );
    assert!(
        err(r#"{"mask_request": [{"header": "a", "method": "blur"}]}"#)
            .starts_with(r#"mask_request[0].method: unknown method "blur""#)
    );
    assert!(
        err(r#"{"mask_request": [{"pattern": "[", "method": "hash"}]}"#)
            .starts_with("mask_request[0].pattern: invalid regex")
    );
    assert_eq!(
        err(r#"{"mask_request": [{"json_pointer": "password"}]}"#),
        r#"mask_request[0].json_pointer: a JSON pointer starts with "/", got "password""#
    );
    assert_eq!(
        err(r#"{"mask_request": [{"header": "a", "method": {"partial": {"prefix": 300}}}]}"#),
        "mask_request[0].method.partial.prefix: expected a whole number from 0 to 255"
    );
    assert_eq!(
        err(r#"{"mask_request": [{"column": "ssn"}]}"#),
        "mask_request[0].column: column masks apply to SQL results only"
    );
    assert_eq!(
        err(r#"{"mask_request": [{"header": ""}]}"#),
        "mask_request[0].header: expected a non-empty string"
    );
}
