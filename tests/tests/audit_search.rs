//! The audit search (`audit/search.rs`) on both stores: the same sessions
//! and events written to SQLite and to a fresh PostgreSQL database, then
//! every filter, the time-range rules, free text with LIKE wildcards in it,
//! shared parts put back, and keyset pages that neither skip nor repeat.

use std::sync::Arc;

use gatehouse::audit::AuditStore;
use gatehouse::audit::search::{self, Cursor, EventQuery, Filters, Order, SessionQuery};
use gatehouse::audit::shared::SharedPart;
use gatehouse::audit::store::{ChainedEvent, NewSession};
use gatehouse_tests::postgres::TempDatabase;
use serde_json::json;

const T: i64 = 1_800_000_000_000;

fn session(id: &str, connection: &str, protocol: &str, who: &str, at: i64) -> NewSession {
    NewSession {
        id: id.into(),
        connection: connection.into(),
        protocol: protocol.into(),
        client_addr: "127.0.0.1:40000".into(),
        principal_subject: Some(who.into()),
        principal_json: Some(
            json!({"subject": who, "issuer": "gatehouse", "kind": "agent", "groups": ["dev"]})
                .to_string(),
        ),
        started_at_ms: at,
    }
}

#[allow(clippy::too_many_arguments)]
fn event(
    session: &str,
    seq: i64,
    at: i64,
    kind: &str,
    who: &str,
    verdict: &str,
    summary: &str,
    detail: serde_json::Value,
) -> ChainedEvent {
    ChainedEvent {
        session_id: session.into(),
        seq,
        at_ms: at,
        kind: kind.into(),
        principal_subject: who.into(),
        principal_json: None,
        verdict: verdict.into(),
        summary: summary.into(),
        detail: detail.to_string(),
        prev_hash: String::new(),
        hash: format!("{session}-{seq}"),
    }
}

/// s1 (api, alice-bot) < s2 (shop, bob, still open) < s3 (api, alice-bot)
/// < s4 = s5 (same start: the id breaks the tie).
async fn fill(store: &AuditStore) {
    let decision = SharedPart::new(
        serde_json::value::to_raw_value(
            &json!({"verdict": "deny", "policy": "sql-guard", "reason": "no drops"}),
        )
        .unwrap(),
    );
    let reference = json!({"$shared": decision.digest});
    let sessions = [
        session("s1", "api", "http", "alice-bot", T),
        session("s2", "shop", "postgres", "bob", T + 10_000),
        session("s3", "api", "http", "alice-bot", T + 20_000),
        session("s4", "api", "http", "carol", T + 30_000),
        session("s5", "api", "http", "carol", T + 30_000),
    ];
    let events = [
        event(
            "s1",
            1,
            T + 100,
            "http.exchange",
            "alice-bot",
            "allow",
            "GET /items -> 200",
            json!({"request": {"method": "GET", "target": "/items"}}),
        ),
        event(
            "s1",
            2,
            T + 200,
            "http.exchange",
            "alice-bot",
            "deny",
            "DELETE /items/7 -> 403",
            json!({"request": {"method": "DELETE", "target": "/items/7"}}),
        ),
        event(
            "s2",
            1,
            T + 10_050,
            "pg.connect",
            "bob",
            "allow",
            "connect shop",
            json!({"database": "shop"}),
        ),
        event(
            "s2",
            2,
            T + 10_100,
            "pg.statement",
            "bob",
            "allow",
            "SELECT email FROM customers -> 2 rows",
            json!({"sql": "SELECT email FROM customers", "rows": 2}),
        ),
        event(
            "s2",
            3,
            T + 10_200,
            "pg.statement",
            "bob",
            "error",
            "DROP TABLE orders -> error 42P01",
            json!({"sql": "DROP TABLE orders", "decisions": {"query": reference}}),
        ),
        event(
            "s3",
            1,
            T + 20_500,
            "http.exchange",
            "alice-bot",
            "allow",
            "GET /search?q=100%_off -> 200",
            json!({"request": {"method": "GET", "target": "/search?q=100%_off"}}),
        ),
        event(
            "s4",
            1,
            T + 30_100,
            "http.exchange",
            "carol",
            "allow",
            "GET / -> 200",
            json!({}),
        ),
        event(
            "s5",
            1,
            T + 30_100,
            "http.exchange",
            "carol",
            "allow",
            "GET / -> 200",
            json!({}),
        ),
    ];
    let ended = [
        ("s1".to_string(), T + 5_000),
        ("s3".to_string(), T + 21_000),
        ("s4".to_string(), T + 31_000),
        ("s5".to_string(), T + 31_000),
    ];
    store
        .write_batch(&[Arc::new(decision)], &sessions, &events, &ended)
        .await
        .unwrap();
}

async fn ids(store: &AuditStore, filters: Filters) -> Vec<String> {
    let q = SessionQuery {
        filters,
        limit: 100,
        after: None,
    };
    let page = search::sessions(store, &q).await.unwrap();
    assert!(page.next_cursor.is_none());
    page.items.into_iter().map(|s| s.id).collect()
}

async fn check(store: &AuditStore) {
    fill(store).await;
    let f = Filters::default;
    assert_eq!(ids(store, f()).await, ["s5", "s4", "s3", "s2", "s1"]);
    let by = |principal: &str| Filters {
        principal: Some(principal.into()),
        ..f()
    };
    assert_eq!(ids(store, by("alice-bot")).await, ["s3", "s1"]);
    assert_eq!(
        ids(
            store,
            Filters {
                connection: Some("shop".into()),
                ..f()
            }
        )
        .await,
        ["s2"]
    );
    assert_eq!(
        ids(
            store,
            Filters {
                protocol: Some("postgres".into()),
                ..f()
            }
        )
        .await,
        ["s2"]
    );
    let verdicts = |v: &[&str]| Filters {
        verdicts: v.iter().map(|s| s.to_string()).collect(),
        ..f()
    };
    assert_eq!(ids(store, verdicts(&["deny"])).await, ["s1"]);
    assert_eq!(ids(store, verdicts(&["deny", "error"])).await, ["s2", "s1"]);
    assert_eq!(
        ids(
            store,
            Filters {
                kinds: vec!["pg.statement".into()],
                ..f()
            }
        )
        .await,
        ["s2"]
    );

    // Free text: any case, in the summary or the detail; LIKE wildcards
    // in the text are literal.
    let text = |t: &str| Filters {
        text: Some(t.into()),
        ..f()
    };
    assert_eq!(ids(store, text("drop TABLE")).await, ["s2"]);
    assert_eq!(ids(store, text("customers")).await, ["s2"]);
    assert_eq!(ids(store, text("100%_off")).await, ["s3"]);
    assert!(ids(store, text("100%x")).await.is_empty());
    assert!(ids(store, text("1_0")).await.is_empty());

    // A session matches a range it was open in; an open one matches any later range.
    let range = |from: i64, to: i64| Filters {
        from_ms: Some(from),
        to_ms: Some(to),
        ..f()
    };
    assert_eq!(ids(store, range(T + 6_000, T + 15_000)).await, ["s2"]);
    assert_eq!(ids(store, range(T + 4_000, T + 15_000)).await, ["s2", "s1"]);
    assert_eq!(
        ids(
            store,
            Filters {
                from_ms: Some(T + 100_000),
                ..f()
            }
        )
        .await,
        ["s2"]
    );
    // With event filters, the matching event must be in the range too.
    let allowed_in = |from: i64, to: i64| Filters {
        verdicts: vec!["allow".into()],
        ..range(from, to)
    };
    assert_eq!(ids(store, allowed_in(T + 150, T + 15_000)).await, ["s2"]);
    assert_eq!(ids(store, allowed_in(T, T + 15_000)).await, ["s2", "s1"]);

    // Pages of two: every session once, in order, then no cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = SessionQuery {
            filters: f(),
            limit: 2,
            after,
        };
        let page = search::sessions(store, &q).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode_sessions(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, ["s5", "s4", "s3", "s2", "s1"]);

    // Events: newest first across sessions, with their connection.
    let events = |q: EventQuery| async move { search::events(store, &q).await.unwrap() };
    let all = events(EventQuery::default()).await;
    let order: Vec<(String, i64)> = all
        .items
        .iter()
        .map(|e| (e.event.session_id.clone(), e.event.seq))
        .collect();
    assert_eq!(
        order,
        [
            ("s5", 1),
            ("s4", 1),
            ("s3", 1),
            ("s2", 3),
            ("s2", 2),
            ("s2", 1),
            ("s1", 2),
            ("s1", 1)
        ]
        .map(|(s, q)| (s.to_string(), q))
    );
    // Shared parts are put back.
    let drop = &all.items[3];
    assert_eq!(drop.connection, "shop");
    assert_eq!(drop.protocol, "postgres");
    assert_eq!(
        drop.event.detail["decisions"]["query"]["reason"],
        "no drops"
    );

    let found = events(EventQuery {
        filters: Filters {
            principal: Some("bob".into()),
            verdicts: vec!["error".into()],
            ..f()
        },
        ..EventQuery::default()
    })
    .await;
    assert_eq!(found.items.len(), 1);
    assert_eq!(
        found.items[0].event.summary,
        "DROP TABLE orders -> error 42P01"
    );

    // One session in sequence order, two at a time.
    let first = events(EventQuery {
        session: Some("s2".into()),
        order: Order::Asc,
        limit: 2,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        first.items.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    let cursor = Cursor::decode_events(first.next_cursor.as_deref().unwrap(), Order::Asc).unwrap();
    let rest = events(EventQuery {
        session: Some("s2".into()),
        order: Order::Asc,
        limit: 2,
        after: Some(cursor),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        rest.items.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
        [3]
    );
    assert!(rest.next_cursor.is_none());

    // Oldest first across sessions, a page of three at a time, ties included.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = events(EventQuery {
            order: Order::Asc,
            limit: 3,
            after,
            ..EventQuery::default()
        })
        .await;
        seen.extend(page.items.iter().map(|e| e.event.hash.clone()));
        match page.next_cursor {
            Some(c) => after = Some(Cursor::decode_events(&c, Order::Asc).unwrap()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "s1-1", "s1-2", "s2-1", "s2-2", "s2-3", "s3-1", "s4-1", "s5-1"
        ]
    );

    // Events in a time range, by kind.
    let ranged = events(EventQuery {
        filters: Filters {
            kinds: vec!["http.exchange".into()],
            ..range(T + 150, T + 30_100)
        },
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        ranged
            .items
            .iter()
            .map(|e| e.event.hash.as_str())
            .collect::<Vec<_>>(),
        ["s3-1", "s1-2"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn search_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    check(&AuditStore::connect(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_on_postgresql() {
    let db = TempDatabase::create("gatehouse_search");
    check(&AuditStore::connect(&db.url()).await.unwrap()).await;
}
