//! Gatehouse: an identity-aware Layer 7 proxy that asks WebAssembly policies
//! for a decision on every request and records everything.
//!
//! # Layout
//! - [`config`]: the TOML file, typed and validated at load.
//! - [`policy`]: the wasmtime engine, loading, hot reload, calls and the chain.
//! - [`mask`]: declarative masks compiled once and applied to streams natively.
//! - [`audit`]: sessions and hash-chained events in SQLite or PostgreSQL.
//! - [`identity`]: who is calling (Gatehouse API keys).
//! - [`http`]: the HTTP/1.1 + HTTP/2 reverse proxy, the first protocol adapter.
//! - [`postgres`]: the PostgreSQL v3 wire-protocol proxy.
//! - [`admin`]: health, policy status and metrics on a separate listener.
//! - [`server`]: wires the parts together and runs until shutdown.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod config;
pub mod fixtures;
pub mod http;
pub mod identity;
pub mod mask;
pub mod metrics;
pub mod policy;
pub mod postgres;
pub mod server;
pub mod tls;
