//! A Kubernetes API request classified the way the API server's
//! `RequestInfoFactory` does (`k8s.io/apiserver/pkg/endpoints/request`):
//! verb, API group and version, resource, subresource, namespace, name.
//! Paths outside `/api` and `/apis/GROUP` (discovery, `/version`,
//! `/healthz`, `/openapi/v2`) are non-resource requests whose verb is the
//! lower-case method, as RBAC sees them.
//!
//! Pure: no I/O, never panics on any path or query (a property test feeds
//! it arbitrary strings).

use std::borrow::Cow;

/// Verbs given by a path segment instead of the method (`/api/v1/watch/pods`).
const SPECIAL_VERBS: &[&str] = &["proxy", "watch"];
/// Namespace subresources: `/api/v1/namespaces/NAME/status` is about the
/// namespace itself, not a resource inside it.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];
/// Pod subresources that open a stream and that policies see as verbs.
pub const STREAM_SUBRESOURCES: &[&str] = &["exec", "attach", "portforward", "log", "proxy"];

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// As RBAC sees it: `get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`, `proxy`; for non-resource requests the
    /// lower-case method.
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The path as the API server reads it (percent-decoded).
    pub path: String,
}

impl RequestInfo {
    /// The verb a policy sees: the RBAC verb, except that the pod stream
    /// subresources (`exec`, `attach`, `portforward`, `log`, `proxy`) are
    /// verbs of their own, since `create pods/exec` says less than `exec`.
    pub fn policy_verb(&self) -> &str {
        match &self.subresource {
            Some(s) if self.resource == "pods" && STREAM_SUBRESOURCES.contains(&s.as_str()) => s,
            _ => &self.verb,
        }
    }

    /// `exec` or `attach` on a pod: the requests that open an interactive stream.
    pub fn is_exec_or_attach(&self) -> bool {
        self.is_resource_request
            && self.resource == "pods"
            && matches!(self.subresource.as_deref(), Some("exec" | "attach"))
    }

    /// `portforward` on a pod: a tunnel to the pod's ports.
    pub fn is_port_forward(&self) -> bool {
        self.is_resource_request
            && self.resource == "pods"
            && self.subresource.as_deref() == Some("portforward")
    }

    /// Reads whose answer may carry objects: `get`, `list` and `watch`.
    pub fn is_read(&self) -> bool {
        self.is_resource_request && matches!(self.verb.as_str(), "get" | "list" | "watch")
    }

    /// Writes whose body is a request object.
    pub fn has_request_object(&self) -> bool {
        self.is_resource_request && matches!(self.verb.as_str(), "create" | "update" | "patch")
    }
}

/// Classifies `method path?query`.
pub fn classify(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map(Cow::into_owned)
        .unwrap_or_else(|_| path.to_string());
    let mut info = RequestInfo {
        is_resource_request: false,
        verb: method.to_ascii_lowercase(),
        api_prefix: String::new(),
        api_group: String::new(),
        api_version: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        path: path.clone(),
    };
    let trimmed = path.trim_matches('/');
    let all: Vec<&str> = if trimmed.is_empty() {
        vec![]
    } else {
        trimmed.split('/').collect()
    };
    if all.len() < 3 || !matches!(all[0], "api" | "apis") {
        return info;
    }
    let mut parts = &all[1..];
    if all[0] == "apis" {
        if parts.len() < 3 {
            return info;
        }
        info.api_group = parts[0].to_string();
        parts = &parts[1..];
    }
    // From here on the API server treats it as a resource request even when
    // it later fails to find a verb; so does Gatehouse (a policy must not be
    // able to miss a request by its shape).
    info.api_prefix = all[0].to_string();
    info.is_resource_request = true;
    info.api_version = parts[0].to_string();
    parts = &parts[1..];

    if SPECIAL_VERBS.contains(&parts[0]) {
        info.verb = parts[0].to_string();
        parts = &parts[1..];
        if parts.is_empty() {
            // The API server refuses these; keep the verb so a policy sees it.
            return info;
        }
    } else {
        info.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }

    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = Some(parts[1].to_string());
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts = &parts[2..];
        }
    }

    if parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = Some(parts[2].to_string());
    }
    if parts.len() >= 2 {
        info.name = Some(parts[1].to_string());
    }
    info.resource = parts[0].to_string();

    if info.name.is_none() && info.verb == "get" {
        let list = ListOptions::parse(query.unwrap_or(""));
        info.verb = if list.watch { "watch" } else { "list" }.to_string();
        info.name = list.name;
    }
    if info.name.is_none() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    info
}

/// The list options that change how a request is classified.
struct ListOptions {
    watch: bool,
    /// `fieldSelector=metadata.name=NAME`: a list of one named object.
    name: Option<String>,
}

impl ListOptions {
    fn parse(query: &str) -> ListOptions {
        let mut out = ListOptions {
            watch: false,
            name: None,
        };
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                // Go's strconv.ParseBool.
                "watch" => {
                    out.watch = matches!(v.as_ref(), "1" | "t" | "T" | "true" | "TRUE" | "True")
                }
                "fieldSelector" => out.name = exact_name(&v),
                _ => {}
            }
        }
        out
    }
}

/// `metadata.name=NAME` (or `==`) among a selector's comma-separated terms,
/// when NAME is a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(f, _)| !f.ends_with('!'))?;
        (field.trim() == "metadata.name"
            && !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains(['/', '%']))
        .then(|| value.to_string())
    })
}

/// The command of an `exec` request: its `command` query parameters in order.
pub fn exec_command(query: Option<&str>) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(method: &str, target: &str) -> RequestInfo {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        classify(method, path, query)
    }

    /// verb, group, resource, subresource, namespace, name.
    type Want<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
    );

    #[track_caller]
    fn check(method: &str, target: &str, want: Want<'_>) {
        let i = c(method, target);
        assert!(i.is_resource_request, "{target}");
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.resource.as_str(),
                i.subresource.as_deref(),
                i.namespace.as_deref(),
                i.name.as_deref()
            ),
            want,
            "{method} {target}"
        );
    }

    #[test]
    fn resource_requests_like_the_api_server() {
        // The cases of requestinfo_test.go that matter to policies.
        check(
            "GET",
            "/api/v1/namespaces",
            ("list", "", "namespaces", None, None, None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other",
            ("get", "", "namespaces", None, Some("other"), Some("other")),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods",
            ("list", "", "pods", None, Some("other"), None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods/foo",
            ("get", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "HEAD",
            "/api/v1/namespaces/other/pods/foo",
            ("get", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "GET",
            "/api/v1/pods",
            ("list", "", "pods", None, None, None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods?watch=true",
            ("watch", "", "pods", None, Some("other"), None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods?watch=1",
            ("watch", "", "pods", None, Some("other"), None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods?watch=false",
            ("list", "", "pods", None, Some("other"), None),
        );
        check(
            "GET",
            "/api/v1/watch/namespaces/other/pods",
            ("watch", "", "pods", None, Some("other"), None),
        );
        check(
            "GET",
            "/api/v1/watch/pods",
            ("watch", "", "pods", None, None, None),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/secrets?fieldSelector=metadata.name%3Dfoo",
            ("list", "", "secrets", None, Some("other"), Some("foo")),
        );
        check(
            "POST",
            "/api/v1/namespaces/other/pods",
            ("create", "", "pods", None, Some("other"), None),
        );
        check(
            "PUT",
            "/api/v1/namespaces/other/pods/foo",
            ("update", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "PATCH",
            "/api/v1/namespaces/other/pods/foo",
            ("patch", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "DELETE",
            "/api/v1/namespaces/other/pods/foo",
            ("delete", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "DELETE",
            "/api/v1/namespaces/other/pods",
            ("deletecollection", "", "pods", None, Some("other"), None),
        );
        check(
            "DELETE",
            "/api/v1/namespaces/other",
            (
                "delete",
                "",
                "namespaces",
                None,
                Some("other"),
                Some("other"),
            ),
        );
        check(
            "PUT",
            "/api/v1/namespaces/other/finalize",
            (
                "update",
                "",
                "namespaces",
                Some("finalize"),
                Some("other"),
                Some("other"),
            ),
        );
        check(
            "PUT",
            "/api/v1/namespaces/other/status",
            (
                "update",
                "",
                "namespaces",
                Some("status"),
                Some("other"),
                Some("other"),
            ),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods/foo/log",
            ("get", "", "pods", Some("log"), Some("other"), Some("foo")),
        );
        check(
            "POST",
            "/api/v1/namespaces/other/pods/foo/exec?command=ls",
            (
                "create",
                "",
                "pods",
                Some("exec"),
                Some("other"),
                Some("foo"),
            ),
        );
        check(
            "GET",
            "/api/v1/namespaces/other/pods/foo/exec?command=ls",
            ("get", "", "pods", Some("exec"), Some("other"), Some("foo")),
        );
        check(
            "GET",
            "/api/v1/proxy/namespaces/other/pods/foo/a/b",
            ("proxy", "", "pods", None, Some("other"), Some("foo")),
        );
        check(
            "GET",
            "/apis/apps/v1/namespaces/other/deployments/web",
            (
                "get",
                "apps",
                "deployments",
                None,
                Some("other"),
                Some("web"),
            ),
        );
        check(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            (
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                None,
                None,
                None,
            ),
        );
        check(
            "GET",
            "/apis/apps/v1/watch/deployments",
            ("watch", "apps", "deployments", None, None, None),
        );
        // Percent-encoding is no way around a rule.
        check(
            "DELETE",
            "/api/v1/namespaces/%6bube-system",
            (
                "delete",
                "",
                "namespaces",
                None,
                Some("kube-system"),
                Some("kube-system"),
            ),
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource_requests() {
        for (method, path, verb) in [
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/version", "get"),
            ("GET", "/openapi/v2", "get"),
            ("POST", "/healthz", "post"),
            ("GET", "/", "get"),
            ("GET", "/other/v1/pods", "get"),
        ] {
            let i = c(method, path);
            assert!(!i.is_resource_request, "{path}");
            assert_eq!(i.verb, verb, "{path}");
        }
    }

    #[test]
    fn stream_subresources_are_policy_verbs() {
        let i = c(
            "POST",
            "/api/v1/namespaces/a/pods/p/exec?command=sh&command=-c&command=id&stdin=true",
        );
        assert_eq!(i.policy_verb(), "exec");
        assert!(i.is_exec_or_attach());
        assert_eq!(
            exec_command(Some("command=sh&command=-c&command=id%20-u&stdin=true")),
            ["sh", "-c", "id -u"]
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/a/pods/p/attach").policy_verb(),
            "attach"
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/a/pods/p/log").policy_verb(),
            "log"
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/a/pods/p/status").policy_verb(),
            "get"
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/a/secrets/s").policy_verb(),
            "get"
        );
    }

    #[test]
    fn field_selectors_name_one_object_only_when_exact() {
        assert_eq!(exact_name("metadata.name==a"), Some("a".into()));
        assert_eq!(
            exact_name("status.phase=Running,metadata.name=a"),
            Some("a".into())
        );
        assert_eq!(exact_name("metadata.name!=a"), None);
        assert_eq!(exact_name("metadata.name=a/b"), None);
        assert_eq!(exact_name("metadata.namespace=a"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn never_panics(method in "[A-Z]{0,8}", path in "\\PC{0,80}", query in proptest::option::of("\\PC{0,40}")) {
            let _ = classify(&method, &path, query.as_deref());
        }

        /// Any path made of API-shaped segments classifies consistently:
        /// a resource request has a resource, a named one sits at a path
        /// that contains its name, and a namespace comes from the path.
        #[test]
        fn resource_paths_are_consistent(
            method in prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]),
            group in prop::option::of("[a-z]{1,6}(\\.[a-z]{1,4})?"),
            watch_prefix in any::<bool>(),
            ns in prop::option::of("[a-z0-9-]{1,10}"),
            resource in "[a-z]{1,10}",
            name in prop::option::of("[a-z0-9.-]{1,10}"),
            sub in prop::option::of("[a-z]{1,8}"),
            watch in any::<bool>(),
        ) {
            let mut path = match &group {
                Some(g) => format!("/apis/{g}/v1"),
                None => "/api/v1".to_string(),
            };
            if watch_prefix { path.push_str("/watch"); }
            if let Some(ns) = &ns { path.push_str(&format!("/namespaces/{ns}")); }
            path.push_str(&format!("/{resource}"));
            if let Some(n) = &name {
                path.push_str(&format!("/{n}"));
                if let Some(s) = &sub { path.push_str(&format!("/{s}")); }
            }
            let query = watch.then_some("watch=true");
            let i = classify(method, &path, query);
            prop_assert!(i.is_resource_request);
            prop_assert_eq!(i.api_group, group.clone().unwrap_or_default());
            prop_assert_eq!(i.api_version, "v1");
            prop_assert_eq!(i.namespace.as_deref(), ns.as_deref());
            if watch_prefix {
                prop_assert_eq!(i.verb.as_str(), "watch");
            }
            // `/namespaces/NS/status` and `/finalize` are the namespace's own.
            let ns_sub = ns.is_some() && NAMESPACE_SUBRESOURCES.contains(&resource.as_str());
            if !ns_sub {
                prop_assert_eq!(&i.resource, &resource);
                prop_assert_eq!(i.name.as_deref(), name.as_deref());
                if name.is_none() && !watch_prefix {
                    let expected = match method {
                        "GET" | "HEAD" => if watch { "watch" } else { "list" },
                        "DELETE" => "deletecollection",
                        "POST" => "create",
                        "PUT" => "update",
                        _ => "patch",
                    };
                    prop_assert_eq!(i.verb.as_str(), expected);
                }
            }
        }
    }
}
