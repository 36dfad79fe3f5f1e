//! The audit trail: sessions and their events, hash-chained per session, in
//! SQLite (default) or PostgreSQL (shared by several replicas).
//!
//! Adapters hand records to [`AuditSink`], which never blocks them; a single
//! writer task batches records into the store, assigns sequence numbers and
//! chains hashes. Only masked data reaches a record: adapters record what
//! the caller saw, after masking.

pub mod chain;
pub mod record;
pub mod replay;
pub mod schema;
pub mod search;
pub mod shared;
pub mod store;
pub mod timestamp;
pub mod writer;

pub use record::{AuditEvent, Detail, EventKind, PrincipalRecord, SessionInfo};
pub use store::{AuditStore, StoredEvent, StoredSession};
pub use writer::{AuditSink, AuditUnavailable};
