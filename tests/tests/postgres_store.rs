//! The audit store on a real PostgreSQL: same schema and chain as SQLite,
//! and what happens while the store cannot be written.

use std::time::{Duration, Instant};

use gatehouse_tests::postgres::TempDatabase;
use gatehouse_tests::{GatehouseBuilder, Upstream};
use serde_json::{Value, json};

fn guard() -> Value {
    json!({"deny": [{"methods": ["DELETE"], "reason": "no deletes"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_works_on_postgresql() {
    let db = TempDatabase::create("gatehouse_audit");
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .database(&db.url())
        .policy("http-guard", "http-guard", Some(guard()))
        .http_connection("api", &upstream.url(), &["http-guard"], "")
        .start();
    let key = gh.create_key("pg-bot", &["dev"]);
    let c = gatehouse_tests::http_client();
    // The body is read to its end, so the exchange is recorded as
    // completed rather than cut short by the client.
    let echoed = c
        .get(gh.url("api", "/echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), 200);
    echoed.bytes().await.unwrap();
    assert_eq!(
        c.delete(gh.url("api", "/x"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let started = Instant::now();
    while db.sql("SELECT COUNT(*) FROM events") != "2" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "events not written to PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.sql("SELECT string_agg(verdict, ',' ORDER BY at_ms) FROM events"),
        "allow,deny"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM api_keys WHERE name = 'pg-bot'"),
        "1"
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM api_keys WHERE secret_hash LIKE 'ghk_%'"),
        "0"
    );

    let out = gh.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let sessions = String::from_utf8_lossy(&gh.cli(&["audit", "sessions"]).stdout).to_string();
    assert!(sessions.contains("pg-bot"), "{sessions}");

    db.sql("UPDATE events SET summary = 'GET /innocent -> 200' WHERE verdict = 'deny'");
    assert!(!gh.cli(&["audit", "verify"]).status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_stops_admission_and_nothing_accepted_is_lost() {
    let db = TempDatabase::create("gatehouse_fail");
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .database(&db.url())
        .policy("allow-all", "allow-all", None)
        .http_connection("api", &upstream.url(), &["allow-all"], "")
        .start();
    let key = gh.create_key("pg-bot", &[]);
    let c = gatehouse_tests::http_client();
    let get = || async {
        c.get(gh.url("api", "/ok"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(get().await.status(), 200);

    // The store breaks: the next records cannot be written.
    db.sql("ALTER TABLE events RENAME TO events_hidden");
    let mut accepted = 1;
    let mut rejected = 0;
    let started = Instant::now();
    loop {
        let resp = get().await;
        match resp.status().as_u16() {
            200 => accepted += 1,
            503 => {
                assert_eq!(resp.headers()["retry-after"], "5");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["code"], "audit_unavailable");
                rejected += 1;
                break;
            }
            s => panic!("unexpected status {s}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway kept admitting requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = c.get(gh.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);

    // The store comes back: held records are written, admission resumes.
    db.sql("ALTER TABLE events_hidden RENAME TO events");
    let started = Instant::now();
    loop {
        let resp = get().await;
        if resp.status() == 200 {
            accepted += 1;
            break;
        }
        rejected += 1;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "admission did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let want = (accepted + rejected).to_string();
    let started = Instant::now();
    while db.sql("SELECT COUNT(*) FROM events") != want {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "records lost: {} of {want}",
            db.sql("SELECT COUNT(*) FROM events")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM events WHERE verdict = 'allow'"),
        accepted.to_string()
    );
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM events WHERE verdict = 'rejected'"),
        rejected.to_string()
    );
    assert!(gh.cli(&["audit", "verify"]).status.success());
    let metrics = c
        .get(gh.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("gatehouse_audit_write_errors_total 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_migrate_a_fresh_store_once() {
    let db = TempDatabase::create("gatehouse_migrate");
    let url = db.url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { gatehouse::audit::AuditStore::connect(&url).await })
        })
        .collect();
    for s in starts {
        if let Err(e) = s.await.unwrap() {
            panic!("a replica failed to start: {e}");
        }
    }
    assert_eq!(
        db.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM gatehouse_migrations"),
        "1,2,3,4"
    );
}
