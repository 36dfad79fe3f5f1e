//! Host bindings generated from `wit/` (world `gatehouse:policy/policy`).
//!
//! The world lists every hook, but a component exports only some: the engine
//! never instantiates the world as a whole. It resolves each hook interface on
//! its own with `GuestIndices::new`, which fails cleanly for absent exports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gatehouse:policy/policy",
});

pub use exports::gatehouse::policy::{
    http, kubernetes, llm, mcp, mcp_listing, meta, postgres, ssh,
};
pub use gatehouse::policy::host;
pub use gatehouse::policy::types;
