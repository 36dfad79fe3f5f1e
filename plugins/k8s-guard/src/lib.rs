//! `k8s-guard`: the shipped Kubernetes policy. It sees each request as the
//! API server classifies it (`wit/hooks.wit`, interface `kubernetes`) and:
//!
//! - masks `data` and `stringData` of Secrets read with get, list or watch
//!   (the host applies the mask to every object of a list, a `Table` and a
//!   watch stream);
//! - holds deletes of namespaces and of other cluster-scoped objects (and
//!   collections across all namespaces) for approval;
//! - refuses exec, attach and port-forward into blocked namespaces and
//!   blocked programs, and can hold every other exec for approval;
//! - limits port-forward to listed namespaces;
//! - refuses RBAC escalation: bindings to protected roles (`cluster-admin`)
//!   and changes to the bindings of that name.
//!
//! Decisions carry `rule` (`secrets.mask`, `deletes.namespaces`, ...).
//! Settings: see `plugins/README.md` and [`SETTINGS_SCHEMA`].

mod config;

use std::sync::Arc;

use gatehouse_sdk::settings::SettingsCache;
use gatehouse_sdk::types::{Context, Decision, Protocol};
use gatehouse_sdk::{MaskRule, allow, deny, mask, require_approval};

pub use config::Config;

gatehouse_sdk::export_policy!(K8sGuard, wit: "../../wit", hooks: [kubernetes]);

use bindings::kubernetes::KubernetesRequest;
use bindings::meta::Description;

/// JSON Schema (2020-12) of the settings, returned by `describe`.
pub const SETTINGS_SCHEMA: &str = include_str!("settings.schema.json");

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The policy.
pub struct K8sGuard;

impl bindings::meta::Guest for K8sGuard {
    fn describe() -> Description {
        Description {
            name: "k8s-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Masks Secrets, holds destructive deletes for approval, limits exec, blocks RBAC escalation".into(),
            protocols: vec![Protocol::Kubernetes],
            settings_schema: SETTINGS_SCHEMA.into(),
        }
    }

    fn validate_config(settings: String) -> Result<(), String> {
        config::validate(&settings).map(|_| ())
    }
}

impl bindings::kubernetes::Guest for K8sGuard {
    fn on_request(ctx: Context, request: KubernetesRequest) -> Decision {
        match current_config() {
            Ok(config) => decide(&config, &ctx, &request),
            Err(d) => d,
        }
    }
}

/// The decision for already-parsed settings.
pub fn decide(config: &Config, ctx: &Context, r: &KubernetesRequest) -> Decision {
    if let Some(d) = exec_rule(config, ctx, r) {
        return d;
    }
    if let Some(d) = portforward_rule(config, ctx, r) {
        return d;
    }
    if let Some(d) = rbac_rule(config, ctx, r) {
        return d;
    }
    if let Some(d) = delete_rule(config, ctx, r) {
        return d;
    }
    let s = &config.secrets;
    let reads_secrets = r.resource == "secrets"
        && r.api_group.is_empty()
        && matches!(r.verb.as_str(), "get" | "list" | "watch");
    if s.mask && reads_secrets && !ctx.in_any_group(&s.unless_groups) {
        let rules = ["/data/*", "/stringData/*"].map(|p| {
            let rule = MaskRule::json_pointer(p);
            if s.hash { rule.hash() } else { rule.redact() }
        });
        return mask(rules).annotate("rule", "secrets.mask");
    }
    allow()
}

fn exec_rule(config: &Config, ctx: &Context, r: &KubernetesRequest) -> Option<Decision> {
    let e = &config.exec;
    if !matches!(r.verb.as_str(), "exec" | "attach" | "portforward")
        || ctx.in_any_group(&e.unless_groups)
    {
        return None;
    }
    let ns = r.namespace.as_deref().unwrap_or("");
    if e.blocked_namespaces.iter().any(|b| b == ns) {
        return Some(
            deny(format!(
                "{} into pods of namespace {ns} is not allowed",
                r.verb
            ))
            .annotate("rule", "exec.blocked_namespaces"),
        );
    }
    let program = r
        .command
        .first()
        .map(|c| c.rsplit('/').next().unwrap_or(c))
        .unwrap_or("");
    if e.blocked_commands.iter().any(|b| b == program) {
        return Some(
            deny(format!("running {program} in a pod is not allowed"))
                .annotate("rule", "exec.blocked_commands"),
        );
    }
    if e.approve && r.verb != "portforward" {
        let pod = r.name.as_deref().unwrap_or("?");
        let what = if r.command.is_empty() {
            format!("{} to pod {ns}/{pod}", r.verb)
        } else {
            format!("exec in pod {ns}/{pod}: {}", r.command.join(" "))
        };
        return Some(
            require_approval(what)
                .approvers(e.approver_groups.iter().cloned())
                .timeout_secs(e.timeout_secs)
                .once()
                .annotate("rule", "exec.approve")
                .build(),
        );
    }
    None
}

fn portforward_rule(config: &Config, ctx: &Context, r: &KubernetesRequest) -> Option<Decision> {
    let p = &config.portforward;
    if r.verb != "portforward" || ctx.in_any_group(&p.unless_groups) {
        return None;
    }
    let allowed = p.allowed_namespaces.as_ref()?;
    let ns = r.namespace.as_deref().unwrap_or("");
    if allowed.iter().any(|a| a == ns) {
        return None;
    }
    Some(
        deny(format!(
            "port-forward into pods of namespace {ns} is not allowed"
        ))
        .annotate("rule", "portforward.allowed_namespaces"),
    )
}

fn rbac_rule(config: &Config, ctx: &Context, r: &KubernetesRequest) -> Option<Decision> {
    let rb = &config.rbac;
    let binding = r.api_group == RBAC_GROUP
        && matches!(r.resource.as_str(), "rolebindings" | "clusterrolebindings");
    if !binding
        || !matches!(r.verb.as_str(), "create" | "update" | "patch")
        || ctx.in_any_group(&rb.unless_groups)
    {
        return None;
    }
    let protected = |name: &str| rb.protected_roles.iter().any(|p| p == name);
    if let Some(name) = r.name.as_deref().filter(|n| protected(n)) {
        return Some(
            deny(format!(
                "changing the {} binding {name} is not allowed",
                r.resource
            ))
            .annotate("rule", "rbac.protected_roles"),
        );
    }
    let object: Option<serde_json::Value> = r
        .object
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok());
    let Some(object) = object else {
        // A binding that cannot be read cannot be checked (server-side apply
        // creates with a patch, so patches count too).
        return Some(
            deny("a role binding must be sent as JSON so that its role can be checked")
                .annotate("rule", "rbac.unreadable"),
        );
    };
    let role = object["roleRef"]["name"].as_str().unwrap_or("");
    if protected(role) {
        return Some(
            deny(format!("binding the role {role} is not allowed"))
                .annotate("rule", "rbac.protected_roles"),
        );
    }
    None
}

fn delete_rule(config: &Config, ctx: &Context, r: &KubernetesRequest) -> Option<Decision> {
    let d = &config.deletes;
    if !matches!(r.verb.as_str(), "delete" | "deletecollection")
        || ctx.in_any_group(&d.unless_groups)
    {
        return None;
    }
    let namespaces = r.resource == "namespaces" && r.api_group.is_empty();
    let (on, rule, what) = if namespaces {
        let what = match (&r.verb[..], r.name.as_deref()) {
            ("delete", Some(n)) => format!("delete namespace {n}"),
            _ => "delete a collection of namespaces".to_string(),
        };
        (d.namespaces, "deletes.namespaces", what)
    } else if r.namespace.is_none() && r.subresource.is_none() {
        let kind = if r.api_group.is_empty() {
            r.resource.clone()
        } else {
            format!("{}.{}", r.resource, r.api_group)
        };
        let what = match (&r.verb[..], r.name.as_deref()) {
            ("delete", Some(n)) => format!("delete {kind} {n}"),
            _ => format!("delete every {kind} in the cluster"),
        };
        (d.cluster_scoped, "deletes.cluster_scoped", what)
    } else {
        return None;
    };
    if !on {
        return None;
    }
    Some(
        require_approval(what)
            .approvers(d.approver_groups.iter().cloned())
            .timeout_secs(d.timeout_secs)
            .once()
            .annotate("rule", rule)
            .build(),
    )
}

/// Settings parsed once per distinct settings string.
static CACHE: SettingsCache<Config> = SettingsCache::new();

/// The parsed settings, or a fail-closed deny if they do not parse (the host
/// validates at load, so this only happens if it skipped `validate-config`).
fn current_config() -> Result<Arc<Config>, Decision> {
    CACHE.get_or_deny("k8s-guard", config::parse)
}

#[cfg(test)]
mod tests;
