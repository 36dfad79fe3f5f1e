use super::*;
use bindings::kubernetes::Guest as _;
use bindings::meta::Guest as _;
use gatehouse_sdk::testing::{self, context};
use gatehouse_sdk::types::{MaskMethod, MaskTarget, Verdict};

fn request(
    verb: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> KubernetesRequest {
    KubernetesRequest {
        verb: verb.into(),
        api_group: String::new(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: None,
        namespace: namespace.map(Into::into),
        name: name.map(Into::into),
        object: None,
        command: vec![],
    }
}

fn exec(namespace: &str, command: &[&str]) -> KubernetesRequest {
    KubernetesRequest {
        subresource: Some("exec".into()),
        command: command.iter().map(|c| c.to_string()).collect(),
        ..request("exec", "pods", Some(namespace), Some("web"))
    }
}

fn binding(verb: &str, name: Option<&str>, object: Option<serde_json::Value>) -> KubernetesRequest {
    KubernetesRequest {
        api_group: RBAC_GROUP.into(),
        object: object.map(|o| o.to_string()),
        ..request(verb, "clusterrolebindings", None, name)
    }
}

fn decide_with(settings: &str, groups: &[&str], r: KubernetesRequest) -> Decision {
    testing::with_settings(settings, || {
        K8sGuard::on_request(context().groups(groups.iter().copied()).build(), r)
    })
}

fn approval_reason(d: &Decision) -> Option<&str> {
    match &d.verdict {
        Verdict::RequireApproval(a) => Some(&a.reason),
        _ => None,
    }
}

#[test]
fn secrets_reads_are_masked_by_default() {
    for verb in ["get", "list", "watch"] {
        let d = decide_with("", &[], request(verb, "secrets", Some("default"), None));
        let Verdict::Mask(rules) = &d.verdict else {
            panic!("{verb}: {d:?}")
        };
        let targets: Vec<_> = rules.iter().map(|r| r.target.clone()).collect();
        assert_eq!(
            targets,
            [
                MaskTarget::JsonPointer("/data/*".into()),
                MaskTarget::JsonPointer("/stringData/*".into())
            ]
        );
        assert!(rules.iter().all(|r| r.method == MaskMethod::Redact));
        assert_eq!(d.annotation("rule"), Some("secrets.mask"));
    }
    let hashed = decide_with(
        r#"{"secrets": {"method": "hash"}}"#,
        &[],
        request("get", "secrets", Some("a"), Some("s")),
    );
    let Verdict::Mask(rules) = &hashed.verdict else {
        panic!()
    };
    assert!(rules.iter().all(|r| r.method == MaskMethod::Hash));
    assert!(decide_with("", &[], request("get", "configmaps", Some("a"), None)).is_allow());
    assert!(
        decide_with(
            r#"{"secrets": {"unless_groups": ["sec"]}}"#,
            &["sec"],
            request("get", "secrets", Some("a"), None)
        )
        .is_allow()
    );
    assert!(
        decide_with(
            r#"{"secrets": {"mask": false}}"#,
            &[],
            request("get", "secrets", Some("a"), None)
        )
        .is_allow()
    );
}

#[test]
fn deleting_a_namespace_or_a_cluster_scoped_object_needs_approval() {
    let settings = r#"{"deletes": {"approver_groups": ["ops"], "timeout_secs": 60}}"#;
    let d = decide_with(
        settings,
        &[],
        request("delete", "namespaces", Some("prod"), Some("prod")),
    );
    assert_eq!(approval_reason(&d), Some("delete namespace prod"));
    let Verdict::RequireApproval(a) = &d.verdict else {
        unreachable!()
    };
    assert_eq!(a.approver_groups, ["ops"]);
    assert_eq!(a.timeout_secs, 60);
    assert_eq!(d.annotation("rule"), Some("deletes.namespaces"));

    let d = decide_with(
        settings,
        &[],
        request("delete", "nodes", None, Some("node-1")),
    );
    assert_eq!(approval_reason(&d), Some("delete nodes node-1"));
    let d = decide_with(
        settings,
        &[],
        request("deletecollection", "pods", None, None),
    );
    assert_eq!(
        approval_reason(&d),
        Some("delete every pods in the cluster")
    );
    // Namespaced deletes go through.
    assert!(
        decide_with(
            settings,
            &[],
            request("delete", "pods", Some("a"), Some("p"))
        )
        .is_allow()
    );
    assert!(
        decide_with(
            settings,
            &["ops"],
            request("delete", "pods", Some("a"), Some("p"))
        )
        .is_allow()
    );
    assert!(
        decide_with(
            r#"{"deletes": {"unless_groups": ["ops"]}}"#,
            &["ops"],
            request("delete", "namespaces", Some("a"), Some("a"))
        )
        .is_allow()
    );
    assert!(
        decide_with(
            r#"{"deletes": {"namespaces": false}}"#,
            &[],
            request("delete", "namespaces", Some("a"), Some("a"))
        )
        .is_allow()
    );
}

#[test]
fn exec_into_blocked_namespaces_and_programs_is_denied() {
    let d = decide_with("", &[], exec("kube-system", &["sh"]));
    assert_eq!(
        d.deny_reason(),
        Some("exec into pods of namespace kube-system is not allowed")
    );
    assert_eq!(d.annotation("rule"), Some("exec.blocked_namespaces"));
    assert!(decide_with("", &[], exec("default", &["ls"])).is_allow());

    let settings =
        r#"{"exec": {"blocked_namespaces": ["prod"], "blocked_commands": ["rm", "sh"]}}"#;
    assert!(decide_with(settings, &[], exec("kube-system", &["ls"])).is_allow());
    let d = decide_with(settings, &[], exec("dev", &["/bin/sh", "-c", "id"]));
    assert_eq!(d.deny_reason(), Some("running sh in a pod is not allowed"));
    let attach = KubernetesRequest {
        verb: "attach".into(),
        subresource: Some("attach".into()),
        ..exec("prod", &[])
    };
    assert!(decide_with(settings, &[], attach).deny_reason().is_some());

    let settings = r#"{"exec": {"approve": true, "approver_groups": ["sre"]}}"#;
    let d = decide_with(settings, &[], exec("default", &["cat", "/etc/hosts"]));
    assert_eq!(
        approval_reason(&d),
        Some("exec in pod default/web: cat /etc/hosts")
    );
    assert!(
        decide_with(
            r#"{"exec": {"unless_groups": ["sre"]}}"#,
            &["sre"],
            exec("kube-system", &["sh"])
        )
        .is_allow()
    );
}

#[test]
fn binding_cluster_admin_is_denied() {
    let escalate = serde_json::json!({"kind": "ClusterRoleBinding", "metadata": {"name": "me-admin"},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "agent"}]});
    let d = decide_with("", &[], binding("create", None, Some(escalate)));
    assert_eq!(
        d.deny_reason(),
        Some("binding the role cluster-admin is not allowed")
    );
    let d = decide_with("", &[], binding("patch", Some("cluster-admin"), None));
    assert_eq!(
        d.deny_reason(),
        Some("changing the clusterrolebindings binding cluster-admin is not allowed")
    );
    let d = decide_with("", &[], binding("create", None, None));
    assert_eq!(d.annotation("rule"), Some("rbac.unreadable"));
    let view = serde_json::json!({"roleRef": {"kind": "ClusterRole", "name": "view"}});
    assert!(decide_with("", &[], binding("create", None, Some(view.clone()))).is_allow());
    let rolebinding = KubernetesRequest {
        resource: "rolebindings".into(),
        namespace: Some("a".into()),
        ..binding(
            "create",
            None,
            Some(serde_json::json!({"roleRef": {"name": "admin"}})),
        )
    };
    assert!(
        decide_with(
            r#"{"rbac": {"protected_roles": ["admin"]}}"#,
            &[],
            rolebinding
        )
        .deny_reason()
        .is_some()
    );
    assert!(
        decide_with(
            r#"{"rbac": {"unless_groups": ["root"]}}"#,
            &["root"],
            binding("patch", Some("cluster-admin"), None)
        )
        .is_allow()
    );
}

#[test]
fn port_forward_is_limited_by_namespace() {
    let pf = |ns: &str| KubernetesRequest {
        subresource: Some("portforward".into()),
        ..request("portforward", "pods", Some(ns), Some("db"))
    };
    // By default: anywhere exec may go, not into kube-system.
    assert!(decide_with("", &[], pf("default")).is_allow());
    let d = decide_with("", &[], pf("kube-system"));
    assert_eq!(
        d.deny_reason(),
        Some("portforward into pods of namespace kube-system is not allowed")
    );
    assert_eq!(d.annotation("rule"), Some("exec.blocked_namespaces"));

    let settings = r#"{"portforward": {"allowed_namespaces": ["dev"], "unless_groups": ["dba"]}}"#;
    assert!(decide_with(settings, &[], pf("dev")).is_allow());
    let d = decide_with(settings, &[], pf("prod"));
    assert_eq!(
        d.deny_reason(),
        Some("port-forward into pods of namespace prod is not allowed")
    );
    assert_eq!(d.annotation("rule"), Some("portforward.allowed_namespaces"));
    assert!(decide_with(settings, &["dba"], pf("prod")).is_allow());
    // An exec is not a port-forward.
    assert!(decide_with(settings, &[], exec("prod", &["ls"])).is_allow());
    // `[]`: no port-forward at all.
    let none = r#"{"portforward": {"allowed_namespaces": []}}"#;
    assert!(decide_with(none, &[], pf("dev")).deny_reason().is_some());
}

#[test]
fn settings_errors_name_the_key() {
    for (settings, error) in [
        (r#"{"secret": {}}"#, "settings: unknown key \"secret\""),
        (
            r#"{"secrets": {"method": "scramble"}}"#,
            "secrets.method: expected \"redact\" or \"hash\"",
        ),
        (
            r#"{"exec": {"blocked_namespaces": [1]}}"#,
            "exec.blocked_namespaces[0]: expected a string",
        ),
        (
            r#"{"exec": {"blocked_commands": ["/bin/sh"]}}"#,
            "exec.blocked_commands[0]: expected a program name",
        ),
        (
            r#"{"deletes": {"timeout_secs": -1}}"#,
            "deletes.timeout_secs: expected a whole number",
        ),
        (r#"{"rbac": []}"#, "rbac: expected an object"),
        (
            r#"{"portforward": {"allowed_namespaces": "dev"}}"#,
            "portforward.allowed_namespaces: expected",
        ),
        ("[", "settings are not valid JSON"),
    ] {
        let err = K8sGuard::validate_config(settings.into()).unwrap_err();
        assert!(err.starts_with(error), "{settings}: {err}");
    }
    assert!(K8sGuard::validate_config(String::new()).is_ok());
    assert_eq!(K8sGuard::describe().name, "k8s-guard");
    serde_json::from_str::<serde_json::Value>(SETTINGS_SCHEMA).expect("schema is JSON");
}
