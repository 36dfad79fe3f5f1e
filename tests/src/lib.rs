//! The end-to-end test harness: starts the real `gatehouse` binary on port 0
//! with a generated configuration, a local upstream server, and helpers to
//! create keys, read the audit trail and clean up every child process.
//!
//! Build first: `cargo build -p gatehouse` and the policy components
//! (`make plugins`); the Makefile does both before `cargo test`.

pub mod audit_events;
pub mod gatehouse;
pub mod kube_api;
pub mod kubectl;
pub mod llm;
pub mod mcp;
pub mod oidc;
pub mod openapi;
pub mod pg_client;
pub mod pg_cluster;
pub mod postgres;
pub mod spdy;
pub mod tls;
pub mod upstream;

use std::path::PathBuf;

pub use gatehouse::{Gatehouse, GatehouseBuilder};
pub use upstream::Upstream;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built `gatehouse` binary: `$GATEHOUSE_BIN` when set (a relative path
/// is taken from the workspace root), else the debug build.
pub fn gatehouse_bin() -> PathBuf {
    let p = match std::env::var_os("GATEHOUSE_BIN").filter(|v| !v.is_empty()) {
        Some(v) => root().join(v),
        None => root().join("target/debug/gatehouse"),
    };
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p gatehouse` (or `make test`), or point GATEHOUSE_BIN at a built binary",
        p.display()
    );
    p
}

/// A built policy component, by crate name (`http-guard`, `infinite-loop`, ...).
pub fn policy_wasm(crate_name: &str) -> PathBuf {
    let p = root()
        .join("target/wasm32-wasip2/wasm")
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(p.exists(), "{} is missing: run `make plugins`", p.display());
    p
}

/// An HTTP client for tests: loopback only, so no proxy from the environment.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// The upstream credential every test upstream expects.
pub const UPSTREAM_TOKEN: &str = "upstream-secret-token-7f3a9c";
/// An AWS-style key the upstream returns in several shapes.
pub const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
