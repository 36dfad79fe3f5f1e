//! The policy engine: WebAssembly components that decide on every request.
//!
//! Loading (`loaded`) compiles a component and checks it against the
//! contract; `invoke` runs one hook in a fresh, limited instance; `chain`
//! combines the decisions of a connection's policies; `registry` holds the
//! current versions and `watcher` swaps them when files change.

pub mod bindings;
pub mod cache;
pub mod chain;
pub mod decision;
pub mod engine;
pub mod invoke;
pub mod limiter;
pub mod loaded;
pub mod registry;
pub mod store;
pub mod watcher;

use std::path::PathBuf;

pub use chain::{ChainOutcome, PolicyChain};
pub use decision::{Outcome, PolicyDecision};
pub use engine::PolicyEngine;
pub use loaded::LoadedPolicy;
pub use registry::PolicyRegistry;

/// Why a policy could not be loaded or the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy engine: {0}")]
    Engine(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("settings rejected by the policy: {0}")]
    Settings(String),
}

impl PolicyError {
    pub fn engine(e: impl std::fmt::Display) -> Self {
        PolicyError::Engine(format!("{e:#}"))
    }
}
