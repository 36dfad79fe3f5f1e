//! Policies are dropped, replaced, broken and removed while traffic flows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gatehouse_tests::{GatehouseBuilder, Upstream};
use serde_json::{Value, json};

async fn reason(c: &reqwest::Client, url: &str, key: &str) -> (u16, String) {
    let resp = c.get(url).bearer_auth(key).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["reason"].as_str().unwrap_or("").to_string(),
    )
}

async fn wait_for(c: &reqwest::Client, url: &str, key: &str, want: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (_, got) = reason(c, url, key).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn drop_replace_break_and_remove_while_traffic_flows() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let c = gatehouse_tests::http_client();
    let url = gh.url("api", "/echo");

    // No policy yet: denied, fail-closed.
    assert_eq!(
        reason(&c, &url, &key).await,
        (403, "policy guard is not loaded".into())
    );

    // Background traffic: every answer must be a well-formed 403 from a known state.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let traffic = {
        let (c, url, key, stop, served) = (
            c.clone(),
            url.clone(),
            key.clone(),
            stop.clone(),
            served.clone(),
        );
        tokio::spawn(async move {
            let known = ["policy guard is not loaded", "v1", "v2"];
            while !stop.load(Ordering::Relaxed) {
                let (status, got) = reason(&c, &url, &key).await;
                assert_eq!(status, 403, "a request failed during reload");
                assert!(
                    known.contains(&got.as_str()),
                    "unexpected answer during reload: {got:?}"
                );
                served.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Drop.
    gh.install_policy("guard", "deny-marker", Some(json!({"reason": "v1"})));
    let first = wait_for(&c, &url, &key, "v1").await;
    // Replace (new settings).
    gh.install_policy("guard", "deny-marker", Some(json!({"reason": "v2"})));
    wait_for(&c, &url, &key, "v2").await;

    // Break: garbage bytes, then settings the policy rejects. v2 keeps serving.
    let tmp = gh.policy_path(".guard.wasm.tmp");
    std::fs::write(&tmp, b"\0asm not really").unwrap();
    std::fs::rename(&tmp, gh.policy_path("guard.wasm")).unwrap();
    let status = wait_for_error(&c, &gh).await;
    assert!(status.contains("not a valid component"), "{status}");
    assert_eq!(reason(&c, &url, &key).await.1, "v2");
    let metrics = c
        .get(gh.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_policy_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    assert!(gh.log().contains("policy failed to load"));

    // Repair with the good component again; then remove it.
    gh.install_policy("guard", "deny-marker", Some(json!({"reason": "v2"})));
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::remove_file(gh.policy_path("guard.wasm")).unwrap();
    wait_for(&c, &url, &key, "policy guard is not loaded").await;

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
    assert!(served.load(Ordering::Relaxed) > 10);
    eprintln!("first decision {:?} after the file was dropped", first);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_the_policy_rejects_leave_the_last_good_version() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "http-guard",
            Some(json!({"deny": [{"path_prefix": "/", "reason": "good"}]})),
        )
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let c = gatehouse_tests::http_client();
    let url = gh.url("api", "/echo");
    assert_eq!(reason(&c, &url, &key).await.1, "good");

    std::fs::write(
        gh.policy_path("guard.json"),
        json!({"deny": [{"methods": ["GTE"]}]}).to_string(),
    )
    .unwrap();
    let status = wait_for_error(&c, &gh).await;
    assert!(
        status.contains("settings rejected by the policy"),
        "{status}"
    );
    assert!(status.contains("GTE"), "{status}");
    assert_eq!(reason(&c, &url, &key).await.1, "good");
}

/// Waits until the admin status shows a load error for `guard`; returns it.
async fn wait_for_error(c: &reqwest::Client, gh: &gatehouse_tests::Gatehouse) -> String {
    let started = Instant::now();
    loop {
        let status: Value = c
            .get(gh.admin_url("/v1/policies"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let p = status["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "guard")
            .cloned();
        if let Some(err) = p.as_ref().and_then(|p| p["last_error"].as_str()) {
            assert_eq!(
                p.as_ref().unwrap()["loaded"],
                true,
                "the last good version must stay loaded"
            );
            return err.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no load error reported: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_in_flight_decision_finishes_on_the_version_it_started_with() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "deny-marker",
            Some(json!({"reason": "old", "spin_iters": 1_500_000_000u64})),
        )
        // The spin takes 1-3 s on an idle core; the deadline leaves room for a
        // loaded machine (CI runs two test binaries at once on two cores).
        .config("[policies.overrides.guard]\ntimeout_ms = 30000\n")
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let c = gatehouse_tests::http_client();
    let url = gh.url("api", "/echo");

    let slow = {
        let (c, url, key) = (c.clone(), url.clone(), key.clone());
        tokio::spawn(async move {
            let r = reason(&c, &url, &key).await;
            (r, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    gh.install_policy("guard", "deny-marker", Some(json!({"reason": "new"})));
    // A request that reached the old version would spin too; give the reload
    // (~60 ms) ample time before asking.
    tokio::time::sleep(Duration::from_millis(400)).await;
    wait_for(&c, &url, &key, "new").await;
    let new_served_at = Instant::now();
    let ((status, got), old_done_at) = slow.await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(
        got, "old",
        "the in-flight call must finish on the old version"
    );
    assert!(
        new_served_at < old_done_at,
        "the new version must serve while the old call is still running"
    );
}
