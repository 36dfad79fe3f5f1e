//! What adapters hand to the audit sink.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrincipalRecord {
    pub subject: String,
    pub issuer: String,
    pub kind: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// The person accountable for the credential (see
    /// [`crate::identity::Principal::person`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

/// A session as first seen.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub connection: String,
    pub protocol: String,
    pub client_addr: String,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A request and its response, with the decisions taken.
    HttpExchange,
    /// A caller that could not be authenticated or authorised.
    AuthRefused,
    /// A request refused before any policy ran (e.g. the audit store is down).
    Rejected,
    /// A PostgreSQL session opened: who, which database, the upstream's answer.
    PgConnect,
    /// One PostgreSQL statement (a simple query or an extended-protocol
    /// execution): SQL, parameters, decisions, rows, masked columns, error.
    PgStatement,
    /// How a request held for approval was settled (approved, denied,
    /// timed out, abandoned), with every approver's decision; written by the
    /// replica that held it, in the requester's session.
    Approval,
    /// A part of an upgraded stream (`kubectl exec`/`attach`): its frames
    /// with their channel, direction and time, and how the stream ended
    /// with the last part.
    StreamFrames,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HttpExchange => "http.exchange",
            EventKind::AuthRefused => "auth.refused",
            EventKind::Rejected => "rejected",
            EventKind::PgConnect => "pg.connect",
            EventKind::PgStatement => "pg.statement",
            EventKind::Approval => "approval",
            EventKind::StreamFrames => "stream.frames",
        }
    }
}

/// One event. `detail` is JSON holding the request as the upstream saw it,
/// the response as the caller saw it (masked), and every policy decision.
///
/// The session and the principal are shared: a session's events all carry
/// the same ones, and copying them per event showed in the proxy's profile.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub session: std::sync::Arc<SessionInfo>,
    pub at_ms: i64,
    pub kind: EventKind,
    pub principal: Option<std::sync::Arc<PrincipalRecord>>,
    /// allow, deny, require_approval, error, refused.
    pub verdict: String,
    /// One line for listings: `GET /v1/items -> 200`.
    pub summary: String,
    pub detail: Detail,
}

/// An event's detail: a JSON value, or JSON the adapter already serialized
/// (hot paths serialize their records straight from typed structs).
#[derive(Debug, Clone)]
pub enum Detail {
    Value(serde_json::Value),
    Json(String),
    /// JSON holding references to parts stored once (see [`super::shared`]).
    JsonShared {
        json: String,
        shared: Vec<std::sync::Arc<super::shared::SharedPart>>,
    },
}

impl From<serde_json::Value> for Detail {
    fn from(v: serde_json::Value) -> Self {
        Detail::Value(v)
    }
}

impl Detail {
    /// Serializes a typed record. A record that cannot be serialized (it
    /// never happens with plain structs) is kept as the error text.
    pub fn serialize<T: serde::Serialize>(record: &T) -> Detail {
        match serde_json::to_string(record) {
            Ok(s) => Detail::Json(s),
            Err(e) => Detail::Value(serde_json::json!({ "unserializable": e.to_string() })),
        }
    }

    /// Serializes a typed record that refers to `shared` parts.
    pub fn serialize_shared<T: serde::Serialize>(
        record: &T,
        shared: Vec<std::sync::Arc<super::shared::SharedPart>>,
    ) -> Detail {
        match serde_json::to_string(record) {
            Ok(json) => Detail::JsonShared { json, shared },
            Err(e) => Detail::Value(serde_json::json!({ "unserializable": e.to_string() })),
        }
    }

    /// The detail as stored, and the shared parts it refers to.
    pub fn into_parts(self) -> (String, Vec<std::sync::Arc<super::shared::SharedPart>>) {
        match self {
            Detail::Value(v) => (v.to_string(), vec![]),
            Detail::Json(s) => (s, vec![]),
            Detail::JsonShared { json, shared } => (json, shared),
        }
    }
}

/// What the writer task receives.
#[derive(Debug)]
pub enum AuditRecord {
    Event(Box<AuditEvent>),
    SessionEnd { session_id: String, at_ms: i64 },
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
