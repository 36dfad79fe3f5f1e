//! The schema, identical on SQLite and PostgreSQL, applied in order at start.
//! A migration is never edited once released; add a new one instead.

pub struct Migration {
    pub version: i64,
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[V1, V2, V3, V4];

const V1: Migration = Migration {
    version: 1,
    statements: &[
        "CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY,
            connection TEXT NOT NULL,
            protocol TEXT NOT NULL,
            client_addr TEXT NOT NULL,
            principal_subject TEXT,
            principal_json TEXT,
            started_at_ms BIGINT NOT NULL,
            ended_at_ms BIGINT,
            event_count BIGINT NOT NULL DEFAULT 0
        )",
        "CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at_ms)",
        "CREATE INDEX IF NOT EXISTS sessions_principal ON sessions (principal_subject)",
        "CREATE TABLE IF NOT EXISTS events (
            session_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at_ms BIGINT NOT NULL,
            kind TEXT NOT NULL,
            principal_subject TEXT NOT NULL,
            verdict TEXT NOT NULL,
            summary TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (session_id, seq)
        )",
        "CREATE INDEX IF NOT EXISTS events_at ON events (at_ms)",
        "CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            owner TEXT NOT NULL,
            kind TEXT NOT NULL,
            groups_json TEXT NOT NULL,
            connections_json TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            expires_at_ms BIGINT,
            revoked_at_ms BIGINT
        )",
    ],
};

/// The SCRAM-SHA-256 verifier of each key, in PostgreSQL's format, for
/// PostgreSQL clients that log in with SCRAM. Keys made earlier have none.
/// `ADD COLUMN` without `IF NOT EXISTS`, which SQLite lacks.
const V2: Migration = Migration {
    version: 2,
    statements: &["ALTER TABLE api_keys ADD COLUMN scram_verifier TEXT"],
};

/// Parts many events repeat (reused policy decisions), stored once and
/// referred to from event details by digest (`audit/shared.rs`).
const V3: Migration = Migration {
    version: 3,
    statements: &["CREATE TABLE IF NOT EXISTS shared_parts (
            digest TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL
        )"],
};

/// Requests held for a person, shared by every replica on the store
/// (`approval/store.rs`): the approval, each approver's decision (one per
/// person), the grants approvals leave behind, and the replicas that hold
/// waiting requests (their heartbeat decides when a wait is orphaned).
const V4: Migration = Migration {
    version: 4,
    statements: &[
        "CREATE TABLE IF NOT EXISTS approvals (
            id TEXT PRIMARY KEY,
            connection TEXT NOT NULL,
            protocol TEXT NOT NULL,
            session_id TEXT NOT NULL,
            request_id TEXT NOT NULL,
            requester_subject TEXT NOT NULL,
            requester_json TEXT NOT NULL,
            request_json TEXT NOT NULL,
            policy TEXT NOT NULL,
            reason TEXT NOT NULL,
            approver_groups_json TEXT NOT NULL,
            min_approvals BIGINT NOT NULL,
            timeout_secs BIGINT NOT NULL,
            scope TEXT NOT NULL,
            grant_key TEXT,
            grant_secs BIGINT,
            created_at_ms BIGINT NOT NULL,
            expires_at_ms BIGINT NOT NULL,
            status TEXT NOT NULL,
            decided_at_ms BIGINT,
            status_reason TEXT,
            owner TEXT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created_at_ms)",
        "CREATE INDEX IF NOT EXISTS approvals_owner ON approvals (owner, status)",
        "CREATE TABLE IF NOT EXISTS approval_decisions (
            approval_id TEXT NOT NULL,
            approver TEXT NOT NULL,
            approver_json TEXT NOT NULL,
            decision TEXT NOT NULL,
            reason TEXT,
            at_ms BIGINT NOT NULL,
            PRIMARY KEY (approval_id, approver)
        )",
        "CREATE TABLE IF NOT EXISTS approval_grants (
            approval_id TEXT PRIMARY KEY,
            connection TEXT NOT NULL,
            principal TEXT NOT NULL,
            policy TEXT NOT NULL,
            grant_key TEXT NOT NULL,
            approvers_json TEXT NOT NULL,
            created_at_ms BIGINT NOT NULL,
            expires_at_ms BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS approval_grants_match ON approval_grants (connection, principal, policy, grant_key)",
        "CREATE TABLE IF NOT EXISTS gatehouse_replicas (
            id TEXT PRIMARY KEY,
            started_at_ms BIGINT NOT NULL,
            heartbeat_at_ms BIGINT NOT NULL,
            stopped_at_ms BIGINT
        )",
    ],
};
