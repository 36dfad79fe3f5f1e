//! The store behind the audit trail and the API keys: one schema, two
//! backends, reached through sqlx's `Any` driver so queries are written once.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

use super::chain::{self, Chained};
use super::schema::MIGRATIONS;
use super::shared::{self, SharedPart};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit store {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("audit store migration {version}: {source}")]
    Migrate { version: i64, source: sqlx::Error },
    #[error("audit store: {0}")]
    Query(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct AuditStore {
    pool: AnyPool,
    /// Where the audit writer's batches go. On SQLite one connection of its
    /// own: each SQLite connection caches pages, and a write through one
    /// makes every other's cache stale, so batches rotating over the shared
    /// pool read back the pages they had just written. On PostgreSQL the
    /// shared pool.
    batches: AnyPool,
    /// SQLite, where multi-row inserts use anonymous `?` parameters.
    sqlite: bool,
}

/// An event ready to insert, with its place in the chain.
pub struct ChainedEvent {
    pub session_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub principal_subject: String,
    /// The full principal, kept on the session the first time one is known.
    pub principal_json: Option<String>,
    pub verdict: String,
    pub summary: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A session row for new sessions in a batch.
pub struct NewSession {
    pub id: String,
    pub connection: String,
    pub protocol: String,
    pub client_addr: String,
    pub principal_subject: Option<String>,
    pub principal_json: Option<String>,
    pub started_at_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredSession {
    pub id: String,
    pub connection: String,
    pub protocol: String,
    pub client_addr: String,
    pub principal_subject: Option<String>,
    pub principal: Option<serde_json::Value>,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub event_count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub session_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub kind: String,
    pub principal_subject: String,
    pub verdict: String,
    pub summary: String,
    pub detail: serde_json::Value,
    #[serde(skip)]
    pub detail_text: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Filters for session listings; all optional.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub principal: Option<String>,
    pub connection: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: i64,
}

/// The result of checking one session's chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ChainReport {
    pub session_id: String,
    pub events: i64,
    /// The first event whose stored hash does not match, if any.
    pub broken_at: Option<i64>,
    pub problem: Option<String>,
}

impl AuditStore {
    /// Connects and applies migrations. SQLite files are created when missing
    /// and run in WAL mode.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let sqlite = url.starts_with("sqlite:");
        let pool = open_pool(url, if sqlite { 4 } else { 8 }).await?;
        let batches = pool.clone();
        let mut store = Self {
            pool,
            batches,
            sqlite,
        };
        store.migrate().await?;
        if sqlite {
            store.batches = open_pool(url, 1).await?;
        }
        Ok(store)
    }

    /// A small pool of its own for work that must not queue behind audit
    /// writes and searches (the approvals' heartbeat and decisions), on
    /// PostgreSQL; SQLite serves one process and shares its pool.
    pub async fn dedicated_pool(&self, url: &str, max: u32) -> Result<AnyPool, StoreError> {
        if self.sqlite {
            return Ok(self.pool.clone());
        }
        open_pool(url, max).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let lock_err = |source| StoreError::Migrate { version: 0, source };
        let mut conn = self.pool.acquire().await?;
        if !self.sqlite {
            // Replicas starting together on a fresh PostgreSQL store take
            // turns; whoever waited finds the migrations applied. (SQLite
            // serves one process.)
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await
                .map_err(lock_err)?;
        }
        let result = migrate_on(&mut conn).await;
        if !self.sqlite {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // A connection that may still hold the lock must not be reused.
                conn.close_on_drop();
            }
        }
        result
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Writes one batch in one transaction: new sessions, events, ended sessions.
    pub async fn write_batch(
        &self,
        shared: &[std::sync::Arc<SharedPart>],
        sessions: &[NewSession],
        events: &[ChainedEvent],
        ended: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let mut tx = self.batches.begin().await?;
        // Parts first: an event is never stored before what it refers to.
        for p in shared {
            sqlx::query(
                "INSERT INTO shared_parts (digest, body, created_at_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&p.digest)
            .bind(p.body.get())
            .bind(super::record::now_ms())
            .execute(&mut *tx)
            .await?;
        }
        for s in sessions {
            sqlx::query(
                "INSERT INTO sessions (id, connection, protocol, client_addr, principal_subject, principal_json, started_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&s.id)
            .bind(&s.connection)
            .bind(&s.protocol)
            .bind(&s.client_addr)
            .bind(&s.principal_subject)
            .bind(&s.principal_json)
            .bind(s.started_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        // Several events per statement: one round trip to the database
        // (and, on SQLite, to its worker thread) per chunk, not per event.
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let sql = insert_events_sql(chunk.len(), self.sqlite);
            let mut q = sqlx::query(&sql);
            // Bound as `&str`, which the driver borrows; a `&String` is copied.
            for e in chunk {
                q = q
                    .bind(e.session_id.as_str())
                    .bind(e.seq)
                    .bind(e.at_ms)
                    .bind(e.kind.as_str())
                    .bind(e.principal_subject.as_str())
                    .bind(e.verdict.as_str())
                    .bind(e.summary.as_str())
                    .bind(e.detail.as_str())
                    .bind(e.prev_hash.as_str())
                    .bind(e.hash.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        // One counter update per session in the batch.
        for t in session_tallies(events) {
            sqlx::query(
                "UPDATE sessions SET event_count = event_count + $2,
                   principal_subject = COALESCE(principal_subject, NULLIF($3, '')),
                   principal_json = COALESCE(principal_json, $4) WHERE id = $1",
            )
            .bind(t.session_id)
            .bind(t.events)
            .bind(t.principal_subject)
            .bind(t.principal_json)
            .execute(&mut *tx)
            .await?;
        }
        for (id, at) in ended {
            sqlx::query("UPDATE sessions SET ended_at_ms = $2 WHERE id = $1")
                .bind(id)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn sessions(&self, f: &SessionFilter) -> Result<Vec<StoredSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, connection, protocol, client_addr, principal_subject, principal_json, started_at_ms, ended_at_ms, event_count
             FROM sessions
             WHERE ($1 = '' OR principal_subject = $1) AND ($2 = '' OR connection = $2) AND started_at_ms >= $3
             ORDER BY started_at_ms DESC, id DESC LIMIT $4",
        )
        .bind(f.principal.clone().unwrap_or_default())
        .bind(f.connection.clone().unwrap_or_default())
        .bind(f.since_ms.unwrap_or(0))
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    pub async fn session(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id, connection, protocol, client_addr, principal_subject, principal_json, started_at_ms, ended_at_ms, event_count
             FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    pub async fn events(&self, session_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, seq, at_ms, kind, principal_subject, verdict, summary, detail, prev_hash, hash
             FROM events WHERE session_id = $1 ORDER BY seq",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|r| {
                let detail_text: String = r.try_get("detail")?;
                Ok(StoredEvent {
                    session_id: r.try_get("session_id")?,
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    kind: r.try_get("kind")?,
                    principal_subject: r.try_get("principal_subject")?,
                    verdict: r.try_get("verdict")?,
                    summary: r.try_get("summary")?,
                    detail: serde_json::from_str(&detail_text)
                        .unwrap_or(serde_json::Value::String(detail_text.clone())),
                    detail_text,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Put shared parts back; `detail_text` keeps the stored form the
        // chain hash covers.
        let mut digests = Vec::new();
        for e in events
            .iter()
            .filter(|e| shared::mentions_references(&e.detail_text))
        {
            shared::references(&e.detail, &mut digests);
        }
        if !digests.is_empty() {
            let parts: HashMap<String, serde_json::Value> = self
                .shared_parts(digests)
                .await?
                .into_iter()
                .filter_map(|(d, body)| Some((d, serde_json::from_str(&body).ok()?)))
                .collect();
            for e in &mut events {
                if shared::mentions_references(&e.detail_text) {
                    shared::resolve(&mut e.detail, &parts);
                }
            }
        }
        Ok(events)
    }

    /// The stored bodies of shared parts, by digest (missing ones left out).
    async fn shared_parts(
        &self,
        mut digests: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        digests.sort();
        digests.dedup();
        let mut out = HashMap::new();
        for d in digests {
            let body: Option<String> =
                sqlx::query_scalar("SELECT body FROM shared_parts WHERE digest = $1")
                    .bind(&d)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(b) = body {
                out.insert(d, b);
            }
        }
        Ok(out)
    }

    /// Recomputes a session's chain from its stored events.
    pub async fn verify_session(&self, session_id: &str) -> Result<ChainReport, StoreError> {
        let events = self.events(session_id).await?;
        let mut prev = chain::GENESIS.to_string();
        let mut checked = HashMap::new();
        let mut report = ChainReport {
            session_id: session_id.to_string(),
            events: events.len() as i64,
            broken_at: None,
            problem: None,
        };
        for (i, e) in events.iter().enumerate() {
            let expected_seq = i as i64 + 1;
            let problem = if e.seq != expected_seq {
                Some(format!("event {expected_seq} is missing (found {})", e.seq))
            } else if e.prev_hash != prev {
                Some(format!(
                    "event {} does not follow event {}",
                    e.seq,
                    e.seq - 1
                ))
            } else {
                let h = chain::hash(
                    &prev,
                    &Chained {
                        session_id: &e.session_id,
                        seq: e.seq,
                        at_ms: e.at_ms,
                        kind: &e.kind,
                        principal: &e.principal_subject,
                        verdict: &e.verdict,
                        summary: &e.summary,
                        detail: &e.detail_text,
                    },
                );
                (h != e.hash).then(|| format!("event {} was modified after it was written", e.seq))
            };
            let problem = match problem {
                Some(p) => Some(p),
                None => self.check_shared_parts(e, &mut checked).await?,
            };
            if let Some(p) = problem {
                report.broken_at = Some(e.seq);
                report.problem = Some(p);
                break;
            }
            prev = e.hash.clone();
        }
        Ok(report)
    }

    /// Whether the parts an event refers to are stored and intact; each
    /// digest is checked once per verification (`checked`: digest -> intact).
    async fn check_shared_parts(
        &self,
        e: &StoredEvent,
        checked: &mut HashMap<String, bool>,
    ) -> Result<Option<String>, StoreError> {
        if !shared::mentions_references(&e.detail_text) {
            return Ok(None);
        }
        let stored: serde_json::Value =
            serde_json::from_str(&e.detail_text).unwrap_or(serde_json::Value::Null);
        let mut digests = Vec::new();
        shared::references(&stored, &mut digests);
        digests.retain(|d| !checked.get(d).copied().unwrap_or(false));
        if digests.is_empty() {
            return Ok(None);
        }
        let parts = self.shared_parts(digests.clone()).await?;
        for d in digests {
            match parts.get(&d) {
                None => {
                    return Ok(Some(format!(
                        "event {} refers to shared part {d}, which is missing",
                        e.seq
                    )));
                }
                Some(body) if shared::digest_of(body) != d => {
                    return Ok(Some(format!(
                        "shared part {d} (used by event {}) was modified after it was written",
                        e.seq
                    )));
                }
                Some(_) => {
                    checked.insert(d, true);
                }
            }
        }
        Ok(None)
    }

    /// Every session id, oldest first (for export and verification).
    pub async fn session_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM sessions ORDER BY started_at_ms, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

fn session_from_row(r: &sqlx::any::AnyRow) -> Result<StoredSession, StoreError> {
    let principal_json: Option<String> = r.try_get("principal_json")?;
    Ok(StoredSession {
        id: r.try_get("id")?,
        connection: r.try_get("connection")?,
        protocol: r.try_get("protocol")?,
        client_addr: r.try_get("client_addr")?,
        principal_subject: r.try_get("principal_subject")?,
        principal: principal_json.and_then(|j| serde_json::from_str(&j).ok()),
        started_at_ms: r.try_get("started_at_ms")?,
        ended_at_ms: r.try_get("ended_at_ms")?,
        event_count: r.try_get("event_count")?,
    })
}

/// The URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Applies the migrations not yet recorded, each in its own transaction.
async fn migrate_on(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    use sqlx::Connection;
    sqlx::query("CREATE TABLE IF NOT EXISTS gatehouse_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)")
        .execute(&mut *conn)
        .await
        .map_err(|source| StoreError::Migrate { version: 0, source })?;
    for m in MIGRATIONS {
        let err = |source| StoreError::Migrate {
            version: m.version,
            source,
        };
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM gatehouse_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(err)?;
        if done.is_some() {
            continue;
        }
        let mut tx = conn.begin().await?;
        for s in m.statements {
            sqlx::query(s).execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query("INSERT INTO gatehouse_migrations (version, applied_at_ms) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING")
            .bind(m.version)
            .bind(super::record::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await?;
    }
    Ok(())
}

/// The advisory lock PostgreSQL replicas take while migrating ("gatehous").
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573;

/// Rows per multi-row `INSERT INTO events`: 10 parameters each, well under
/// SQLite's and PostgreSQL's limits on bound parameters.
const EVENTS_PER_INSERT: usize = 64;
const EVENT_COLUMNS: usize = 10;

/// SQLite looks a numbered parameter's name up by a linear scan, which
/// makes binding hundreds of `$n` quadratic; its anonymous `?` are bound by
/// position. PostgreSQL only knows `$n`.
///
/// On SQLite the insert is `OR FAIL`: with the default (`ABORT`), a
/// multi-row INSERT inside a transaction keeps a statement journal, a copy
/// of every page it touches, so that a failing row can undo the rows
/// before it; that copying was a sixth of the writer thread's time. `FAIL`
/// keeps no journal and stops at the failing row. Nothing changes for the
/// batch: a failed insert fails `write_batch`, whose transaction is then
/// rolled back whole.
fn insert_events_sql(rows: usize, sqlite: bool) -> String {
    let mut sql = String::from(if sqlite {
        "INSERT OR FAIL INTO"
    } else {
        "INSERT INTO"
    });
    sql.push_str(
        " events (session_id, seq, at_ms, kind, principal_subject, verdict, summary, detail, prev_hash, hash) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..EVENT_COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            if sqlite {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(r * EVENT_COLUMNS + c + 1).to_string());
            }
        }
        sql.push(')');
    }
    sql
}

/// What a batch adds to one session's row.
struct SessionTally<'a> {
    session_id: &'a str,
    events: i64,
    /// The first principal seen in the batch, for a session opened without one.
    principal_subject: &'a str,
    principal_json: Option<&'a str>,
}

fn session_tallies(events: &[ChainedEvent]) -> Vec<SessionTally<'_>> {
    let mut tallies: Vec<SessionTally<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for e in events {
        let i = *index.entry(e.session_id.as_str()).or_insert_with(|| {
            tallies.push(SessionTally {
                session_id: &e.session_id,
                events: 0,
                principal_subject: "",
                principal_json: None,
            });
            tallies.len() - 1
        });
        let t = &mut tallies[i];
        t.events += 1;
        if t.principal_subject.is_empty() {
            t.principal_subject = &e.principal_subject;
        }
        if t.principal_json.is_none() {
            t.principal_json = e.principal_json.as_deref();
        }
    }
    tallies
}

/// A pool on `url`; SQLite files are created when missing and run in WAL mode.
async fn open_pool(url: &str, max_connections: u32) -> Result<AnyPool, StoreError> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url_with_mode = if sqlite && !url.contains('?') && !url.contains(":memory:") {
        format!("{url}?mode=rwc")
    } else {
        url.to_string()
    };
    let redacted = redact_url(url);
    let options =
        AnyConnectOptions::from_str(&url_with_mode).map_err(|source| StoreError::Connect {
            url: redacted.clone(),
            source,
        })?;
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // Only a new, empty database takes it (before WAL is
                    // on): events arrive in batches of many rows, and
                    // larger pages mean fewer WAL frames to write.
                    sqlx::query("PRAGMA page_size=16384")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    // A statement that may fail halfway inside a
                    // transaction keeps a statement journal (the pages it
                    // changed, for undoing that one statement), and past
                    // 64 KiB SQLite spills it to a temporary file. The
                    // batch's event inserts need none (`INSERT OR FAIL`,
                    // see `insert_events_sql`); whatever other statements
                    // keep stays in memory.
                    sqlx::query("PRAGMA temp_store=MEMORY")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: redacted,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> ChainedEvent {
        ChainedEvent {
            session_id: "s1".into(),
            seq,
            at_ms: 1_000 + seq,
            kind: "pg.statement".into(),
            principal_subject: "alice".into(),
            principal_json: None,
            verdict: "allow".into(),
            summary: format!("SELECT {seq} -> 1 rows"),
            detail: "{}".into(),
            prev_hash: "p".into(),
            hash: format!("h{seq}"),
        }
    }

    /// A batch lands whole or not at all, also on SQLite's `INSERT OR FAIL`,
    /// which stops at the failing row without undoing the rows before it.
    #[tokio::test]
    async fn a_batch_with_a_failing_event_leaves_nothing_behind() {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-batch-{}.db",
            uuid::Uuid::now_v7().simple()
        ));
        let store = AuditStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let sessions = [NewSession {
            id: "s1".into(),
            connection: "db".into(),
            protocol: "postgres".into(),
            client_addr: "127.0.0.1:1".into(),
            principal_subject: Some("alice".into()),
            principal_json: None,
            started_at_ms: 1_000,
        }];
        // The third event takes the first one's place in the chain.
        let clashing = [event(1), event(2), event(1)];
        let err = store
            .write_batch(&[], &sessions, &clashing, &[])
            .await
            .expect_err("a duplicate (session, seq) must fail the batch");
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let count = |sql: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(store.pool())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM events").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM sessions").await, 0);

        // The store is usable after the failure, and the same batch without
        // the clash lands whole.
        store
            .write_batch(&[], &sessions, &[event(1), event(2)], &[])
            .await
            .unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM events").await, 2);
        assert_eq!(
            count("SELECT event_count FROM sessions WHERE id = 's1'").await,
            2
        );
        let _ = std::fs::remove_file(&path);
    }
}
