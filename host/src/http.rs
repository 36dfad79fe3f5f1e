//! The HTTP adapter: an HTTP/1.1 and HTTP/2 reverse proxy for one configured
//! connection. Each request follows the same phases as every adapter:
//! authenticate → decode into a policy event → run the chain → apply the
//! decision in HTTP terms (403, masks, forward) → record.

pub mod adapter;
pub mod body;
pub mod errors;
pub mod event;
pub mod kubernetes;
pub mod listener;
pub mod llm;
pub mod mcp;
pub mod proxy;
pub mod sse;
pub mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

pub use listener::serve_connection;
pub use proxy::HttpProxy;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// What the adapter shares across requests of one connection.
pub type SharedProxy = Arc<HttpProxy>;
