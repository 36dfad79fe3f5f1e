//! Settings parsing and validation. Every error names the offending key,
//! e.g. `exec.blocked_namespaces[0]: expected a string`.

use gatehouse_sdk::settings::fields::{
    check_keys, object, opt_bool, opt_string, opt_u32, string_list,
};
use serde_json::{Map, Value};

/// The approval timeout when `timeout_secs` is absent.
pub const DEFAULT_TIMEOUT_SECS: u32 = 300;

/// Compiled settings. Every section is on by default: a policy that guards
/// a cluster should not need settings to do so.
#[derive(Debug)]
pub struct Config {
    pub secrets: SecretsConfig,
    pub deletes: DeletesConfig,
    pub exec: ExecConfig,
    pub portforward: PortForwardConfig,
    pub rbac: RbacConfig,
}

#[derive(Debug)]
pub struct SecretsConfig {
    /// Mask `data` and `stringData` of Secrets read with get, list or watch.
    pub mask: bool,
    /// `redact` (the default) or `hash` (a keyed hash: equal values stay
    /// comparable without being readable).
    pub hash: bool,
    pub unless_groups: Vec<String>,
}

#[derive(Debug)]
pub struct DeletesConfig {
    /// Deleting a namespace (or a collection of them) needs approval.
    pub namespaces: bool,
    /// Deleting any other cluster-scoped object, or a collection across
    /// every namespace, needs approval.
    pub cluster_scoped: bool,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub unless_groups: Vec<String>,
}

#[derive(Debug)]
pub struct ExecConfig {
    /// No exec, attach or port-forward into pods of these namespaces.
    pub blocked_namespaces: Vec<String>,
    /// No exec of these programs (compared with the command's first word,
    /// without its directory).
    pub blocked_commands: Vec<String>,
    /// Every other exec and attach needs approval.
    pub approve: bool,
    pub approver_groups: Vec<String>,
    pub timeout_secs: u32,
    pub unless_groups: Vec<String>,
}

#[derive(Debug)]
pub struct PortForwardConfig {
    /// When set, port-forward only into pods of these namespaces (`[]`:
    /// none); unset, into any namespace `exec.blocked_namespaces` allows.
    pub allowed_namespaces: Option<Vec<String>>,
    pub unless_groups: Vec<String>,
}

#[derive(Debug)]
pub struct RbacConfig {
    /// Refuse bindings (RoleBinding, ClusterRoleBinding) to these roles,
    /// and changes to bindings with these names.
    pub protected_roles: Vec<String>,
    pub unless_groups: Vec<String>,
}

/// Everything `parse` checks. Run once, from `validate-config`.
pub fn validate(json: &str) -> Result<Config, String> {
    parse(json)
}

/// Parses the settings JSON (`""` counts as `{}`).
pub fn parse(json: &str) -> Result<Config, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let value: Value =
        serde_json::from_str(json).map_err(|e| format!("settings are not valid JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err("settings: expected a JSON object".into());
    };
    check_keys(
        "settings",
        &top,
        &["secrets", "deletes", "exec", "portforward", "rbac"],
    )?;
    let empty = Map::new();
    let section = |key: &str| -> Result<&Map<String, Value>, String> {
        match top.get(key) {
            None | Some(Value::Null) => Ok(&empty),
            Some(v) => object(v, key),
        }
    };

    let s = section("secrets")?;
    check_keys("secrets", s, &["mask", "method", "unless_groups"])?;
    let hash = match opt_string(s, "method", "secrets")?.as_deref() {
        None | Some("redact") => false,
        Some("hash") => true,
        Some(other) => {
            return Err(format!(
                "secrets.method: expected \"redact\" or \"hash\", got \"{other}\""
            ));
        }
    };
    let secrets = SecretsConfig {
        mask: opt_bool(s, "mask", "secrets")?.unwrap_or(true),
        hash,
        unless_groups: string_list(s, "unless_groups", "secrets")?,
    };

    let d = section("deletes")?;
    check_keys(
        "deletes",
        d,
        &[
            "namespaces",
            "cluster_scoped",
            "approver_groups",
            "timeout_secs",
            "unless_groups",
        ],
    )?;
    let deletes = DeletesConfig {
        namespaces: opt_bool(d, "namespaces", "deletes")?.unwrap_or(true),
        cluster_scoped: opt_bool(d, "cluster_scoped", "deletes")?.unwrap_or(true),
        approver_groups: string_list(d, "approver_groups", "deletes")?,
        timeout_secs: opt_u32(d, "timeout_secs", "deletes")?.unwrap_or(DEFAULT_TIMEOUT_SECS),
        unless_groups: string_list(d, "unless_groups", "deletes")?,
    };

    let e = section("exec")?;
    check_keys(
        "exec",
        e,
        &[
            "blocked_namespaces",
            "blocked_commands",
            "approve",
            "approver_groups",
            "timeout_secs",
            "unless_groups",
        ],
    )?;
    let blocked_namespaces = match e.get("blocked_namespaces") {
        None | Some(Value::Null) => vec!["kube-system".to_string()],
        Some(_) => string_list(e, "blocked_namespaces", "exec")?,
    };
    let blocked_commands = string_list(e, "blocked_commands", "exec")?;
    if let Some((i, _)) = blocked_commands
        .iter()
        .enumerate()
        .find(|(_, c)| c.is_empty() || c.contains('/'))
    {
        return Err(format!(
            "exec.blocked_commands[{i}]: expected a program name without a directory"
        ));
    }
    let exec = ExecConfig {
        blocked_namespaces,
        blocked_commands,
        approve: opt_bool(e, "approve", "exec")?.unwrap_or(false),
        approver_groups: string_list(e, "approver_groups", "exec")?,
        timeout_secs: opt_u32(e, "timeout_secs", "exec")?.unwrap_or(DEFAULT_TIMEOUT_SECS),
        unless_groups: string_list(e, "unless_groups", "exec")?,
    };

    let p = section("portforward")?;
    check_keys("portforward", p, &["allowed_namespaces", "unless_groups"])?;
    let portforward = PortForwardConfig {
        allowed_namespaces: match p.get("allowed_namespaces") {
            None | Some(Value::Null) => None,
            Some(_) => Some(string_list(p, "allowed_namespaces", "portforward")?),
        },
        unless_groups: string_list(p, "unless_groups", "portforward")?,
    };

    let r = section("rbac")?;
    check_keys("rbac", r, &["protected_roles", "unless_groups"])?;
    let rbac = RbacConfig {
        protected_roles: match r.get("protected_roles") {
            None | Some(Value::Null) => vec!["cluster-admin".to_string()],
            Some(_) => string_list(r, "protected_roles", "rbac")?,
        },
        unless_groups: string_list(r, "unless_groups", "rbac")?,
    };
    Ok(Config {
        secrets,
        deletes,
        exec,
        portforward,
        rbac,
    })
}
