use super::*;
use bindings::mcp::Guest as _;
use bindings::mcp_listing::Guest as _;
use bindings::meta::Guest as _;
use gatehouse_sdk::testing::{self, context};
use gatehouse_sdk::types::{ApprovalScope, Grant, MaskTarget};

const SETTINGS: &str = r#"{
  "groups": {
    "agents": {"allow": ["echo", "lookup_*", "delete_records", "run_shell"], "deny": ["run_shell"]},
    "ops": {"allow": ["*"]}
  },
  "approve_destructive": {"approver_groups": ["ops"], "timeout_secs": 120, "unless_groups": ["ops"]},
  "mask_results": [{"detector": "email"}, {"json_pointer": "/structuredContent/card", "method": "hash"}]
}"#;

fn tool(name: &str, destructive: bool) -> ToolInfo {
    ToolInfo {
        name: name.into(),
        description: String::new(),
        destructive,
        read_only: !destructive,
    }
}

fn call(name: &str, info: Option<ToolInfo>) -> McpRequest {
    McpRequest {
        method: "tools/call".into(),
        tool: Some(name.into()),
        tool_info: info,
        target: None,
        arguments: Some("{}".into()),
        mcp_session_id: Some("s1".into()),
    }
}

fn on_request(settings: &str, groups: &[&str], req: McpRequest) -> Decision {
    testing::with_settings(settings, || {
        McpGuard::on_request(context().groups(groups.iter().copied()).build(), req)
    })
}

#[test]
fn allowed_tools_pass_and_others_are_denied() {
    let d = on_request(
        SETTINGS,
        &["agents"],
        call("echo", Some(tool("echo", false))),
    );
    assert!(d.is_allow(), "{d:?}");
    let d = on_request(
        SETTINGS,
        &["agents"],
        call("lookup_customer", Some(tool("lookup_customer", false))),
    );
    assert!(d.is_allow(), "{d:?}");
    let d = on_request(
        SETTINGS,
        &["agents"],
        call("admin_reset", Some(tool("admin_reset", false))),
    );
    assert_eq!(
        d.deny_reason(),
        Some("tool admin_reset is not allowed for your groups")
    );
    assert_eq!(d.annotation("rule"), Some("groups"));
}

#[test]
fn deny_wins_over_allow_across_groups() {
    let d = on_request(
        SETTINGS,
        &["agents"],
        call("run_shell", Some(tool("run_shell", true))),
    );
    assert!(d.deny_reason().is_some(), "{d:?}");
    // ops allows everything, but the agents group denies run_shell.
    let d = on_request(
        SETTINGS,
        &["agents", "ops"],
        call("run_shell", Some(tool("run_shell", true))),
    );
    assert!(d.deny_reason().is_some(), "{d:?}");
}

#[test]
fn callers_outside_the_listed_groups_get_no_tools() {
    let d = on_request(SETTINGS, &["dev"], call("echo", Some(tool("echo", false))));
    assert!(d.deny_reason().is_some(), "{d:?}");
    // No groups at all: every tool.
    let d = on_request("{}", &["dev"], call("echo", Some(tool("echo", false))));
    assert!(d.is_allow(), "{d:?}");
}

#[test]
fn destructive_tools_are_held_unless_exempt() {
    let d = on_request(
        SETTINGS,
        &["agents"],
        call("delete_records", Some(tool("delete_records", true))),
    );
    let a = d.approval().expect("approval");
    assert_eq!(a.approver_groups, vec!["ops".to_string()]);
    assert_eq!(a.timeout_secs, 120);
    assert_eq!(a.scope, ApprovalScope::Once);
    assert_eq!(d.annotation("rule"), Some("approve_destructive"));
    let d = on_request(
        SETTINGS,
        &["ops"],
        call("delete_records", Some(tool("delete_records", true))),
    );
    assert!(d.is_allow(), "{d:?}");
}

#[test]
fn a_grant_covers_later_calls_of_the_same_tool() {
    let s = r#"{"approve_destructive": {"approver_groups": ["ops"], "grant_secs": 600}}"#;
    let d = on_request(
        s,
        &[],
        call("delete_records", Some(tool("delete_records", true))),
    );
    assert_eq!(
        d.approval().map(|a| a.scope.clone()),
        Some(ApprovalScope::Grant(Grant {
            key: "tools/call delete_records".into(),
            duration_secs: 600
        }))
    );
}

#[test]
fn unknown_tools_follow_the_setting() {
    let d = on_request(SETTINGS, &["agents"], call("echo", None));
    assert!(
        d.deny_reason().unwrap_or("").contains("tools/list"),
        "{d:?}"
    );
    let s = r#"{"approve_destructive": {"approver_groups": ["ops"]}, "unknown_tools": "approve"}"#;
    assert!(on_request(s, &[], call("echo", None)).approval().is_some());
    let s = r#"{"unknown_tools": "allow"}"#;
    assert!(on_request(s, &[], call("echo", None)).is_allow());
}

#[test]
fn other_methods_are_allowed() {
    let req = McpRequest {
        method: "resources/read".into(),
        tool: None,
        tool_info: None,
        target: Some("config://app".into()),
        arguments: None,
        mcp_session_id: None,
    };
    assert!(on_request(SETTINGS, &["dev"], req).is_allow());
}

#[test]
fn results_are_masked() {
    let d = testing::with_settings(SETTINGS, || {
        McpGuard::on_result(context().build(), call("echo", None), "{}".into())
    });
    let rules = d.mask_rules().expect("masks");
    assert_eq!(rules[0].target, MaskTarget::Detector("email".into()));
    assert_eq!(d.annotation("rule"), Some("mask_results"));
    let mut list = call("x", None);
    list.method = "tools/list".into();
    let d = testing::with_settings(SETTINGS, || {
        McpGuard::on_result(context().build(), list, "{}".into())
    });
    assert!(d.is_allow());
}

#[test]
fn listings_hide_what_the_caller_may_not_call() {
    let tools = vec![
        tool("echo", false),
        tool("run_shell", true),
        tool("admin_reset", true),
    ];
    let hidden = testing::with_settings(SETTINGS, || {
        McpGuard::filter_tools(context().groups(["agents"]).build(), tools.clone())
    });
    assert_eq!(
        hidden,
        vec!["run_shell".to_string(), "admin_reset".to_string()]
    );
    let s = r#"{"groups": {"agents": {"allow": ["echo"]}}, "hide_denied_tools": false}"#;
    let hidden = testing::with_settings(s, || {
        McpGuard::filter_tools(context().groups(["agents"]).build(), tools.clone())
    });
    assert!(hidden.is_empty());
    // Settings that do not parse hide everything.
    let hidden = testing::with_settings("[]", || {
        McpGuard::filter_tools(context().build(), tools.clone())
    });
    assert_eq!(hidden.len(), 3);
}

fn entry(kind: EntryKind, id: &str) -> Entry {
    Entry {
        kind,
        id: id.into(),
        name: String::new(),
        description: String::new(),
        mime_type: None,
    }
}

fn filter(settings: &str, groups: &[&str], entries: Vec<Entry>) -> Vec<String> {
    testing::with_settings(settings, || {
        McpGuard::filter(context().groups(groups.iter().copied()).build(), entries)
    })
}

#[test]
fn resources_and_prompts_are_hidden_by_group() {
    let s = r#"{
      "resources": {"groups": {"agents": {"allow": ["config://app", "docs://*"], "deny": ["docs://private/*"]},
                               "ops": {"allow": ["*"]}}},
      "prompts": {"groups": {"agents": {"allow": ["greeting"]}}, "default": {"allow": ["help"]}}
    }"#;
    let listed = vec![
        entry(EntryKind::Resource, "config://app"),
        entry(EntryKind::Resource, "config://secrets"),
        entry(EntryKind::ResourceTemplate, "docs://{name}"),
        entry(EntryKind::ResourceTemplate, "docs://private/{name}"),
        entry(EntryKind::Prompt, "greeting"),
        entry(EntryKind::Prompt, "admin_briefing"),
        entry(EntryKind::Prompt, "help"),
    ];
    assert_eq!(
        filter(s, &["agents"], listed.clone()),
        [
            "config://secrets",
            "docs://private/{name}",
            "admin_briefing",
            "help"
        ]
    );
    // ops: every resource; ops has no prompt rules, so for prompts it is
    // in none of the listed groups and gets `default` (help only).
    assert_eq!(
        filter(s, &["ops"], listed.clone()),
        ["greeting", "admin_briefing"]
    );
    // Outside every listed group: no resources, `default` prompts.
    assert_eq!(filter(s, &["dev"], listed.clone()).len(), 6);
    // Without `resources` or `prompts`, nothing is hidden.
    assert!(filter("{}", &["dev"], listed.clone()).is_empty());
    // Settings that do not parse hide everything.
    assert_eq!(filter("[]", &[], listed).len(), 7);
}

#[test]
fn bad_settings_name_the_key() {
    let cases = [
        (
            r#"{"groups": {"a": {"allow": ["e*cho"]}}}"#,
            "groups.a.allow[0]",
        ),
        (
            r#"{"groups": {"a": {"permit": []}}}"#,
            "groups.a: unknown key \"permit\"",
        ),
        (
            r#"{"unknown_tools": "maybe"}"#,
            "unknown_tools: unknown value",
        ),
        (
            r#"{"unknown_tools": "approve"}"#,
            "needs approve_destructive",
        ),
        (
            r#"{"approve_destructive": {"approver_groups": []}}"#,
            "approve_destructive.approver_groups",
        ),
        (
            r#"{"mask_results": [{"pattern": "("}]}"#,
            "mask_results[0].pattern: invalid regex",
        ),
        (r#"{"mask_results": [{"column": "a"}]}"#, "SQL results only"),
        (
            r#"{"hide_denied_tools": "yes"}"#,
            "hide_denied_tools: expected true or false",
        ),
        (r#"{"tools": []}"#, "settings: unknown key \"tools\""),
        (
            r#"{"resources": {"groups": {"a": {"allow": ["file:///*x"]}}}}"#,
            "resources.groups.a.allow[0]: expected a resource URI or a pattern ending in \"*\"",
        ),
        (
            r#"{"prompts": {"default": {"allow": [""]}}}"#,
            "prompts.default.allow[0]: expected a prompt name",
        ),
        (
            r#"{"prompts": {"allow": ["x"]}}"#,
            "prompts: unknown key \"allow\"",
        ),
        (r#"{"resources": []}"#, "resources: expected"),
    ];
    for (settings, expected) in cases {
        let err = McpGuard::validate_config(settings.into()).unwrap_err();
        assert!(err.contains(expected), "{settings}: {err}");
    }
    McpGuard::validate_config(SETTINGS.into()).unwrap();
}

#[test]
fn describes_itself_with_a_schema() {
    let d = McpGuard::describe();
    assert_eq!(d.name, "mcp-guard");
    let schema: serde_json::Value = serde_json::from_str(&d.settings_schema).unwrap();
    assert_eq!(schema["title"], "mcp-guard settings");
}
