//! The HTTP path end to end: real gateway process, real upstream, reqwest
//! and curl as clients.

use gatehouse_tests::{AWS_KEY, GatehouseBuilder, UPSTREAM_TOKEN, Upstream};
use serde_json::{Value, json};

fn guard_settings() -> Value {
    json!({
        "deny": [{"methods": ["DELETE"], "path_prefix": "/admin", "unless_groups": ["ops"], "reason": "admin API is read-only for agents"}],
        "mask_response": [{"detector": "aws-access-key-id"}]
    })
}

async fn gateway(upstream: &Upstream) -> gatehouse_tests::Gatehouse {
    GatehouseBuilder::new()
        .policy("http-guard", "http-guard", Some(guard_settings()))
        .http_connection("api", &upstream.url(), &["http-guard"], "")
        .http_connection("json", &upstream.url(), &["json-mask"], "")
        .http_connection("ops-only", &upstream.url(), &["http-guard"], "allowed_groups = [\"ops\"]")
        .policy(
            "json-mask",
            "http-guard",
            Some(json!({"mask_response": [{"json_pointer": "/password"}, {"json_pointer": "/email", "method": {"partial": {"prefix": 2, "suffix": 4}}}, {"detector": "aws-access-key-id"}]})),
        )
        .start()
}

async fn body_of(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

fn client() -> reqwest::Client {
    gatehouse_tests::http_client()
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_request_gets_the_held_credential_and_never_sees_it() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);

    let resp = client()
        .get(gh.url("api", "/echo?x=1"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-gatehouse-request-id"));
    let body = resp.text().await.unwrap();
    // The upstream accepted the injected credential (it answers 401 otherwise) ...
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["query"], "x=1");
    // ... echoed it back, and the gateway masked it on the way out.
    assert_eq!(
        echo["headers"]["authorization"],
        "Bearer [MASKED:credential]"
    );
    assert!(
        !body.contains(UPSTREAM_TOKEN),
        "held credential leaked: {body}"
    );
    // The caller's Gatehouse key is not forwarded.
    assert!(!body.contains(&key), "gatehouse key forwarded upstream");
    assert_eq!(echo["headers"]["accept-encoding"], "identity");
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_request_gets_403_with_the_policy_reason() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);

    let resp = client()
        .delete(gh.url("api", "/admin/users/7"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "policy_denied");
    assert_eq!(body["error"]["policy"], "http-guard");
    assert_eq!(body["error"]["reason"], "admin API is read-only for agents");

    // The same request from the ops group passes.
    let ops = gh.create_key("ops-bot", &["ops"]);
    let resp = client()
        .delete(gh.url("api", "/admin/users/7"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_split_across_two_chunks_is_masked() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);

    let resp = client()
        .get(gh.url("api", "/split-secret"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert_eq!(body, r#"{"key":"[MASKED:aws-access-key-id]","ok":true}"#);

    // Over HTTP/2 with curl too.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            &format!("Authorization: Bearer {key}"),
            &gh.url("api", "/split-secret"),
        ])
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        body,
        r#"{"key":"[MASKED:aws-access-key-id]","ok":true}"#,
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!body.contains(AWS_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn json_pointer_masks_apply_to_fields() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);

    let body: Value = client()
        .get(gh.url("json", "/json"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["password"], "[MASKED:json]");
    assert_eq!(body["email"], "al***********.com");
    assert_eq!(body["note"], "key [MASKED:aws-access-key-id]");
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_responses_that_need_masking_fail_closed() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);
    let resp = client()
        .get(gh.url("api", "/gzip"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "mask_failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_through_the_masker() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);
    let n = 32 * 1024 * 1024;
    let resp = client()
        .get(gh.url("api", &format!("/big?bytes={n}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.len(), n);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_and_unauthorised_callers_are_refused_and_audited() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let c = client();

    let resp = c.get(gh.url("api", "/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "unauthenticated"
    );

    let resp = c
        .get(gh.url("api", "/echo"))
        .bearer_auth("not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let forged =
        "ghk_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000";
    let resp = c
        .get(gh.url("api", "/echo"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Valid identity, wrong group for the connection.
    let dev = gh.create_key("dev-bot", &["dev"]);
    let resp = c
        .get(gh.url("ops-only", "/echo"))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "forbidden"
    );

    // Revoked keys stop working within the cache window.
    let listed = gh.cli(&["keys", "list"]);
    let line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.contains("dev-bot"))
        .unwrap()
        .to_string();
    let id = serde_json::from_str::<Value>(&line).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gh.cli(&["keys", "revoke", &id]).status.success());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let resp = c
        .get(gh.url("api", "/echo"))
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("revoked"));

    gh.wait_for_events(5);
    let db = gh.audit_db();
    let refused: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE kind = 'auth.refused'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(refused, 5);
    let presented: String = db
        .query_row("SELECT detail FROM events WHERE kind = 'auth.refused' AND detail LIKE '%key:0123456789abcdef%'", [], |r| r.get(0))
        .unwrap();
    assert!(
        !presented.contains("0000000000000000000000000000000000000000"),
        "secret part of a presented key was stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_records_everything_and_its_chain_verifies() {
    let upstream = Upstream::start().await;
    let gh = gateway(&upstream).await;
    let key = gh.create_key("ci-bot", &["dev"]);
    let c = client();
    body_of(c.get(gh.url("api", "/echo")).bearer_auth(&key)).await;
    body_of(c.delete(gh.url("api", "/admin/x")).bearer_auth(&key)).await;
    body_of(c.get(gh.url("api", "/split-secret")).bearer_auth(&key)).await;
    gh.wait_for_events(3);

    let db = gh.audit_db();
    let rows: Vec<(String, String, String, String)> = {
        let mut stmt = db
            .prepare(
                "SELECT principal_subject, verdict, summary, detail FROM events ORDER BY at_ms",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.0 == "ci-bot"));
    assert_eq!(rows[0].1, "allow");
    assert_eq!(rows[0].2, "GET /echo -> 200");
    assert_eq!(rows[1].1, "deny");
    assert_eq!(rows[1].2, "DELETE /admin/x -> 403");
    let deny: Value = serde_json::from_str(&rows[1].3).unwrap();
    let d = &deny["decisions"]["request"]["decisions"][0];
    assert_eq!(d["policy"], "http-guard");
    assert_eq!(d["version"], "0.1.0");
    assert_eq!(d["digest"].as_str().unwrap().len(), 64);
    assert_eq!(d["outcome"], "deny");
    // The policy's annotations are kept with its decision.
    assert_eq!(d["annotations"], json!([["rule", "deny[0]"]]));
    // What came back is stored as the caller saw it: masked.
    let masked: Value = serde_json::from_str(&rows[2].3).unwrap();
    assert_eq!(
        masked["response"]["body"]["body"],
        r#"{"key":"[MASKED:aws-access-key-id]","ok":true}"#
    );

    // Nothing secret reached the store or the log.
    let all: String = rows.iter().map(|r| r.3.clone()).collect();
    for secret in [UPSTREAM_TOKEN, AWS_KEY, key.as_str()] {
        assert!(!all.contains(secret), "audit store holds a secret");
        assert!(!gh.log().contains(secret), "log holds a secret");
    }

    let out = gh.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 broken"));
    let sessions = gh.cli(&["audit", "sessions"]);
    assert!(String::from_utf8_lossy(&sessions.stdout).contains("ci-bot"));
    let export = gh.cli(&["audit", "export", "--format", "jsonl"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().filter(|l| l["type"] == "event").count() >= 3);

    // Tampering is detected.
    db.execute(
        "UPDATE events SET verdict = 'allow' WHERE verdict = 'deny'",
        [],
    )
    .unwrap();
    let out = gh.cli(&["audit", "verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("was modified"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_policy_denies_and_an_unreachable_upstream_is_a_502() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy("allow-all", "allow-all", None)
        .http_connection("missing", &upstream.url(), &["nope"], "")
        .http_connection("down", "http://127.0.0.1:9", &["allow-all"], "")
        .http_connection(
            "slow",
            &upstream.url(),
            &["allow-all"],
            "upstream_timeout_ms = 300",
        )
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let resp = client()
        .get(gh.url("missing", "/echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "policy nope is not loaded");

    let resp = client()
        .get(gh.url("down", "/echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_unavailable"
    );

    // An upstream that does not answer in time is a 504, and the gateway moves on.
    let started = std::time::Instant::now();
    let resp = client()
        .get(gh.url("slow", "/hang"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_timeout"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn config_errors_name_the_key_and_stop_start() {
    let err = serve_refuses(
        "[[connections]]\nname = \"x\"\nprotocol = \"http\"\nlisten = \"127.0.0.1:0\"\nupstream = \"ftp://nope\"\n",
    );
    assert!(err.contains("connections[0].upstream"), "{err}");
}

/// Runs `serve` on `config`, which it must refuse; returns what it printed.
fn serve_refuses(config: &str) -> String {
    let b = GatehouseBuilder::new().config(config);
    let config = b.write_config();
    let out = std::process::Command::new(gatehouse_tests::gatehouse_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_are_checked_before_start_and_one_thread_serves() {
    let err = serve_refuses("[runtime]\nworker_threads = 0\n");
    assert!(
        err.contains("runtime.worker_threads") && err.contains("between 1 and 1024"),
        "{err}"
    );

    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .config("[runtime]\nworker_threads = 1\n")
        .policy("guard", "http-guard", None)
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    for _ in 0..3 {
        let resp = client()
            .get(gh.url("api", "/echo"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_masks_apply_before_the_upstream_sees_the_request() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "http-guard",
            Some(json!({"mask_request": [{"header": "x-api-secret"}, {"detector": "email"}]})),
        )
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("ci-bot", &[]);
    let body = client()
        .post(gh.url("api", "/echo"))
        .bearer_auth(&key)
        .header("x-api-secret", "s3cr3t-value")
        .body(r#"{"to": "bob@example.com", "text": "hi"}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-api-secret"], "[MASKED:header]", "{body}");
    assert_eq!(echo["body"], r#"{"to": "[MASKED:email]", "text": "hi"}"#);
    gh.wait_for_events(1);
    let detail: String = gh
        .audit_db()
        .query_row("SELECT detail FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(
        !detail.contains("bob@example.com") && !detail.contains("s3cr3t-value"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_limits_fail_closed() {
    // Held requests and approvals: tests/approvals.rs.
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "http-guard",
            Some(json!({"mask_response": [{"json_pointer": "/data"}]})),
        )
        .http_connection(
            "api",
            &upstream.url(),
            &["guard"],
            "json_mask_limit_bytes = 1024",
        )
        .start();
    let key = gh.create_key("ci-bot", &[]);

    // The JSON mask needs the whole body; 64 KiB is over the 1 KiB limit.
    let resp = client()
        .get(gh.url("api", "/big?bytes=65536"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "mask_failed"
    );
    // And a body that is not JSON cannot be masked by pointer either.
    let resp = client()
        .get(gh.url("api", "/ok"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
}
