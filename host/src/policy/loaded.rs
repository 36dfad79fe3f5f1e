//! A compiled, checked policy version, ready to be instantiated per call.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use wasmtime::component::InstancePre;

use super::PolicyError;
use super::bindings::{http, kubernetes, llm, mcp, mcp_listing, meta, postgres, ssh, types};
use super::engine::PolicyEngine;
use super::invoke::{CallFailure, call_guest};
use super::store::StoreState;
use crate::config::EffectiveLimits;

/// The hook interfaces a component exports. Absent ones are never called.
#[derive(Clone, Default)]
pub struct Hooks {
    pub http: Option<http::GuestIndices>,
    pub postgres: Option<postgres::GuestIndices>,
    pub kubernetes: Option<kubernetes::GuestIndices>,
    pub llm: Option<llm::GuestIndices>,
    pub mcp: Option<mcp::GuestIndices>,
    pub mcp_listing: Option<mcp_listing::GuestIndices>,
    pub ssh: Option<ssh::GuestIndices>,
}

impl Hooks {
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("http", self.http.is_some()),
            ("postgres", self.postgres.is_some()),
            ("kubernetes", self.kubernetes.is_some()),
            ("llm", self.llm.is_some()),
            ("mcp", self.mcp.is_some()),
            ("mcp-listing", self.mcp_listing.is_some()),
            ("ssh", self.ssh.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, present)| present.then_some(n))
        .collect()
    }
}

/// What `meta.describe` said, in host terms.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub protocols: Vec<String>,
    pub settings_schema: String,
}

pub struct LoadedPolicy {
    /// The name connections refer to: the file stem.
    pub name: Arc<str>,
    pub version: Arc<str>,
    /// sha256 of the component bytes, hex.
    pub digest: Arc<str>,
    pub description: Description,
    pub settings: Arc<str>,
    pub limits: EffectiveLimits,
    pub hooks: Hooks,
    pub loaded_at: SystemTime,
    pre: InstancePre<StoreState>,
    engine: Arc<PolicyEngine>,
}

impl LoadedPolicy {
    /// Compiles `bytes`, links it, finds its hooks, asks it to describe
    /// itself and to validate `settings`. Any failure leaves nothing loaded.
    pub fn load(
        engine: &Arc<PolicyEngine>,
        name: &str,
        bytes: &[u8],
        settings: &str,
        limits: EffectiveLimits,
    ) -> Result<LoadedPolicy, PolicyError> {
        serde_json::from_str::<serde_json::Value>(settings)
            .map_err(|e| PolicyError::Settings(format!("not JSON: {e}")))?;
        let (component, digest) = engine.compile(bytes)?;
        let pre = engine.linker().instantiate_pre(&component).map_err(|e| {
            PolicyError::Invalid(format!(
                "the component imports something the host does not provide (policies may import only gatehouse:policy/host and WASI): {e:#}"
            ))
        })?;
        let meta_idx = meta::GuestIndices::new(&pre).map_err(|e| {
            PolicyError::Invalid(format!(
                "does not export gatehouse:policy/meta@0.1.0: {e:#}"
            ))
        })?;
        let hooks = Hooks {
            http: http::GuestIndices::new(&pre).ok(),
            postgres: postgres::GuestIndices::new(&pre).ok(),
            kubernetes: kubernetes::GuestIndices::new(&pre).ok(),
            llm: llm::GuestIndices::new(&pre).ok(),
            mcp: mcp::GuestIndices::new(&pre).ok(),
            mcp_listing: mcp_listing::GuestIndices::new(&pre).ok(),
            ssh: ssh::GuestIndices::new(&pre).ok(),
        };
        if hooks.names().is_empty() {
            return Err(PolicyError::Invalid(
                "exports no hook interface (http, postgres, kubernetes, llm, mcp, mcp-listing or ssh)"
                    .into(),
            ));
        }
        let settings: Arc<str> = Arc::from(settings);
        let name: Arc<str> = Arc::from(name);
        let mut policy = LoadedPolicy {
            version: Arc::from(""),
            digest: Arc::from(digest.as_str()),
            description: Description {
                name: String::new(),
                version: String::new(),
                summary: String::new(),
                protocols: vec![],
                settings_schema: String::new(),
            },
            settings: settings.clone(),
            limits,
            hooks,
            loaded_at: SystemTime::now(),
            pre,
            engine: engine.clone(),
            name,
        };
        let (description, validation) = policy
            .call("load", |store, instance| {
                let m = meta_idx.load(&mut *store, instance)?;
                let d = m.call_describe(&mut *store)?;
                let v = m.call_validate_config(&mut *store, &settings)?;
                Ok((d, v))
            })
            .map_err(|f| PolicyError::Invalid(format!("meta call failed: {f}")))?;
        validation.map_err(PolicyError::Settings)?;
        if description.name.is_empty() || description.version.is_empty() {
            return Err(PolicyError::Invalid(
                "describe() must give a name and a version".into(),
            ));
        }
        policy.version = Arc::from(description.version.as_str());
        policy.description = Description {
            name: description.name,
            version: description.version,
            summary: description.summary,
            protocols: description
                .protocols
                .iter()
                .map(|p| protocol_name(*p).to_string())
                .collect(),
            settings_schema: description.settings_schema,
        };
        Ok(policy)
    }

    /// Runs `f` against a fresh instance under this policy's limits.
    pub fn call<R>(
        &self,
        request_id: &str,
        f: impl FnOnce(
            &mut wasmtime::Store<StoreState>,
            &wasmtime::component::Instance,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        call_guest(
            &self.engine,
            &self.pre,
            &self.name,
            &self.settings,
            &self.limits,
            request_id,
            f,
        )
    }

    pub fn http_on_request(
        &self,
        ctx: &types::Context,
        req: &http::HttpRequest,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.http.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_request(&mut *store, ctx, req)
        }))
    }

    pub fn http_on_response(
        &self,
        ctx: &types::Context,
        req: &http::HttpRequest,
        resp: &http::HttpResponse,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.http.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_response(&mut *store, ctx, req, resp)
        }))
    }
}

impl LoadedPolicy {
    pub fn postgres_on_query(
        &self,
        ctx: &types::Context,
        query: &postgres::Query,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.postgres.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_query(&mut *store, ctx, query)
        }))
    }

    pub fn postgres_on_result_columns(
        &self,
        ctx: &types::Context,
        query: &postgres::Query,
        columns: &[postgres::Column],
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.postgres.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_result_columns(&mut *store, ctx, query, columns)
        }))
    }
}

fn protocol_name(p: types::Protocol) -> &'static str {
    match p {
        types::Protocol::Http => "http",
        types::Protocol::Llm => "llm",
        types::Protocol::Kubernetes => "kubernetes",
        types::Protocol::Mcp => "mcp",
        types::Protocol::Postgres => "postgres",
        types::Protocol::Ssh => "ssh",
        types::Protocol::Mysql => "mysql",
    }
}

/// The hooks of the protocols that ride on HTTP (see `http/adapter.rs`).
impl LoadedPolicy {
    pub fn llm_on_request(
        &self,
        ctx: &types::Context,
        req: &llm::LlmRequest,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.llm.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_request(&mut *store, ctx, req)
        }))
    }

    pub fn llm_on_response(
        &self,
        ctx: &types::Context,
        req: &llm::LlmRequest,
        resp: &llm::LlmResponse,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.llm.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_response(&mut *store, ctx, req, resp)
        }))
    }

    pub fn mcp_on_request(
        &self,
        ctx: &types::Context,
        req: &mcp::McpRequest,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.mcp.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_request(&mut *store, ctx, req)
        }))
    }

    pub fn mcp_on_result(
        &self,
        ctx: &types::Context,
        req: &mcp::McpRequest,
        result: &str,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.mcp.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_result(&mut *store, ctx, req, result)
        }))
    }

    /// The ids of the listed resources, templates or prompts this policy
    /// hides from the caller.
    pub fn mcp_listing_filter(
        &self,
        ctx: &types::Context,
        entries: &[mcp_listing::Entry],
    ) -> Option<Result<Vec<String>, CallFailure>> {
        let idx = self.hooks.mcp_listing.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_filter(&mut *store, ctx, entries)
        }))
    }

    /// The names of the tools this policy hides from the caller.
    pub fn mcp_filter_tools(
        &self,
        ctx: &types::Context,
        tools: &[mcp::ToolInfo],
    ) -> Option<Result<Vec<String>, CallFailure>> {
        let idx = self.hooks.mcp.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_filter_tools(&mut *store, ctx, tools)
        }))
    }

    pub fn kubernetes_on_request(
        &self,
        ctx: &types::Context,
        req: &kubernetes::KubernetesRequest,
    ) -> Option<Result<types::Decision, CallFailure>> {
        let idx = self.hooks.kubernetes.as_ref()?;
        Some(self.call(&ctx.request_id, |store, inst| {
            idx.load(&mut *store, inst)?
                .call_on_request(&mut *store, ctx, req)
        }))
    }
}
