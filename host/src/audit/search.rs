//! Searching the audit trail: sessions and events by caller, connection,
//! protocol, time, verdict, kind and free text, a page at a time.
//!
//! Pages are keyset-paginated: a cursor holds the sort key of the last row
//! returned, so a page costs the same wherever it is and rows written
//! meanwhile neither repeat nor shift the next page. Queries are written
//! once for SQLite and PostgreSQL (sqlx `Any`, `$n` parameters, no
//! backend-specific functions); free text is a case-insensitive substring
//! match on an event's summary and stored detail, which hold the statement
//! or request line and what was recorded after masking.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::shared;
use super::store::{AuditStore, StoreError, StoredEvent, StoredSession};

/// The largest page a caller may ask for.
pub const MAX_LIMIT: i64 = 1000;

/// Verdicts events are recorded with: decisions on requests and
/// statements, refusals before any policy ran, and how approvals ended
/// (`approval` events).
pub const VERDICTS: &[&str] = &[
    "allow",
    "deny",
    "approved",
    "require_approval",
    "error",
    "refused",
    "rejected",
    "denied",
    "timed_out",
    "abandoned",
];

/// Which way a listing runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first (exports, a session's own events).
    Asc,
}

/// Filters shared by session and event searches; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// The caller's subject, exactly.
    pub principal: Option<String>,
    pub connection: Option<String>,
    pub protocol: Option<String>,
    /// Inclusive lower bound, epoch milliseconds.
    pub from_ms: Option<i64>,
    /// Exclusive upper bound, epoch milliseconds.
    pub to_ms: Option<i64>,
    /// Any of these verdicts.
    pub verdicts: Vec<String>,
    /// Any of these event kinds (`http.exchange`, `pg.statement`, ...).
    pub kinds: Vec<String>,
    /// A substring of the summary or the recorded detail, any case.
    pub text: Option<String>,
}

impl Filters {
    /// Whether any filter is about the events rather than the session.
    fn on_events(&self) -> bool {
        !self.verdicts.is_empty() || !self.kinds.is_empty() || self.text.is_some()
    }
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub filters: Filters,
    pub limit: i64,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub filters: Filters,
    /// One session's events, in sequence order.
    pub session: Option<String>,
    pub order: Order,
    pub limit: i64,
    pub after: Option<Cursor>,
}

/// An event found by a search, with its session's connection and protocol.
#[derive(Debug, Clone, Serialize)]
pub struct FoundEvent {
    #[serde(flatten)]
    pub event: StoredEvent,
    pub connection: String,
    pub protocol: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `s` for sessions, `e` for events.
    k: char,
    o: Order,
    /// Time of the last row: a session's start, an event's time.
    t: i64,
    /// Id of the last row's session.
    s: String,
    /// Sequence number of the last event (0 for sessions).
    q: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error(
        "cursor is not one this gateway issued: pass back `next_cursor` from the previous page unchanged"
    )]
    Malformed,
    #[error("cursor belongs to a {0} listing; pass it back to the listing that issued it")]
    WrongListing(&'static str),
    #[error("cursor was issued for order={0:?}; keep the same order while paging")]
    WrongOrder(Order),
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode_sessions(text: &str) -> Result<Cursor, CursorError> {
        let c = Self::decode(text)?;
        match c.k {
            's' => Ok(c),
            _ => Err(CursorError::WrongListing("event")),
        }
    }

    pub fn decode_events(text: &str, order: Order) -> Result<Cursor, CursorError> {
        let c = Self::decode(text)?;
        if c.k != 'e' {
            return Err(CursorError::WrongListing("session"));
        }
        if c.o != order {
            return Err(CursorError::WrongOrder(c.o));
        }
        Ok(c)
    }

    fn decode(text: &str) -> Result<Cursor, CursorError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| CursorError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| CursorError::Malformed)
    }
}

/// A statement and its parameters, numbered in the order they are added.
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Sql {
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `b`.
    fn bind(&mut self, b: Bind) -> &mut Self {
        self.binds.push(b);
        self.text.push_str(&format!("${}", self.binds.len()));
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.bind(Bind::Text(s.to_string()))
    }

    fn int(&mut self, i: i64) -> &mut Self {
        self.bind(Bind::Int(i))
    }

    /// ` AND col IN ($a, $b, ...)`.
    fn any_of(&mut self, col: &str, values: &[String]) -> &mut Self {
        self.push(" AND ").push(col).push(" IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self.push(")")
    }

    async fn fetch(self, store: &AuditStore) -> Result<Vec<AnyRow>, StoreError> {
        let mut q = sqlx::query(&self.text);
        for b in self.binds {
            q = match b {
                Bind::Text(s) => q.bind(s),
                Bind::Int(i) => q.bind(i),
            };
        }
        Ok(q.fetch_all(store.pool()).await?)
    }
}

fn clamp_limit(limit: i64) -> i64 {
    if limit <= 0 {
        100
    } else {
        limit.min(MAX_LIMIT)
    }
}

/// `%text%` for LIKE, lowercased, with the wildcards in it escaped.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The conditions on one event `e`: verdict, kind, time and text.
fn event_conditions(sql: &mut Sql, f: &Filters) {
    if !f.verdicts.is_empty() {
        sql.any_of("e.verdict", &f.verdicts);
    }
    if !f.kinds.is_empty() {
        sql.any_of("e.kind", &f.kinds);
    }
    if let Some(from) = f.from_ms {
        sql.push(" AND e.at_ms >= ").int(from);
    }
    if let Some(to) = f.to_ms {
        sql.push(" AND e.at_ms < ").int(to);
    }
    if let Some(t) = &f.text {
        let p = like_pattern(t);
        sql.push(" AND (LOWER(e.summary) LIKE ")
            .text(&p)
            .push(" ESCAPE '\\' OR LOWER(e.detail) LIKE ")
            .text(&p)
            .push(" ESCAPE '\\')");
    }
}

const SESSION_COLUMNS: &str = "s.id, s.connection, s.protocol, s.client_addr, s.principal_subject, s.principal_json, s.started_at_ms, s.ended_at_ms, s.event_count";
const EVENT_COLUMNS: &str = "e.session_id, e.seq, e.at_ms, e.kind, e.principal_subject, e.verdict, e.summary, e.detail, e.prev_hash, e.hash, s.connection, s.protocol";

/// Sessions that match, newest first. A session matches the time range
/// when it was open at some point in it; with verdict, kind or text filters
/// it must also hold a matching event inside the range.
pub async fn sessions(
    store: &AuditStore,
    q: &SessionQuery,
) -> Result<Page<StoredSession>, StoreError> {
    let f = &q.filters;
    let limit = clamp_limit(q.limit);
    let mut sql = Sql::default();
    sql.push("SELECT ")
        .push(SESSION_COLUMNS)
        .push(" FROM sessions s WHERE 1 = 1");
    if let Some(p) = &f.principal {
        sql.push(" AND s.principal_subject = ").text(p);
    }
    if let Some(c) = &f.connection {
        sql.push(" AND s.connection = ").text(c);
    }
    if let Some(p) = &f.protocol {
        sql.push(" AND s.protocol = ").text(p);
    }
    if let Some(to) = f.to_ms {
        sql.push(" AND s.started_at_ms < ").int(to);
    }
    if let Some(from) = f.from_ms {
        sql.push(" AND (s.ended_at_ms IS NULL OR s.ended_at_ms >= ")
            .int(from)
            .push(")");
    }
    if f.on_events() {
        sql.push(" AND EXISTS (SELECT 1 FROM events e WHERE e.session_id = s.id");
        event_conditions(&mut sql, f);
        sql.push(")");
    }
    if let Some(c) = &q.after {
        sql.push(" AND (s.started_at_ms < ")
            .int(c.t)
            .push(" OR (s.started_at_ms = ")
            .int(c.t)
            .push(" AND s.id < ")
            .text(&c.s)
            .push("))");
    }
    sql.push(" ORDER BY s.started_at_ms DESC, s.id DESC LIMIT ")
        .int(limit + 1);
    let rows = sql.fetch(store).await?;
    let mut items = rows
        .iter()
        .map(session_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        let last = &items[items.len() - 1];
        Cursor {
            k: 's',
            o: Order::Desc,
            t: last.started_at_ms,
            s: last.id.clone(),
            q: 0,
        }
        .encode()
    });
    Ok(Page { items, next_cursor })
}

/// Events that match, with shared parts put back. Across sessions they run
/// by time (then session and sequence); within one session by sequence.
pub async fn events(store: &AuditStore, q: &EventQuery) -> Result<Page<FoundEvent>, StoreError> {
    let f = &q.filters;
    let limit = clamp_limit(q.limit);
    let (cmp, dir) = match q.order {
        Order::Desc => ("<", "DESC"),
        Order::Asc => (">", "ASC"),
    };
    let mut sql = Sql::default();
    sql.push("SELECT ")
        .push(EVENT_COLUMNS)
        .push(" FROM events e JOIN sessions s ON s.id = e.session_id WHERE 1 = 1");
    if let Some(id) = &q.session {
        sql.push(" AND e.session_id = ").text(id);
    }
    if let Some(p) = &f.principal {
        sql.push(" AND e.principal_subject = ").text(p);
    }
    if let Some(c) = &f.connection {
        sql.push(" AND s.connection = ").text(c);
    }
    if let Some(p) = &f.protocol {
        sql.push(" AND s.protocol = ").text(p);
    }
    event_conditions(&mut sql, f);
    match (&q.after, &q.session) {
        (Some(c), Some(_)) => {
            sql.push(&format!(" AND e.seq {cmp} ")).int(c.q);
        }
        (Some(c), None) => {
            sql.push(&format!(" AND (e.at_ms {cmp} "))
                .int(c.t)
                .push(" OR (e.at_ms = ")
                .int(c.t)
                .push(&format!(" AND (e.session_id {cmp} "))
                .text(&c.s)
                .push(" OR (e.session_id = ")
                .text(&c.s)
                .push(&format!(" AND e.seq {cmp} "))
                .int(c.q)
                .push("))))");
        }
        (None, _) => {}
    }
    match &q.session {
        Some(_) => sql.push(&format!(" ORDER BY e.seq {dir}")),
        None => sql.push(&format!(
            " ORDER BY e.at_ms {dir}, e.session_id {dir}, e.seq {dir}"
        )),
    };
    sql.push(" LIMIT ").int(limit + 1);
    let rows = sql.fetch(store).await?;
    let mut items = rows
        .iter()
        .map(found_event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        let last = &items[items.len() - 1].event;
        Cursor {
            k: 'e',
            o: q.order,
            t: last.at_ms,
            s: last.session_id.clone(),
            q: last.seq,
        }
        .encode()
    });
    resolve_shared(store, &mut items).await?;
    Ok(Page { items, next_cursor })
}

/// Puts shared parts back in place of their references.
async fn resolve_shared(store: &AuditStore, items: &mut [FoundEvent]) -> Result<(), StoreError> {
    let mut digests = Vec::new();
    for e in items
        .iter()
        .filter(|e| shared::mentions_references(&e.event.detail_text))
    {
        shared::references(&e.event.detail, &mut digests);
    }
    if digests.is_empty() {
        return Ok(());
    }
    digests.sort();
    digests.dedup();
    let mut parts: HashMap<String, serde_json::Value> = HashMap::new();
    for chunk in digests.chunks(100) {
        let mut sql = Sql::default();
        sql.push("SELECT digest, body FROM shared_parts WHERE 1 = 1")
            .any_of("digest", chunk);
        for r in sql.fetch(store).await? {
            let digest: String = r.try_get("digest")?;
            let body: String = r.try_get("body")?;
            if let Ok(v) = serde_json::from_str(&body) {
                parts.insert(digest, v);
            }
        }
    }
    for e in items.iter_mut() {
        if shared::mentions_references(&e.event.detail_text) {
            shared::resolve(&mut e.event.detail, &parts);
        }
    }
    Ok(())
}

fn session_from_row(r: &AnyRow) -> Result<StoredSession, StoreError> {
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

fn found_event_from_row(r: &AnyRow) -> Result<FoundEvent, StoreError> {
    let detail_text: String = r.try_get("detail")?;
    Ok(FoundEvent {
        event: StoredEvent {
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
        },
        connection: r.try_get("connection")?,
        protocol: r.try_get("protocol")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Users"), "%users%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn cursors_round_trip_and_are_checked() {
        let c = Cursor {
            k: 'e',
            o: Order::Asc,
            t: 17,
            s: "0193-abc".into(),
            q: 4,
        };
        let text = c.encode();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(Cursor::decode_events(&text, Order::Asc), Ok(c));
        assert_eq!(
            Cursor::decode_events(&text, Order::Desc),
            Err(CursorError::WrongOrder(Order::Asc))
        );
        assert_eq!(
            Cursor::decode_sessions(&text),
            Err(CursorError::WrongListing("event"))
        );
        assert_eq!(
            Cursor::decode_sessions("not a cursor!"),
            Err(CursorError::Malformed)
        );
    }
}
