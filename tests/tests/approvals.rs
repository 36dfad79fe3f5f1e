//! Requests held for a person, end to end: HTTP requests and PostgreSQL
//! statements held at the gateway, decided by other identities through the
//! admin API, on one gateway or across two replicas sharing a PostgreSQL
//! store; grants; timeouts; restarts; and the webhook.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_tests::audit_events::wait_for;
use gatehouse_tests::pg_client::connect;
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::postgres::TempDatabase;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, Upstream};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// POST /echo needs one of `ops`; PUT /echo times out after a second;
/// PATCH /echo leaves a 3-second grant.
fn http_guard() -> Value {
    json!({"approve": [
        {"methods": ["POST"], "path_prefix": "/echo", "approver_groups": ["ops"],
         "timeout_secs": 60, "reason": "echoes need an operator"},
        {"methods": ["PUT"], "path_prefix": "/echo", "approver_groups": ["ops"],
         "timeout_secs": 1, "reason": "puts need an operator quickly"},
        {"methods": ["PATCH"], "path_prefix": "/echo", "approver_groups": ["ops"],
         "timeout_secs": 60, "grant_secs": 3, "reason": "patches need an operator now and then"}
    ]})
}

fn http_gateway(upstream: &Upstream, extra: &str) -> GatehouseBuilder {
    GatehouseBuilder::new()
        .policy("guard", "http-guard", Some(http_guard()))
        .http_connection("api", &upstream.url(), &["guard"], "")
        .config(extra)
}

struct Keys {
    /// The requester: an agent acting for alice@example.com, in `ops` too,
    /// so only the own-request rule stops it from approving itself.
    bot: String,
    /// The person the bot acts for.
    alice: String,
    /// People: two operators and a developer.
    olga: String,
    oscar: String,
    dave: String,
}

fn keys(gh: &Gatehouse) -> Keys {
    Keys {
        bot: gh.create_key("deploy-bot", &["dev", "ops"]),
        alice: gh.create_person_key("alice@example.com", &["ops"]),
        olga: gh.create_person_key("olga", &["ops"]),
        oscar: gh.create_person_key("oscar", &["ops"]),
        dave: gh.create_person_key("dave", &["dev"]),
    }
}

/// Sends a request in the background; its status and JSON (or text) body.
fn send(
    gh: &Gatehouse,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let req = gatehouse_tests::http_client()
        .request(method.parse().unwrap(), gh.url("api", path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string());
    tokio::spawn(async move {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

async fn list(gh: &Gatehouse, key: &str, query: &str) -> Vec<Value> {
    let v: Value = gatehouse_tests::http_client()
        .get(gh.admin_url(&format!("/v1/approvals{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["approvals"].as_array().cloned().unwrap_or_default()
}

/// Waits until `n` approvals are waiting; returns them, oldest first.
async fn waiting(gh: &Gatehouse, key: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let mut l = list(gh, key, "").await;
        if l.len() >= n {
            l.reverse();
            return l;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} approvals did not appear; log:\n{}", gh.log());
}

async fn get(gh: &Gatehouse, key: &str, id: &str) -> Value {
    gatehouse_tests::http_client()
        .get(gh.admin_url(&format!("/v1/approvals/{id}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls an approval until its status is `status`.
async fn wait_status(gh: &Gatehouse, key: &str, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let a = get(gh, key, id).await;
        if a["status"] == status {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "approval {id} never became {status}: {}",
        get(gh, key, id).await
    );
}

async fn decide(
    gh: &Gatehouse,
    key: &str,
    id: &str,
    action: &str,
    reason: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = gatehouse_tests::http_client()
        .post(gh.admin_url(&format!("/v1/approvals/{id}/{action}")))
        .bearer_auth(key);
    if let Some(r) = reason {
        req = req.json(&json!({"reason": r}));
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

fn approval_id(a: &Value) -> String {
    a["id"].as_str().expect("approval id").to_string()
}

/// Awaits a held request that the decision just released.
async fn released(
    held: tokio::task::JoinHandle<(StatusCode, Value)>,
    decided_at: Instant,
) -> (StatusCode, Value) {
    let out = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("the held request was not released")
        .unwrap();
    let after = decided_at.elapsed();
    assert!(
        after < Duration::from_secs(1),
        "released {after:?} after the decision"
    );
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_request_is_held_until_another_identity_approves() {
    let upstream = Upstream::start().await;
    let gh = http_gateway(&upstream, "").start();
    let k = keys(&gh);
    let held = send(
        &gh,
        "POST",
        "/echo?env=prod",
        &k.bot,
        r#"{"deploy": "web"}"#,
    );
    let a = waiting(&gh, &k.olga, 1).await.remove(0);
    let id = approval_id(&a);
    // Who sees it: approvers and the requester; not a developer who can
    // neither decide it nor asked for it (its body may hold anything).
    assert!(list(&gh, &k.dave, "").await.is_empty());
    let hidden = gatehouse_tests::http_client()
        .get(gh.admin_url(&format!("/v1/approvals/{id}")))
        .bearer_auth(&k.dave)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
    assert_eq!(list(&gh, &k.bot, "").await.len(), 1);
    assert_eq!(a["status"], "waiting");
    assert_eq!(a["protocol"], "http");
    assert_eq!(a["connection"], "api");
    assert_eq!(a["requester"]["subject"], "deploy-bot");
    assert_eq!(a["request"]["method"], "POST");
    assert_eq!(a["request"]["target"], "/echo?env=prod");
    assert_eq!(a["request"]["body"], r#"{"deploy": "web"}"#);
    assert_eq!(a["policy"], "guard");
    assert_eq!(a["reason"], "echoes need an operator");
    assert_eq!(a["approver_groups"], json!(["ops"]));
    assert_eq!(a["scope"]["kind"], "once");
    assert_eq!(a["timeout_secs"], 60);
    assert!(!held.is_finished(), "the request was not held");
    let metrics = gatehouse_tests::http_client()
        .get(gh.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_approvals_waiting 1"),
        "{metrics}"
    );

    // Nobody approves their own request (the bot is in ops), only approvers
    // decide, and a denial needs a reason.
    let (status, body) = decide(&gh, &k.bot, &id, "approve", None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "own_request");
    // Nor the person the bot acts for, though she is in ops.
    let (status, body) = decide(&gh, &k.alice, &id, "approve", None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "own_request");
    // Nor through another key of hers whose name is not her address.
    let laptop = gh.create_key_owned("laptop-7", "Alice@Example.com", "human", &["ops"]);
    let (status, body) = decide(&gh, &laptop, &id, "approve", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "own_request");
    let (status, body) = decide(&gh, &k.dave, &id, "approve", None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "not_approver");
    let (status, body) = decide(&gh, &k.olga, &id, "deny", None).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "reason_required");
    assert_eq!(
        decide(&gh, &k.olga, "no-such-id", "approve", None).await.0,
        404
    );

    let (status, body) = decide(&gh, &k.olga, &id, "approve", Some("go")).await;
    let decided_at = Instant::now();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");
    let (status, echo) = released(held, decided_at).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["body"], r#"{"deploy": "web"}"#);
    assert_eq!(echo["query"], "env=prod");

    // Final: nobody decides it again.
    let (status, body) = decide(&gh, &k.oscar, &id, "deny", Some("late")).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "already_decided");
    let a = get(&gh, &k.olga, &id).await;
    assert_eq!(a["status"], "approved");
    assert_eq!(a["decisions"][0]["approver"]["subject"], "olga");
    assert_eq!(a["decisions"][0]["decision"], "approve");
    assert_eq!(a["decisions"][0]["reason"], "go");
    assert!(list(&gh, &k.olga, "").await.is_empty());
    assert_eq!(list(&gh, &k.olga, "?status=approved").await.len(), 1);
    assert!(list(&gh, &k.dave, "?status=all").await.is_empty());

    // Audited: the settlement in the requester's session, and the exchange
    // it let through.
    let (verdict, summary, detail) = wait_for(&gh, "approval", &id);
    assert_eq!(verdict, "approved");
    assert!(summary.contains("approved by olga"), "{summary}");
    assert_eq!(detail["decisions"][0]["approver"]["subject"], "olga");
    let (verdict, _, detail) = wait_for(&gh, "http.exchange", "POST /echo?env=prod -> 200");
    assert_eq!(verdict, "approved");
    assert_eq!(detail["approval"]["id"], id.as_str());
    assert_eq!(detail["approval"]["outcome"]["by"], "olga");
}

#[tokio::test(flavor = "multi_thread")]
async fn denial_and_timeout_are_http_json_errors() {
    let upstream = Upstream::start().await;
    let gh = http_gateway(&upstream, "").start();
    let k = keys(&gh);

    let held = send(&gh, "POST", "/echo", &k.bot, "{}");
    let id = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    let (status, _) = decide(&gh, &k.olga, &id, "deny", Some("not during the freeze")).await;
    assert_eq!(status, 200);
    let (status, body) = released(held, Instant::now()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "approval_denied");
    assert_eq!(body["error"]["approval_id"], id.as_str());
    assert_eq!(body["error"]["by"], "olga");
    assert_eq!(body["error"]["reason"], "not during the freeze");
    assert_eq!(body["error"]["policy"], "guard");
    assert_eq!(
        get(&gh, &k.olga, &id).await["status_reason"],
        "not during the freeze"
    );

    // Nobody answers within the policy's second: a denial, recorded timed_out.
    let started = Instant::now();
    let (status, body) = send(&gh, "PUT", "/echo", &k.bot, "{}").await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "approval_timed_out");
    assert_eq!(body["error"]["timeout_secs"], 1);
    let id = body["error"]["approval_id"].as_str().unwrap().to_string();
    assert_eq!(get(&gh, &k.olga, &id).await["status"], "timed_out");
    let (status, body) = decide(&gh, &k.olga, &id, "approve", None).await;
    assert_eq!(status, 409, "{body}");
    let (verdict, _, _) = wait_for(&gh, "approval", &id);
    assert_eq!(verdict, "timed_out");
    let (verdict, _, detail) = wait_for(&gh, "http.exchange", "PUT /echo -> 403");
    assert_eq!(verdict, "deny");
    assert_eq!(detail["error"]["code"], "approval_timed_out");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_lets_the_next_request_through_until_it_expires() {
    let upstream = Upstream::start().await;
    let gh = http_gateway(&upstream, "").start();
    let k = keys(&gh);

    let held = send(&gh, "PATCH", "/echo", &k.bot, r#"{"n": 1}"#);
    let a = waiting(&gh, &k.olga, 1).await.remove(0);
    assert_eq!(
        a["scope"],
        json!({"kind": "grant", "key": "PATCH /echo", "duration_secs": 3})
    );
    let first = approval_id(&a);
    assert_eq!(decide(&gh, &k.olga, &first, "approve", None).await.0, 200);
    assert_eq!(released(held, Instant::now()).await.0, 200);

    // Within the grant: through without asking, recorded as allowed by it.
    let (status, echo) = tokio::time::timeout(
        Duration::from_secs(2),
        send(&gh, "PATCH", "/echo", &k.bot, r#"{"n": 2}"#),
    )
    .await
    .expect("a granted request was held")
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(echo["body"], r#"{"n": 2}"#);
    assert_eq!(list(&gh, &k.olga, "?status=all").await.len(), 1);
    let (verdict, _, detail) = wait_for(&gh, "http.exchange", "PATCH /echo -> 200");
    assert_eq!(verdict, "approved");
    // The first exchange had no grant; find the one that used it.
    let mut used = None;
    for _ in 0..100 {
        used = gatehouse_tests::audit_events::events(&gh, "http.exchange")
            .into_iter()
            .find(|(_, _, d)| d["approval"]["outcome"]["grant"].is_object());
        if used.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, _, used) = used.expect("no exchange allowed by the grant");
    assert_eq!(used["approval"]["id"], first.as_str());
    assert_eq!(used["approval"]["outcome"]["grant"]["key"], "PATCH /echo");
    assert_eq!(used["approval"]["outcome"]["by"], "olga");
    assert_eq!(detail["approval"]["id"], first.as_str());

    // Only for the caller it was given to.
    let other = gh.create_key("other-bot", &["dev"]);
    let held = send(&gh, "PATCH", "/echo", &other, "{}");
    let a = waiting(&gh, &k.olga, 1).await.remove(0);
    assert_eq!(a["requester"]["subject"], "other-bot");
    decide(&gh, &k.olga, &approval_id(&a), "deny", Some("not you")).await;
    assert_eq!(released(held, Instant::now()).await.0, 403);

    // Expired: asked again.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let held = send(&gh, "PATCH", "/echo", &k.bot, r#"{"n": 3}"#);
    let a = waiting(&gh, &k.olga, 1).await.remove(0);
    assert_ne!(approval_id(&a), first);
    assert_eq!(a["requester"]["subject"], "deploy-bot");
    decide(&gh, &k.olga, &approval_id(&a), "deny", Some("enough")).await;
    assert_eq!(released(held, Instant::now()).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn min_approvals_needs_two_distinct_approvers() {
    let upstream = Upstream::start().await;
    let gh = http_gateway(&upstream, "[approvals]\nmin_approvals = 2").start();
    let k = keys(&gh);
    let held = send(&gh, "POST", "/echo", &k.bot, "{}");
    let a = waiting(&gh, &k.olga, 1).await.remove(0);
    let id = approval_id(&a);
    assert_eq!(a["min_approvals"], 2);
    let (status, body) = decide(&gh, &k.olga, &id, "approve", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "waiting");
    assert_eq!(body["approvals"], 1);
    let (status, body) = decide(&gh, &k.olga, &id, "approve", None).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "already_voted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "released after one approval of two");
    let (status, body) = decide(&gh, &k.oscar, &id, "approve", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "approved");
    assert_eq!(released(held, Instant::now()).await.0, 200);
    let a = get(&gh, &k.olga, &id).await;
    let approvers: Vec<&str> = a["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["approver"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(approvers, ["olga", "oscar"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_disconnects_withdraws_its_request() {
    let upstream = Upstream::start().await;
    let gh = http_gateway(&upstream, "").start();
    let k = keys(&gh);
    let body = r#"{"deploy": "web"}"#;
    let mut conn = tokio::net::TcpStream::connect(gh.addrs["api"])
        .await
        .unwrap();
    conn.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nhost: api\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            k.bot,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let id = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    drop(conn);
    let a = wait_status(&gh, &k.olga, &id, "abandoned").await;
    assert!(
        a["status_reason"].as_str().unwrap().contains("went away"),
        "{a}"
    );
    assert_eq!(decide(&gh, &k.olga, &id, "approve", None).await.0, 409);
}

/// The approval's status and reason, read from the SQLite store.
fn stored_status(gh: &Gatehouse, id: &str) -> (String, String) {
    gh.audit_db()
        .query_row(
            "SELECT status, COALESCE(status_reason, '') FROM approvals WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_and_restart_end_waiting_requests_cleanly() {
    let upstream = Upstream::start().await;
    let mut gh = http_gateway(&upstream, "").start();
    let k = keys(&gh);

    // A clean shutdown answers the waiting client and marks the approval.
    let held = send(&gh, "POST", "/echo", &k.bot, "{}");
    let first = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    let (gh_back, exit) = tokio::task::spawn_blocking(move || {
        let s = gh.terminate();
        (gh, s)
    })
    .await
    .unwrap();
    gh = gh_back;
    assert!(exit.success(), "{}", gh.log());
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "approval_abandoned");
    assert_eq!(body["error"]["approval_id"], first.as_str());
    let (status, reason) = stored_status(&gh, &first);
    assert_eq!(status, "abandoned");
    assert!(reason.contains("shutting down"), "{reason}");

    // A crash cannot answer; the restart marks what it left waiting.
    let gh = gh.restart();
    let held = send(&gh, "POST", "/echo", &k.bot, "{}");
    let second = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    let mut gh = gh;
    gh.kill();
    let answer = held.await;
    assert!(answer.is_err(), "a killed gateway answered: {answer:?}");
    assert_eq!(stored_status(&gh, &second).0, "waiting");
    let gh = gh.restart();
    let (status, reason) = stored_status(&gh, &second);
    assert_eq!(status, "abandoned");
    assert!(reason.contains("stopped"), "{reason}");
    let (status, body) = decide(&gh, &k.olga, &second, "approve", None).await;
    assert_eq!(status, 409, "{body}");
}

fn sql_guard() -> Value {
    json!({"rules": [
        {"action": "approve", "kinds": ["delete"], "approvers": ["dba"], "timeout_secs": 60,
         "reason": "deletes need a DBA"},
        {"action": "approve", "kinds": ["insert"], "tables_written": ["audit_log"],
         "approvers": ["dba"], "timeout_secs": 1, "reason": "audit_log is append-only by hand"},
        {"action": "approve", "kinds": ["update"], "tables_written": ["customers"],
         "approvers": ["dba"], "timeout_secs": 60, "grant_secs": 3, "reason": "customer edits"}
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_statement_is_held_approved_denied_timed_out_and_granted() {
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text);\
         INSERT INTO customers VALUES (1, 'Alice'), (2, 'Bob'), (3, 'Carol');\
         CREATE TABLE audit_log (line text);",
    );
    let gh = GatehouseBuilder::new()
        .policy("sql-guard", "sql-guard", Some(sql_guard()))
        .postgres_connection(
            "shop",
            &cluster.url(),
            &["sql-guard"],
            "",
            "allow_cleartext_password = true",
        )
        .config("[policies.defaults]\ntimeout_ms = 2000")
        .start();
    let agent = gh.create_key("sql-bot", &["dev", "dba"]);
    let dba = gh.create_person_key("dora", &["dba"]);
    let client = connect(&gh, "shop", &agent, "shop").await.unwrap();

    // Held, refused to its own author, approved by the DBA, run.
    let deleting = client.execute("DELETE FROM customers WHERE id = $1", &[&3i32]);
    let deciding = async {
        let a = waiting(&gh, &dba, 1).await.remove(0);
        assert_eq!(a["protocol"], "postgres");
        assert_eq!(a["request"]["sql"], "DELETE FROM customers WHERE id = $1");
        // The parameter as sent: tokio-postgres binds an int4 in binary.
        assert_eq!(a["request"]["parameters"], json!(["\\x00000003"]));
        assert_eq!(a["requester"]["subject"], "sql-bot");
        let id = approval_id(&a);
        let (status, body) = decide(&gh, &agent, &id, "approve", None).await;
        assert_eq!(status, 403);
        assert_eq!(body["error"]["code"], "own_request");
        assert_eq!(decide(&gh, &dba, &id, "approve", None).await.0, 200);
        (id, Instant::now())
    };
    let (deleted, (approved, decided_at)) = tokio::join!(deleting, deciding);
    assert!(decided_at.elapsed() < Duration::from_secs(1));
    assert_eq!(deleted.unwrap(), 1);
    let (verdict, _, detail) = wait_for(&gh, "pg.statement", "DELETE FROM customers");
    assert_eq!(verdict, "approved");
    assert_eq!(detail["approval"]["id"], approved.as_str());
    assert_eq!(detail["approval"]["outcome"]["by"], "dora");

    // Denied: the statement's ErrorResponse; the session goes on.
    let deleting = client.execute("DELETE FROM customers WHERE id = 2", &[]);
    let deciding = async {
        let id = approval_id(&waiting(&gh, &dba, 1).await[0]);
        decide(&gh, &dba, &id, "deny", Some("Bob stays")).await
    };
    let (result, (status, _)) = tokio::join!(deleting, deciding);
    assert_eq!(status, 200);
    let e = result.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("denied by dora: Bob stays"),
        "{}",
        db.message()
    );

    // Silence: a timeout, the same error class.
    let e = client
        .execute("INSERT INTO audit_log VALUES ('by hand')", &[])
        .await
        .unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("was not given within 1 s"),
        "{}",
        db.message()
    );
    assert_eq!(list(&gh, &dba, "?status=timed_out").await.len(), 1);

    // A grant: the next edit of customers by the same caller runs at once.
    let updating = client.execute("UPDATE customers SET name = 'Al' WHERE id = 1", &[]);
    let deciding = async {
        let a = waiting(&gh, &dba, 1).await.remove(0);
        assert_eq!(a["scope"]["kind"], "grant");
        decide(&gh, &dba, &approval_id(&a), "approve", None).await
    };
    let (updated, _) = tokio::join!(updating, deciding);
    assert_eq!(updated.unwrap(), 1);
    let again = tokio::time::timeout(
        Duration::from_secs(2),
        client.execute("UPDATE customers SET name = 'Ali' WHERE id = 1", &[]),
    )
    .await
    .expect("a granted statement was held");
    assert_eq!(again.unwrap(), 1);
    let (verdict, _, detail) = wait_for(&gh, "pg.statement", "SET name = 'Ali'");
    assert_eq!(verdict, "approved");
    assert!(
        detail["approval"]["outcome"]["grant"]["key"]
            .as_str()
            .unwrap()
            .ends_with("customers")
    );
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let updating = client.execute("UPDATE customers SET name = 'A.' WHERE id = 1", &[]);
    let deciding = async {
        let id = approval_id(&waiting(&gh, &dba, 1).await[0]);
        decide(&gh, &dba, &id, "deny", Some("grant expired; enough")).await
    };
    let (result, _) = tokio::join!(updating, deciding);
    assert!(result.is_err());
    assert_eq!(
        cluster.app_sql("shop", "SELECT name FROM customers WHERE id = 1"),
        "Ali\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_a_postgresql_store_share_approvals() {
    let db = TempDatabase::create("gatehouse_replicas");
    let upstream = Upstream::start().await;
    // Polling only every 10 s: a release within a second is LISTEN/NOTIFY's.
    let replica = |id: &str| {
        http_gateway(
            &upstream,
            &format!("[approvals]\nreplica_id = \"{id}\"\npoll_interval_ms = 10000"),
        )
        .database(&db.url())
    };
    let a = replica("gw-a").start();
    let k = keys(&a);

    // Held on A; B starts afterwards and must not take A's live wait for
    // an orphan.
    let held = send(&a, "POST", "/echo", &k.bot, r#"{"on": "a"}"#);
    let first = approval_id(&waiting(&a, &k.olga, 1).await[0]);
    let b = replica("gw-b").start();
    let seen = waiting(&b, &k.olga, 1).await.remove(0);
    assert_eq!(approval_id(&seen), first);
    assert_eq!(seen["owner"], "gw-a");
    assert_eq!(seen["status"], "waiting");

    // Approved through B's API, released on A within a second.
    let (status, body) = decide(&b, &k.olga, &first, "approve", None).await;
    let decided_at = Instant::now();
    assert_eq!(status, 200, "{body}");
    let (status, echo) = released(held, decided_at).await;
    assert_eq!(status, 200);
    assert_eq!(echo["body"], r#"{"on": "a"}"#);
    assert_eq!(
        db.sql(&format!(
            "SELECT status FROM approvals WHERE id = '{first}'"
        )),
        "approved"
    );

    // A denial through B, the same way.
    let held = send(&a, "POST", "/echo", &k.bot, "{}");
    let second = approval_id(&waiting(&b, &k.olga, 1).await[0]);
    assert_eq!(
        decide(&b, &k.oscar, &second, "deny", Some("from B"))
            .await
            .0,
        200
    );
    let (status, body) = released(held, Instant::now()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["reason"], "from B");

    // A dies with a request waiting. B leaves it alone (A's heartbeat is
    // recent); A, restarted under its name, marks it abandoned at once.
    let held = send(&a, "POST", "/echo", &k.bot, "{}");
    let third = approval_id(&waiting(&b, &k.olga, 1).await[0]);
    let mut a = a;
    a.kill();
    let _ = held.await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&b, &k.olga, &third).await["status"], "waiting");
    let a = a.restart();
    let gone = get(&b, &k.olga, &third).await;
    assert_eq!(gone["status"], "abandoned", "{gone}");
    drop(a);
    drop(b);
}

/// A local webhook receiver: records every POST body; answers 500 to the
/// first `fail_first`, 200 after.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen = hits.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let n = {
                                let mut s = seen.lock().unwrap();
                                s.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                                s.len()
                            };
                            let status = if n <= fail_first { 500 } else { 200 };
                            let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                            *r.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/approvals", self.addr)
    }

    fn hits(&self) -> Vec<Value> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits for a message that `pred` accepts; returns it and how many
    /// times it was received.
    async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> (Value, usize) {
        for _ in 0..200 {
            let found: Vec<Value> = self.hits().into_iter().filter(|v| pred(v)).collect();
            if let Some(v) = found.first() {
                return (v.clone(), found.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no webhook message: {what}; got {:#?}", self.hits());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn webhook(url: &str, format: &str) -> String {
    format!(
        "[approvals.webhook]\nurl = \"{url}\"\nformat = \"{format}\"\nconsole_url = \"https://console.example.com/\"\nmax_attempts = 3\ntimeout_ms = 2000"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_report_new_and_decided_approvals() {
    let upstream = Upstream::start().await;
    // JSON, with the first delivery failing: retried.
    let receiver = Receiver::start(1).await;
    let gh = http_gateway(&upstream, &webhook(&receiver.url(), "json")).start();
    let k = keys(&gh);
    let held = send(&gh, "POST", "/echo", &k.bot, r#"{"deploy": "web"}"#);
    let id = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    let (created, _) = receiver
        .wait_for("approval.created", |v| v["event"] == "approval.created")
        .await;
    for _ in 0..100 {
        if receiver.hits().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        receiver.hits().len(),
        2,
        "the failed delivery was not retried"
    );
    assert_eq!(receiver.hits()[1], created);
    assert_eq!(created["approval"]["id"], id.as_str());
    assert_eq!(created["approval"]["status"], "waiting");
    assert_eq!(created["approval"]["request"]["method"], "POST");
    assert_eq!(created["approval"]["requester"]["subject"], "deploy-bot");
    assert_eq!(
        created["links"]["approve"],
        format!("https://console.example.com/console/#/approvals/{id}?action=approve")
    );
    decide(&gh, &k.olga, &id, "approve", None).await;
    assert_eq!(released(held, Instant::now()).await.0, 200);
    let (decided, _) = receiver
        .wait_for("approval.decided", |v| v["event"] == "approval.decided")
        .await;
    assert_eq!(decided["approval"]["id"], id.as_str());
    assert_eq!(decided["approval"]["status"], "approved");
    assert_eq!(
        decided["approval"]["decisions"][0]["approver"]["subject"],
        "olga"
    );
    drop(gh);

    // Slack: a message with approve/deny links to the console.
    let receiver = Receiver::start(0).await;
    let gh = http_gateway(&upstream, &webhook(&receiver.url(), "slack")).start();
    let k = keys(&gh);
    let held = send(&gh, "POST", "/echo", &k.bot, "{}");
    let id = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
    let (created, _) = receiver
        .wait_for("slack message for the new approval", |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("Approval needed"))
        })
        .await;
    assert!(created["text"].as_str().unwrap().contains("deploy-bot"));
    let section = created["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(section.contains("POST /echo"), "{section}");
    assert!(section.contains(&id), "{section}");
    let buttons = &created["blocks"][1]["elements"];
    assert_eq!(
        buttons[0]["url"],
        format!("https://console.example.com/console/#/approvals/{id}?action=approve")
    );
    assert_eq!(
        buttons[1]["url"],
        format!("https://console.example.com/console/#/approvals/{id}?action=deny")
    );
    decide(&gh, &k.olga, &id, "deny", Some("not today")).await;
    assert_eq!(released(held, Instant::now()).await.0, 403);
    let (decided, _) = receiver
        .wait_for("slack message for the decision", |v| {
            v["text"]
                .as_str()
                .is_some_and(|t| t.contains("denied by olga: not today"))
        })
        .await;
    assert_eq!(
        decided["blocks"][1]["elements"][0]["url"],
        format!("https://console.example.com/console/#/approvals/{id}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_is_down_never_blocks_the_data_path() {
    let upstream = Upstream::start().await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gh = http_gateway(
        &upstream,
        &webhook(&format!("http://{closed}/hooks"), "json"),
    )
    .start();
    let k = keys(&gh);
    for _ in 0..3 {
        let started = Instant::now();
        let held = send(&gh, "POST", "/echo", &k.bot, "{}");
        let id = approval_id(&waiting(&gh, &k.olga, 1).await[0]);
        assert!(started.elapsed() < Duration::from_secs(3));
        decide(&gh, &k.olga, &id, "approve", None).await;
        assert_eq!(released(held, Instant::now()).await.0, 200);
    }
    // Requests that need no approval are not slowed either.
    let started = Instant::now();
    let resp = gatehouse_tests::http_client()
        .get(gh.url("api", "/echo"))
        .bearer_auth(&k.bot)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    for _ in 0..100 {
        if gh.log().contains("approval webhook failed") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the failing webhook was not logged:\n{}", gh.log());
}
