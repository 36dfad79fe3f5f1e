//! Misbehaving policies are contained: the request gets the configured
//! failure result, and other connections keep being served.

use std::time::{Duration, Instant};

use gatehouse_tests::{GatehouseBuilder, Upstream};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn each_hostile_policy_is_contained_and_others_keep_serving() {
    let upstream = Upstream::start().await;
    let u = upstream.url();
    let gh = GatehouseBuilder::new()
        .policy("loop", "infinite-loop", None)
        .policy("loop-open", "infinite-loop", None)
        .policy("bomb", "memory-bomb", None)
        .policy("trap", "trap", None)
        .policy("huge", "huge-output", None)
        .policy("allow-all", "allow-all", None)
        .config("[policies.overrides.loop-open]\non_failure = \"open\"\ntimeout_ms = 20\n[policies.overrides.bomb]\nmemory_mb = 16\n[policies.overrides.huge]\ntimeout_ms = 3000\n")
        .http_connection("loop", &u, &["loop"], "")
        .http_connection("loop-open", &u, &["loop-open"], "")
        .http_connection("bomb", &u, &["bomb"], "")
        .http_connection("trap", &u, &["trap"], "")
        .http_connection("huge", &u, &["huge"], "")
        .http_connection("good", &u, &["allow-all"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let client = gatehouse_tests::http_client();

    let cases = [
        ("loop", "policy loop failed: timed out after 50ms"),
        (
            "bomb",
            "policy bomb failed: exceeded its memory limit of 16 MiB",
        ),
        ("trap", "policy trap failed: trapped: "),
        ("huge", "policy huge failed: returned an invalid decision: "),
    ];
    // Hammer the hostile connections while the good one is used.
    let mut hostile = Vec::new();
    for (conn, _) in cases {
        for _ in 0..4 {
            let (c, url, key) = (client.clone(), gh.url(conn, "/echo"), key.clone());
            hostile.push(tokio::spawn(async move {
                c.get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap()
            }));
        }
    }
    for _ in 0..20 {
        let started = Instant::now();
        let resp = client
            .get(gh.url("good", "/echo"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    for h in hostile {
        h.await.unwrap();
    }
    for (conn, reason) in cases {
        let started = Instant::now();
        let resp = client
            .get(gh.url(conn, "/echo"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{conn}");
        let body: Value = resp.json().await.unwrap();
        let got = body["error"]["reason"].as_str().unwrap();
        assert!(got.starts_with(reason), "{conn}: {got}");
        assert!(got.len() < 2048, "{conn}: the reason must stay short");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{conn} took {:?}",
            started.elapsed()
        );
    }

    // Fail-open is honoured when configured.
    let resp = client
        .get(gh.url("loop-open", "/echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The failures are visible in metrics, and the failed call is audited.
    let metrics = client
        .get(gh.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for kind in ["timeout", "memory", "trap", "bad_output"] {
        assert!(
            metrics.contains(&format!("kind=\"{kind}\"")),
            "no {kind} failure metric:\n{metrics}"
        );
    }
    gh.wait_for_events(41);
    let db = gh.audit_db();
    let failures: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE detail LIKE '%\"failure\":%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(failures >= 21, "{failures}");
    assert!(gh.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_sees_no_environment_filesystem_or_network_and_a_frozen_clock() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy("probe", "sandbox-probe", None)
        .config("[policies.overrides.probe]\ntimeout_ms = 2000\n")
        .http_connection("probe", &upstream.url(), &["probe"], "")
        .env("GATEHOUSE_SECRET_THAT_MUST_NOT_LEAK", "x")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let client = gatehouse_tests::http_client();
    let resp = client
        .get(gh.url("probe", "/echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["reason"],
        "env=0 args=0 fs_root=denied fs_file=denied net=denied wall_moved=false mono_moved=false wall_matches_host=true"
    );
}
