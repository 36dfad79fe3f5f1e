//! The audit trail through the admin API, for administrators and auditors:
//!
//! - `GET /v1/sessions?FILTERS&limit&cursor`: sessions, newest first
//! - `GET /v1/sessions/ID?limit&cursor`: one session and its events in order
//! - `GET /v1/sessions/ID/replay`: the transcript `gatehouse audit replay`
//!   prints, as JSON steps, or as text with `Accept: text/plain`
//! - `GET /v1/sessions/ID/export`: the session and its events as JSON lines
//! - `GET /v1/events?FILTERS&session&order&limit&cursor`: events across sessions
//! - `GET /v1/events/export?FILTERS&session&order`: every match as JSON lines
//!
//! FILTERS are `principal`, `connection`, `protocol`, `from`, `to`,
//! `verdict` and `kind` (comma-separated lists) and `q` (free text). Bad
//! filters are a 400 that names the parameter. Exports are streamed a page
//! at a time, never held whole. Every read is logged with the reader.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::{AdminBody, AdminResponse, AdminState, error, json_reply, reply, streamed, whole};
use crate::audit::replay::Transcript;
use crate::audit::search::{self, Cursor, EventQuery, Filters, FoundEvent, Order, SessionQuery};
use crate::audit::store::StoreError;
use crate::audit::timestamp;
use crate::identity::Principal;

const FILTERS: &[&str] = &[
    "principal",
    "connection",
    "protocol",
    "from",
    "to",
    "verdict",
    "kind",
    "q",
];

/// Rows per page read while exporting.
const EXPORT_PAGE: i64 = 500;

const NDJSON: &str = "application/x-ndjson";

pub fn serves(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p == "/v1/sessions"
        || p.starts_with("/v1/sessions/")
        || p == "/v1/events"
        || p.starts_with("/v1/events/")
}

pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    caller: &Principal,
) -> Response<AdminBody> {
    if req.method() != Method::GET {
        return whole(super::method_not_allowed("GET"));
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    tracing::info!(reader = %caller.subject, path = %path, query = %query, "audit trail read");
    let parts: Vec<&str> = path
        .trim_start_matches("/v1/")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let result = match parts.as_slice() {
        ["sessions"] => list_sessions(state, &query).await,
        ["sessions", id] => show_session(state, id, &query).await,
        ["sessions", id, "replay"] => replay(state, id, &query, wants_text(&req)).await,
        ["sessions", id, "export"] => return export_session(state, id, &query).await,
        ["events"] => list_events(state, &query).await,
        ["events", "export"] => return export_events(state, &query).await,
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint: GET /v1/sessions[/ID[/replay|/export]], GET /v1/events[/export]",
        )),
    };
    whole(result.unwrap_or_else(|resp| resp))
}

async fn list_sessions(state: &AdminState, query: &str) -> Result<AdminResponse, AdminResponse> {
    let p = Params::parse(query, &[FILTERS, &["limit", "cursor"]].concat())?;
    let q = SessionQuery {
        filters: p.filters()?,
        limit: p.limit(100)?,
        after: p
            .get("cursor")
            .map(Cursor::decode_sessions)
            .transpose()
            .map_err(|e| BadParam::new("cursor", &e.to_string()))?,
    };
    let page = search::sessions(&state.store, &q)
        .await
        .map_err(store_error)?;
    Ok(json_reply(
        StatusCode::OK,
        json!({"sessions": page.items, "next_cursor": page.next_cursor}),
    ))
}

async fn show_session(
    state: &AdminState,
    id: &str,
    query: &str,
) -> Result<AdminResponse, AdminResponse> {
    let p = Params::parse(query, &["limit", "cursor"])?;
    let session = find_session(state, id).await?;
    let q = EventQuery {
        session: Some(id.to_string()),
        order: Order::Asc,
        limit: p.limit(1000)?,
        after: p.cursor(Order::Asc)?,
        ..EventQuery::default()
    };
    let page = search::events(&state.store, &q)
        .await
        .map_err(store_error)?;
    Ok(json_reply(
        StatusCode::OK,
        json!({"session": session, "events": page.items, "next_cursor": page.next_cursor}),
    ))
}

async fn replay(
    state: &AdminState,
    id: &str,
    query: &str,
    text: bool,
) -> Result<AdminResponse, AdminResponse> {
    Params::parse(query, &[])?;
    let session = find_session(state, id).await?;
    let events = state.store.events(id).await.map_err(store_error)?;
    let transcript = Transcript::new(&session, &events);
    Ok(if text {
        reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            transcript.to_text(),
        )
    } else {
        json_reply(StatusCode::OK, json!(transcript))
    })
}

async fn list_events(state: &AdminState, query: &str) -> Result<AdminResponse, AdminResponse> {
    let p = Params::parse(
        query,
        &[FILTERS, &["session", "order", "limit", "cursor"]].concat(),
    )?;
    let order = p.order(Order::Desc)?;
    let q = EventQuery {
        filters: p.filters()?,
        session: p.get("session").map(str::to_string),
        order,
        limit: p.limit(100)?,
        after: p.cursor(order)?,
    };
    let page = search::events(&state.store, &q)
        .await
        .map_err(store_error)?;
    Ok(json_reply(
        StatusCode::OK,
        json!({"events": page.items, "next_cursor": page.next_cursor}),
    ))
}

async fn export_session(state: &AdminState, id: &str, query: &str) -> Response<AdminBody> {
    if let Err(bad) = Params::parse(query, &[]) {
        return whole(bad.into());
    }
    let session = match find_session(state, id).await {
        Ok(s) => s,
        Err(resp) => return whole(resp),
    };
    let first = json!({"type": "session", "session": session}).to_string() + "\n";
    let q = EventQuery {
        session: Some(id.to_string()),
        order: Order::Asc,
        limit: EXPORT_PAGE,
        ..EventQuery::default()
    };
    stream_events(state, Some(first), q)
}

async fn export_events(state: &AdminState, query: &str) -> Response<AdminBody> {
    match export_query(query) {
        Ok(q) => stream_events(state, None, q),
        Err(bad) => whole(bad.into()),
    }
}

fn export_query(query: &str) -> Result<EventQuery, BadParam> {
    let p = Params::parse(query, &[FILTERS, &["session", "order"]].concat())?;
    Ok(EventQuery {
        filters: p.filters()?,
        session: p.get("session").map(str::to_string),
        order: p.order(Order::Asc)?,
        limit: EXPORT_PAGE,
        after: None,
    })
}

/// Streams `first`, then every event `q` finds, a page at a time, as JSON
/// lines. A store failure midway aborts the response.
fn stream_events(
    state: &AdminState,
    first: Option<String>,
    mut q: EventQuery,
) -> Response<AdminBody> {
    let (resp, tx) = streamed(NDJSON);
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Some(line) = first
            && tx.send(Ok(Bytes::from(line))).await.is_err()
        {
            return;
        }
        loop {
            let page = match search::events(&store, &q).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "export stopped: the audit store failed");
                    let _ = tx.send(Err(Box::new(e))).await;
                    return;
                }
            };
            if !page.items.is_empty() && tx.send(Ok(jsonl(&page.items))).await.is_err() {
                return;
            }
            match page
                .next_cursor
                .as_deref()
                .map(|c| Cursor::decode_events(c, q.order))
            {
                Some(Ok(c)) => q.after = Some(c),
                _ => return,
            }
        }
    });
    resp
}

fn jsonl(events: &[FoundEvent]) -> Bytes {
    let mut out = String::new();
    for e in events {
        out.push_str(&json!({"type": "event", "event": e}).to_string());
        out.push('\n');
    }
    Bytes::from(out)
}

async fn find_session(
    state: &AdminState,
    id: &str,
) -> Result<crate::audit::StoredSession, AdminResponse> {
    match state.store.session(id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no session {id}; GET /v1/sessions lists them"),
        )),
        Err(e) => Err(store_error(e)),
    }
}

/// `text/plain` when the client lists it before `application/json`.
fn wants_text(req: &Request<Incoming>) -> bool {
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept
        .split(',')
        .map(|r| r.split(';').next().unwrap_or("").trim())
        .find(|m| matches!(*m, "text/plain" | "application/json"))
        == Some("text/plain")
}

fn store_error(e: StoreError) -> AdminResponse {
    super::store_unavailable("store", "reading the audit trail", &e)
}

/// A query parameter that is wrong: which, and what is wrong with it.
#[derive(Debug)]
struct BadParam(String);

impl BadParam {
    fn new(param: &str, message: &str) -> BadParam {
        BadParam(format!("{param}: {message}"))
    }
}

impl From<BadParam> for AdminResponse {
    fn from(b: BadParam) -> AdminResponse {
        error(StatusCode::BAD_REQUEST, "bad_request", &b.0)
    }
}

/// A request's query parameters, checked against what the endpoint takes.
struct Params(Vec<(&'static str, String)>);

impl Params {
    fn parse(query: &str, allowed: &[&'static str]) -> Result<Params, BadParam> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let Some(name) = allowed.iter().find(|a| **a == k) else {
                let takes = if allowed.is_empty() {
                    "this endpoint takes no parameters".to_string()
                } else {
                    format!("this endpoint takes {}", allowed.join(", "))
                };
                return Err(BadParam::new(&k, &format!("unknown parameter; {takes}")));
            };
            if out.iter().any(|(n, _)| n == name) {
                return Err(BadParam::new(
                    name,
                    "given twice; give it once (lists are comma-separated)",
                ));
            }
            let v = v.trim();
            if v.len() > 1024 {
                return Err(BadParam::new(name, "longer than 1024 characters"));
            }
            if !v.is_empty() {
                out.push((name, v.to_string()));
            }
        }
        Ok(Params(out))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn filters(&self) -> Result<Filters, BadParam> {
        let now = crate::audit::record::now_ms();
        let time = |name: &str| {
            self.get(name)
                .map(|t| timestamp::parse(t, now))
                .transpose()
                .map_err(|e| BadParam::new(name, &e.to_string()))
        };
        let f = Filters {
            principal: self.get("principal").map(str::to_string),
            connection: self.get("connection").map(str::to_string),
            protocol: self.get("protocol").map(word("protocol")).transpose()?,
            from_ms: time("from")?,
            to_ms: time("to")?,
            verdicts: self.list("verdict", |v| {
                search::VERDICTS.contains(&v).then_some(()).ok_or_else(|| {
                    format!(
                        "unknown verdict {v:?}; verdicts are {}",
                        search::VERDICTS.join(", ")
                    )
                })
            })?,
            kinds: self.list("kind", |k| {
                word("kind")(k).map(|_| ()).map_err(|_| {
                    format!("{k:?} is not an event kind (e.g. http.exchange, pg.statement)")
                })
            })?,
            text: self.get("q").map(str::to_string),
        };
        if let (Some(from), Some(to)) = (f.from_ms, f.to_ms)
            && from >= to
        {
            return Err(BadParam::new(
                "from",
                &format!(
                    "from ({}) must be before to ({})",
                    timestamp::format_ms(from),
                    timestamp::format_ms(to)
                ),
            ));
        }
        Ok(f)
    }

    /// A comma-separated list, each item checked.
    fn list(
        &self,
        name: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Vec<String>, BadParam> {
        let Some(v) = self.get(name) else {
            return Ok(vec![]);
        };
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                check(s)
                    .map(|_| s.to_string())
                    .map_err(|m| BadParam::new(name, &m))
            })
            .collect()
    }

    fn limit(&self, default: i64) -> Result<i64, BadParam> {
        match self.get("limit") {
            None => Ok(default),
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=search::MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    BadParam::new(
                        "limit",
                        &format!(
                            "{l:?} is not a whole number from 1 to {}",
                            search::MAX_LIMIT
                        ),
                    )
                }),
        }
    }

    fn order(&self, default: Order) -> Result<Order, BadParam> {
        match self.get("order") {
            None => Ok(default),
            Some("desc") => Ok(Order::Desc),
            Some("asc") => Ok(Order::Asc),
            Some(o) => Err(BadParam::new(
                "order",
                &format!("{o:?} is neither asc (oldest first) nor desc (newest first)"),
            )),
        }
    }

    fn cursor(&self, order: Order) -> Result<Option<Cursor>, BadParam> {
        self.get("cursor")
            .map(|c| Cursor::decode_events(c, order))
            .transpose()
            .map_err(|e| BadParam::new("cursor", &e.to_string()))
    }
}

/// A lowercase identifier (`postgres`, `pg.statement`).
fn word(name: &'static str) -> impl Fn(&str) -> Result<String, BadParam> {
    move |v: &str| {
        let ok = v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        if ok {
            Ok(v.to_string())
        } else {
            Err(BadParam::new(
                name,
                &format!("{v:?} is not a {name} name (lowercase letters, digits, dots)"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(b: BadParam) -> String {
        b.0
    }

    fn filters(query: &str) -> Result<Filters, String> {
        Params::parse(query, FILTERS)
            .and_then(|p| p.filters())
            .map_err(message)
    }

    #[test]
    fn filters_are_read_and_bad_ones_named() {
        let f = filters("principal=bot%40example.com&verdict=deny,%20error&from=2026-01-01&to=1800000000000&q=DROP+TABLE").unwrap();
        assert_eq!(f.principal.as_deref(), Some("bot@example.com"));
        assert_eq!(f.verdicts, ["deny", "error"]);
        assert_eq!(f.from_ms, Some(1_767_225_600_000));
        assert_eq!(f.to_ms, Some(1_800_000_000_000));
        assert_eq!(f.text.as_deref(), Some("DROP TABLE"));
        assert!(filters("connection=").unwrap().connection.is_none());

        let e = filters("verdict=maybe").unwrap_err();
        assert!(e.starts_with("verdict: unknown verdict \"maybe\""), "{e}");
        let e = filters("from=yesterday").unwrap_err();
        assert!(e.starts_with("from: \"yesterday\" is not a time"), "{e}");
        let e = filters("from=2026-02-01&to=2026-01-01").unwrap_err();
        assert!(e.contains("must be before"), "{e}");
        let e = filters("user=bob").unwrap_err();
        assert!(
            e.starts_with("user: unknown parameter; this endpoint takes principal"),
            "{e}"
        );
        let e = filters("q=a&q=b").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let e = filters("protocol=HTTP").unwrap_err();
        assert!(e.starts_with("protocol:"), "{e}");
    }

    #[test]
    fn limits_and_orders_are_checked() {
        let p = Params::parse("limit=0&order=sideways", &["limit", "order"]).unwrap();
        assert!(message(p.limit(10).unwrap_err()).contains("from 1 to 1000"));
        assert!(message(p.order(Order::Asc).unwrap_err()).contains("neither asc"));
        let p = Params::parse("limit=25", &["limit", "order"]).unwrap();
        assert_eq!(p.limit(10).unwrap(), 25);
        assert_eq!(p.order(Order::Asc).unwrap(), Order::Asc);
    }
}
