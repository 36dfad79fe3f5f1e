//! The PostgreSQL path end to end: a throwaway cluster with SCRAM
//! authentication, the real gateway, and real clients (psql, pgbench,
//! tokio-postgres) presenting Gatehouse credentials as their password.

use gatehouse_tests::audit_events::{events, wait_for};
use gatehouse_tests::pg_client::{self, connect, psql, stderr, stdout};
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::{Gatehouse, GatehouseBuilder};
use serde_json::{Value, json};

fn guard_settings() -> Value {
    json!({
        "rules": [
            {"action": "deny", "kinds": ["drop", "truncate", "alter"], "unless_groups": ["dba"],
             "reason": "schema changes need a DBA"},
            {"action": "deny", "kinds": ["update", "delete"], "without_where": true,
             "reason": "UPDATE and DELETE need a WHERE clause"},
            {"action": "deny", "tables_read": ["secrets"], "reason": "secrets are off limits"},
            {"action": "approve", "kinds": ["delete"], "approvers": ["dba"], "timeout_secs": 30,
             "reason": "deletes need a DBA's OK"},
            {"action": "approve", "tables_read": ["vault"], "approvers": ["dba"], "timeout_secs": 30,
             "reason": "vault reads need a DBA"},
            {"action": "approve", "kinds": ["insert"], "tables_written": ["audit_log"], "approvers": ["dba"],
             "timeout_secs": 1, "reason": "audit_log is append-only by hand"}
        ],
        "mask": [
            {"column": "email", "method": "partial", "prefix": 2, "suffix": 4},
            {"detector": "credit-card", "method": "redact"}
        ]
    })
}

const SCHEMA: &str = "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text, note text);\
     INSERT INTO customers VALUES \
       (1, 'Alice', 'alice@example.com', '4111 1111 1111 1111', 'paid with 4111111111111111'),\
       (2, 'Bob', 'bob@example.org', NULL, 'no card');\
     CREATE TABLE secrets (k text, v text); INSERT INTO secrets VALUES ('root', 'hunter2');\
     CREATE TABLE audit_log (line text);\
     CREATE TABLE vault (email text); INSERT INTO vault VALUES ('carol@example.com');";

struct Setup {
    cluster: PgCluster,
    gh: Gatehouse,
    key: String,
}

fn setup() -> Setup {
    let cluster = PgCluster::start();
    cluster.app_sql("shop", SCHEMA);
    let gh = GatehouseBuilder::new()
        .policy("sql-guard", "sql-guard", Some(guard_settings()))
        .postgres_connection(
            "shop",
            &cluster.url(),
            &["sql-guard"],
            "",
            "allow_cleartext_password = true",
        )
        .postgres_connection(
            "ops-only",
            &cluster.url(),
            &["sql-guard"],
            "allowed_groups = [\"ops\"]",
            "allow_cleartext_password = true",
        )
        .postgres_connection("tls-only", &cluster.url(), &[], "", "")
        .policy(
            "text-only",
            "sql-guard",
            Some(json!({"mask": [{"detector": "credit-card", "method": "redact"}]})),
        )
        .postgres_connection(
            "text-masks",
            &cluster.url(),
            &["text-only"],
            "",
            "allow_cleartext_password = true",
        )
        // Several gateways and clusters share two cores while tests run.
        .config("[policies.defaults]\ntimeout_ms = 2000")
        .start();
    let key = gh.create_key("sql-bot", &["dev"]);
    Setup { cluster, gh, key }
}

#[test]
fn psql_queries_pass_with_held_scram_credentials_and_are_recorded() {
    let s = setup();
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELECT current_user, count(*) FROM customers;\nSELECT name FROM customers ORDER BY id;\n\
         SELECT name FROM customers ORDER BY id DESC;\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The session runs as the held role; the client never named it.
    assert_eq!(stdout(&out), "app|2\nAlice\nBob\nBob\nAlice\n");
    // sql-guard promises its decisions depend only on the statement's shape:
    // the second statement of a shape is decided without calling it.
    let (_, _, first) = wait_for(&s.gh, "pg.statement", "ORDER BY id;");
    let (_, _, second) = wait_for(&s.gh, "pg.statement", "ORDER BY id DESC");
    assert_eq!(first["decisions"]["query"].get("cached"), None);
    assert_eq!(second["decisions"]["query"]["cached"], true);
    assert_eq!(
        second["decisions"]["query"]["decisions"][0]["policy"],
        "sql-guard"
    );
    // A reused decision is stored once and referred to from each statement.
    let raw: String =
        s.gh.audit_db()
            .query_row(
                "SELECT detail FROM events WHERE summary LIKE '%ORDER BY id DESC%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
    assert!(raw.contains("\"$shared\":\"sha256:"), "{raw}");

    let (verdict, _, detail) = wait_for(&s.gh, "pg.statement", "SELECT name FROM customers");
    assert_eq!(verdict, "allow");
    assert_eq!(detail["rows"], 2);
    assert_eq!(detail["analysis"]["statements"][0]["kind"], "select");
    assert_eq!(
        detail["analysis"]["statements"][0]["tables_read"],
        json!(["customers"])
    );
    let db = s.gh.audit_db();
    let (subject, principal): (String, String) = db
        .query_row(
            "SELECT principal_subject, principal_json FROM sessions WHERE protocol = 'postgres' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(subject, "sql-bot");
    assert!(principal.contains("dev"), "{principal}");
    let (_, _, connect) = wait_for(&s.gh, "pg.connect", "connect shop");
    assert_eq!(connect["database"], "shop");
}

#[test]
fn denied_ddl_is_42501_and_the_session_stays_usable() {
    let s = setup();
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "\\set VERBOSITY verbose\nDROP TABLE customers;\nSELECT count(*) FROM customers;\n\
         BEGIN;\nSELECT 1;\nTRUNCATE customers;\nSELECT 2;\nROLLBACK;\nSELECT 'after';\n\
         UPDATE customers SET name = 'x';\nUPDATE customers SET name = 'Alicia' WHERE id = 1;\n\
         SELECT name FROM customers WHERE id = 1;\n",
    );
    let err = stderr(&out);
    let text = stdout(&out);
    assert!(
        err.contains("ERROR:  42501: denied by policy: schema changes need a DBA"),
        "{err}"
    );
    assert!(err.contains("DETAIL:  policy: sql-guard"), "{err}");
    // Inside a transaction the refusal aborts it, exactly as a server error would.
    assert!(err.contains("25P02"), "{err}");
    assert!(
        err.contains("UPDATE and DELETE need a WHERE clause"),
        "{err}"
    );
    assert_eq!(text, "2\n1\nafter\nAlicia\n");
    assert_eq!(
        s.cluster.app_sql("shop", "SELECT count(*) FROM customers"),
        "2\n"
    );

    let (verdict, _, detail) = wait_for(&s.gh, "pg.statement", "DROP TABLE customers");
    assert_eq!(verdict, "deny");
    assert!(detail["not_executed"].as_str().unwrap().contains("42501"));
    assert_eq!(detail["decisions"]["query"]["policy"], "sql-guard");
}

#[test]
fn dba_group_may_run_ddl() {
    let s = setup();
    let dba = s.gh.create_key("dba-bot", &["dba"]);
    let out = psql(
        &s.gh,
        "shop",
        &dba,
        "shop",
        "\\set ON_ERROR_STOP 1\nALTER TABLE customers ADD COLUMN phone text;\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        s.cluster
            .app_sql(
                "shop",
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
            )
            .contains("phone")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn masks_apply_to_text_and_binary_results() {
    let s = setup();
    // psql: simple protocol, text format.
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELECT id, email, card, note FROM customers ORDER BY id;\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("alice@example.com"), "{text}");
    assert!(!text.contains("4111"), "{text}");
    assert!(
        text.starts_with(
            "1|al***********.com|[MASKED:credit-card]|paid with [MASKED:credit-card]\n"
        ),
        "{text}"
    );

    // tokio-postgres: extended protocol, binary format.
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    let rows = client
        .query(
            "SELECT id, email, card FROM customers WHERE id = $1",
            &[&1i32],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    assert_eq!(rows[0].get::<_, String>(1), "al***********.com");
    assert_eq!(rows[0].get::<_, String>(2), "[MASKED:credit-card]");
    // NULLs stay NULL.
    let row = client
        .query_one("SELECT email, card FROM customers WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(1), None);

    let (_, _, detail) = wait_for(&s.gh, "pg.statement", "WHERE id = $1");
    assert_eq!(detail["masked_columns"], json!(["email"]));
    assert_eq!(detail["parameters"], json!(["\\x00000001"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn extended_protocol_pipelines_and_refusals_inside_them() {
    let s = setup();
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    let a = client
        .prepare("SELECT name FROM customers WHERE id = $1")
        .await
        .unwrap();
    // Several queries in flight at once on one connection (tokio-postgres pipelines them).
    let (r1, r2, r3) = tokio::join!(
        client.query_one(&a, &[&1i32]),
        client.query_one(&a, &[&2i32]),
        client.query("SELECT v FROM secrets", &[]),
    );
    assert_eq!(r1.unwrap().get::<_, String>(0), "Alice");
    assert_eq!(r2.unwrap().get::<_, String>(0), "Bob");
    let e = r3.unwrap_err();
    let db = e.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message().contains("secrets are off limits"),
        "{}",
        db.message()
    );
    // The connection is still good, inside and outside transactions.
    client.batch_execute("BEGIN").await.unwrap();
    let e = client
        .execute("DELETE FROM customers", &[])
        .await
        .unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "42501");
    let e = client.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.as_db_error().unwrap().code().code(), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[test]
fn copy_in_and_out_stream_through_with_masks() {
    let s = setup();
    let data: String = (10..2010)
        .map(|i| format!("{i}\tuser{i}\tuser{i}@example.com\t\\N\tcard 4111111111111111\n"))
        .collect();
    let script = format!(
        "COPY customers FROM STDIN;\n{data}\\.\nSELECT count(*) FROM customers;\nCOPY (SELECT note FROM customers WHERE id = 10) TO STDOUT;\n"
    );
    let out = psql(&s.gh, "text-masks", &s.key, "shop", &script);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "2002\ncard [MASKED:credit-card]\n");
    // Where a column is masked, COPY TO (whose rows carry no column names) is refused.
    let out = psql(&s.gh, "shop", &s.key, "shop", "COPY customers TO STDOUT;\n");
    assert!(
        stderr(&out).contains("COPY ... TO cannot be masked by column"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(
        s.cluster
            .app_sql("shop", "SELECT note FROM customers WHERE id = 10"),
        "card 4111111111111111\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_masked_rows_stream_in_flat_memory() {
    let s = setup();
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    // Warm up, then measure the gateway's peak resident memory around the big result.
    client
        .query("SELECT email FROM customers", &[])
        .await
        .unwrap();
    let before = peak_rss_kb(s.gh.pid());
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELECT count(*), sum(length(email)), max(email) FROM (SELECT i, 'person' || i || '@example.com' AS email FROM generate_series(1, 1000000) i) t;\n\
         \\o /dev/null\nSELECT i, 'person' || i || '@example.com' AS email FROM generate_series(1, 1000000) i;\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let after = peak_rss_kb(s.gh.pid());
    // psql holds the whole result; the gateway must not: the ~35 MB of rows pass through.
    assert!(
        after - before < 40 * 1024,
        "peak RSS grew from {before} kB to {after} kB"
    );
    let (_, _, detail) = wait_for(&s.gh, "pg.statement", "generate_series(1, 1000000) i;");
    assert_eq!(detail["rows"], 1_000_000);
    assert_eq!(detail["masked_columns"], json!(["email"]));
    assert_eq!(detail["masked_values"], 1_000_000);
}

fn peak_rss_kb(pid: u32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_requests_reach_the_upstream() {
    let s = setup();
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    let token = client.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await
    });
    let started = std::time::Instant::now();
    let e = client.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    canceller.await.unwrap().unwrap();
    assert_eq!(e.as_db_error().unwrap().code().code(), "57014");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The session goes on.
    let n: i32 = client.query_one("SELECT 7", &[]).await.unwrap().get(0);
    assert_eq!(n, 7);
}

#[test]
fn pgbench_runs_select_only_and_tpcb_through_the_gateway() {
    let s = setup();
    let out = std::process::Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &s.cluster.port.to_string(),
            "-U",
            "app",
            "-i",
            "-s",
            "1",
            "-q",
            "shop",
        ])
        .env("PGPASSWORD", gatehouse_tests::pg_cluster::APP_PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [
        vec!["-S", "-c", "4", "-t", "200"],
        vec!["-S", "-M", "prepared", "-c", "2", "-t", "200"],
        vec!["-M", "extended", "-c", "2", "-t", "50"],
    ] {
        let out = pg_client::pgbench(&s.gh, "shop", &s.key, "shop", &args);
        let text = stdout(&out);
        assert!(out.status.success(), "{args:?}: {}{}", text, stderr(&out));
        assert!(text.contains("number of failed transactions: 0"), "{text}");
    }
}

#[test]
fn refused_logins_get_clear_errors_and_are_audited() {
    let s = setup();
    let wrong = format!("ghk_0123456789abcdef_{}", "00".repeat(32));
    let bad = psql(&s.gh, "shop", &wrong, "shop", "SELECT 1;\n");
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("Gatehouse authentication failed: unknown or wrong API key"),
        "{}",
        stderr(&bad)
    );

    let outsider = psql(&s.gh, "ops-only", &s.key, "shop", "SELECT 1;\n");
    assert!(
        stderr(&outsider).contains("open to the groups ops"),
        "{}",
        stderr(&outsider)
    );

    let plain = psql(&s.gh, "tls-only", &s.key, "shop", "SELECT 1;\n");
    assert!(
        stderr(&plain).contains("accepts credentials only over TLS"),
        "{}",
        stderr(&plain)
    );

    wait_for(&s.gh, "auth.refused", "only over TLS");
    let refused = events(&s.gh, "auth.refused");
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(
        refused
            .iter()
            .any(|(_, _, d)| d["presented"] == "key:0123456789abcdef")
    );
    // No credential reaches the log or the audit trail.
    assert!(!s.gh.log().contains(&s.key));
    let all: String = events(&s.gh, "pg.connect")
        .iter()
        .chain(refused.iter())
        .map(|(_, _, d)| d.to_string())
        .collect();
    assert!(!all.contains(&s.key));
    assert!(!all.contains(gatehouse_tests::pg_cluster::APP_PASSWORD));
}

#[test]
fn unknown_database_is_the_servers_own_error() {
    let s = setup();
    let out = psql(&s.gh, "shop", &s.key, "nosuchdb", "SELECT 1;\n");
    assert!(
        stderr(&out).contains("database \"nosuchdb\" does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unparsable_sql_is_a_decision_not_a_pass() {
    let s = setup();
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELEC name FROM customers;\nSELECT 'ok';\n",
    );
    let err = stderr(&out);
    assert!(
        err.contains("denied by policy: the query could not be parsed"),
        "{err}"
    );
    assert_eq!(stdout(&out), "ok\n");
    let (verdict, _, detail) = wait_for(&s.gh, "pg.statement", "SELEC name");
    assert_eq!(verdict, "deny");
    assert!(detail["analysis"]["parse_error"].is_string());
}

async fn waiting_approvals(gh: &Gatehouse, key: &str) -> Vec<Value> {
    for _ in 0..200 {
        let v: Value = gatehouse_tests::http_client()
            .get(gh.admin_url("/v1/approvals"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = v["approvals"].as_array().cloned().unwrap_or_default();
        if !list.is_empty() {
            return list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no approval appeared");
}

async fn decide(
    gh: &Gatehouse,
    key: &str,
    id: &str,
    action: &str,
    reason: Option<&str>,
) -> reqwest::Response {
    let mut req = gatehouse_tests::http_client()
        .post(gh.admin_url(&format!("/v1/approvals/{id}/{action}")))
        .bearer_auth(key);
    if let Some(r) = reason {
        req = req.json(&json!({"reason": r}));
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn held_statements_wait_for_an_approver() {
    let s = setup();
    // A person: another agent of the requester's owner could not approve.
    let dba = s.gh.create_person_key("dora", &["dba"]);
    let port = s.gh.port("shop");
    let key = s.key.clone();
    // psql waits at the gateway and is told why.
    let waiting = std::thread::spawn(move || {
        std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "agent",
                "-d",
                "shop",
                "-X",
                "-A",
                "-t",
            ])
            .args([
                "-c",
                "DELETE FROM customers WHERE id = 2",
                "-c",
                "SELECT count(*) FROM customers",
            ])
            .env("PGPASSWORD", key)
            .output()
            .unwrap()
    });
    let list = waiting_approvals(&s.gh, &dba).await;
    let a = &list[0];
    assert_eq!(a["requester"]["subject"], "sql-bot");
    assert_eq!(a["request"]["sql"], "DELETE FROM customers WHERE id = 2");
    assert_eq!(a["policy"], "sql-guard");
    let id = a["id"].as_str().unwrap().to_string();
    // Nobody approves their own request, and only approvers decide.
    let own = decide(&s.gh, &s.key, &id, "approve", None).await;
    assert_eq!(own.status(), 403);
    let outsider = s.gh.create_key("olga", &["ops"]);
    assert_eq!(
        decide(&s.gh, &outsider, &id, "approve", None)
            .await
            .status(),
        403
    );
    assert_eq!(decide(&s.gh, &dba, &id, "deny", None).await.status(), 422);
    assert_eq!(
        decide(&s.gh, &dba, &id, "approve", None).await.status(),
        200
    );
    let out = tokio::task::spawn_blocking(move || waiting.join().unwrap())
        .await
        .unwrap();
    assert!(
        stderr(&out).contains(&format!("NOTICE:  waiting for approval {id}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "DELETE 1\n1\n");
    // Decisions are final.
    assert_eq!(
        decide(&s.gh, &dba, &id, "deny", Some("late"))
            .await
            .status(),
        409
    );
    let (verdict, _, detail) =
        wait_for(&s.gh, "pg.statement", "DELETE FROM customers WHERE id = 2");
    assert_eq!(verdict, "approved");
    assert_eq!(detail["approval"]["outcome"]["by"], "dora");

    // A denial comes back as the statement's error; the session goes on.
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    let gh = &s.gh;
    let deleting = client.execute("DELETE FROM customers WHERE id = 1", &[]);
    let deciding = async {
        let id = waiting_approvals(gh, &dba).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            decide(gh, &dba, &id, "deny", Some("not during the audit"))
                .await
                .status(),
            200
        );
    };
    let (result, ()) = tokio::join!(deleting, deciding);
    let e = result.unwrap_err();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert!(
        db.message()
            .contains("denied by dora: not during the audit"),
        "{}",
        db.message()
    );
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // An approved statement's results are masked like any other.
    let reading = client.query_one("SELECT email FROM vault", &[]);
    let approving = async {
        let id = waiting_approvals(gh, &dba).await[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(decide(gh, &dba, &id, "approve", None).await.status(), 200);
    };
    let (row, ()) = tokio::join!(reading, approving);
    assert_eq!(row.unwrap().get::<_, String>(0), "ca***********.com");

    // Silence is a denial too.
    let e = client
        .execute("INSERT INTO audit_log VALUES ('by hand')", &[])
        .await
        .unwrap_err();
    assert!(
        e.as_db_error()
            .unwrap()
            .message()
            .contains("was not given within 1 s"),
        "{e}"
    );
    assert_eq!(
        s.cluster.app_sql("shop", "SELECT count(*) FROM audit_log"),
        "0\n"
    );
}

#[test]
fn replay_prints_the_session_as_a_transcript() {
    let s = setup();
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELECT name, email FROM customers ORDER BY id;\nDROP TABLE customers;\n",
    );
    assert!(out.status.success() || !stderr(&out).is_empty());
    wait_for(&s.gh, "pg.statement", "DROP TABLE customers");
    let session: String =
        s.gh.audit_db()
            .query_row(
                "SELECT id FROM sessions WHERE protocol = 'postgres' LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
    // The session's end is recorded once the client has gone.
    for _ in 0..50 {
        let ended: Option<i64> =
            s.gh.audit_db()
                .query_row(
                    "SELECT ended_at_ms FROM sessions WHERE id = ?1",
                    [&session],
                    |r| r.get(0),
                )
                .unwrap();
        if ended.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = s.gh.cli(&["audit", "replay", &session]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("-- caller sql-bot (agent) [dev]"), "{text}");
    assert!(text.contains("-- connected to database shop"), "{text}");
    assert!(
        text.contains("shop=> SELECT name, email FROM customers ORDER BY id;"),
        "{text}"
    );
    assert!(
        text.contains("allowed · 2 rows · SELECT 2 · masked: email"),
        "{text}"
    );
    assert!(text.contains("shop=> DROP TABLE customers;"), "{text}");
    assert!(
        text.contains("DENIED by sql-guard: schema changes need a DBA"),
        "{text}"
    );
    assert!(text.contains("-- session ended after"), "{text}");
    let missing = s.gh.cli(&["audit", "replay", "nope"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no session nope"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn upstream_logins_with_md5_and_trust_and_a_wrong_held_password() {
    use gatehouse_tests::pg_cluster::{MD5_PASSWORD, MD5_USER, TRUST_USER};
    let cluster = PgCluster::start();
    let gh = GatehouseBuilder::new()
        .env("LEGACY_PW", MD5_PASSWORD)
        .env("WRONG_PW", "not-the-password")
        .postgres_connection(
            "md5",
            &cluster.url(),
            &[],
            "",
            &format!("user = \"{MD5_USER}\"\npassword = {{ env = \"LEGACY_PW\" }}\nallow_cleartext_password = true"),
        )
        .postgres_connection(
            "trust",
            &cluster.url(),
            &[],
            "",
            &format!("user = \"{TRUST_USER}\"\nallow_cleartext_password = true"),
        )
        .postgres_connection(
            "wrong",
            &cluster.url(),
            &[],
            "",
            "user = \"app\"\npassword = { env = \"WRONG_PW\" }\nallow_cleartext_password = true",
        )
        .start();
    let key = gh.create_key("bot", &[]);
    for (conn, user) in [("md5", MD5_USER), ("trust", TRUST_USER)] {
        let out = psql(&gh, conn, &key, "postgres", "SELECT current_user;\n");
        assert!(out.status.success(), "{conn}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{user}\n"));
    }
    let out = psql(&gh, "wrong", &key, "postgres", "SELECT 1;\n");
    assert!(!out.status.success());
    // The server's own refusal, passed on; the held role and password stay hidden.
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
    let (_, _, detail) = wait_for(&gh, "pg.connect", "failed");
    assert_eq!(detail["error"]["sqlstate"], "28P01");
}

#[test]
fn tls_listener_serves_psql_with_sslmode_require() {
    let cluster = PgCluster::start();
    let certs = tempfile::tempdir().unwrap();
    let cert = gatehouse_tests::tls::TestCert::generate(certs.path());
    let gh = GatehouseBuilder::new()
        .postgres_connection(
            "secure",
            &cluster.url(),
            &[],
            &format!(
                "tls = {{ cert_file = {:?}, key_file = {:?} }}",
                cert.cert.display().to_string(),
                cert.key.display().to_string()
            ),
            "",
        )
        .start();
    let key = gh.create_key("bot", &[]);
    let out = gatehouse_tests::pg_client::psql_args(
        &gh,
        "secure",
        &key,
        "shop",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n",
        &["-v", "ON_ERROR_STOP=1"],
    );
    // psql's default sslmode=prefer negotiates TLS with Gatehouse; the upstream leg is plain here.
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "f\n");
    let verify = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=agent dbname=shop sslmode=verify-ca sslrootcert={}",
            gh.port("secure"),
            cert.cert.display()
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT 'over tls'"])
        .env("PGPASSWORD", &key)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert_eq!(stdout(&verify), "over tls\n");
    let plain = std::process::Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=agent dbname=shop sslmode=disable",
            gh.port("secure")
        ))
        .args(["-X", "-c", "SELECT 1"])
        .env("PGPASSWORD", &key)
        .output()
        .unwrap();
    assert!(
        stderr(&plain).contains("accepts credentials only over TLS"),
        "{}",
        stderr(&plain)
    );
}

#[test]
fn bad_client_messages_end_only_that_session() {
    use gatehouse_tests::pg_client::RawSession;
    let s = setup();
    // A declared length over the limit is refused before any memory is taken for it.
    let mut big = RawSession::login(&s.gh, "shop", &s.key, "shop");
    big.send_raw(&[b'Q', 0x7f, 0xff, 0xff, 0xff]);
    let err = big.expect_error();
    assert!(
        err.contains("08P01") && err.contains("larger than the"),
        "{err}"
    );
    assert!(big.try_read().is_none(), "the session should be closed");

    // An unknown message type.
    let mut odd = RawSession::login(&s.gh, "shop", &s.key, "shop");
    odd.send(b'?', b"");
    let err = odd.expect_error();
    assert!(
        err.contains("08P01") && err.contains("unknown message type"),
        "{err}"
    );

    // A Bind that contradicts itself (3 formats for 1 parameter).
    let mut bad_bind = RawSession::login(&s.gh, "shop", &s.key, "shop");
    bad_bind.send(b'P', b"\0SELECT $1::text\0\0\0");
    bad_bind.send(
        b'B',
        &[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, b'x', 0, 0],
    );
    let err = bad_bind.expect_error();
    assert!(
        err.contains("08P01") && err.contains("parameter formats"),
        "{err}"
    );

    // Garbage instead of a startup packet.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", s.gh.port("shop"))).unwrap();
    std::io::Write::write_all(&mut garbage, &[0, 0, 0, 12, 0, 9, 0, 0, 1, 2, 3, 4]).unwrap();
    let mut reply = Vec::new();
    std::io::Read::read_to_end(&mut garbage, &mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.contains("08P01") && reply.contains("unsupported protocol version"),
        "{reply}"
    );

    // Everyone else is unaffected.
    let out = psql(&s.gh, "shop", &s.key, "shop", "SELECT 'still here';\n");
    assert_eq!(stdout(&out), "still here\n", "{}", stderr(&out));
}

#[test]
fn a_client_that_leaves_mid_result_is_recorded_and_others_go_on() {
    use gatehouse_tests::pg_client::RawSession;
    let s = setup();
    let mut raw = RawSession::login(&s.gh, "shop", &s.key, "shop");
    raw.query(
        "SELECT i, 'person' || i || '@example.com' AS email FROM generate_series(1, 2000000) i",
    );
    // Read a little of the result, then vanish.
    let mut rows = 0;
    while rows < 100 {
        if raw.read().0 == b'D' {
            rows += 1;
        }
    }
    drop(raw);
    let (verdict, _, detail) = wait_for(&s.gh, "pg.statement", "generate_series(1, 2000000)");
    assert_eq!(verdict, "error");
    assert!(detail["error"]["sqlstate"] == "08006", "{detail}");
    assert!(detail["rows"].as_u64().unwrap() >= 100, "{detail}");
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "SELECT count(*) FROM customers;\n",
    );
    assert_eq!(stdout(&out), "2\n", "{}", stderr(&out));
}

#[test]
fn a_client_that_leaves_while_its_statement_runs_is_recorded() {
    use gatehouse_tests::pg_client::RawSession;
    let s = setup();
    let mut raw = RawSession::login(&s.gh, "shop", &s.key, "shop");
    // The server answers after the gateway has stopped waiting for it (two
    // seconds after the client left).
    raw.query("SELECT pg_sleep(4)");
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(raw);
    let (verdict, _, detail) = wait_for(&s.gh, "pg.statement", "pg_sleep(4)");
    assert_eq!(verdict, "error", "{detail}");
    assert_eq!(detail["error"]["sqlstate"], "08006", "{detail}");
    assert!(
        detail["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("client left")),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_dies_gives_clients_a_clear_error() {
    let s = setup();
    let client = connect(&s.gh, "shop", &s.key, "shop").await.unwrap();
    let sleeping = tokio::spawn(async move { client.query("SELECT pg_sleep(30)", &[]).await });
    wait_for(&s.gh, "pg.connect", "connect shop");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.cluster.kill();
    let e = sleeping.await.unwrap().unwrap_err();
    let text = format!("{e:?}");
    assert!(
        e.as_db_error().map(|d| d.code().code()) == Some("57P01") || text.contains("closed"),
        "{text}"
    );
    let (_, _, detail) = wait_for(&s.gh, "pg.statement", "pg_sleep(30)");
    assert!(!detail["error"].is_null(), "{detail}");
    // New sessions get a clear refusal while the server is down; the gateway lives on.
    let out = psql(&s.gh, "shop", &s.key, "shop", "SELECT 1;\n");
    assert!(
        stderr(&out).contains("Gatehouse could not open a session on the database server"),
        "{}",
        stderr(&out)
    );
    let health = gatehouse_tests::http_client()
        .get(s.gh.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn psycopg_from_python_works_through_the_gateway() {
    let python = gatehouse_tests::root().join("target/py/bin/python");
    assert!(
        python.exists(),
        "run `make py-deps` (make test does) for psycopg"
    );
    let s = setup();
    let out = std::process::Command::new(&python)
        .arg(gatehouse_tests::root().join("tests/python/pg_checks.py"))
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", s.gh.port("shop").to_string())
        .env("PGDATABASE", "shop")
        .env("PGPASSWORD", &s.key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["server_user"], "app");
    assert_eq!(
        seen["text"],
        json!(["al***********.com", "[MASKED:credit-card]"])
    );
    assert_eq!(
        seen["binary"],
        json!(["al***********.com", "[MASKED:credit-card]"])
    );
    assert_eq!(seen["drop"]["sqlstate"], "42501");
    assert_eq!(seen["drop"]["detail"], "policy: sql-guard");
    assert_eq!(seen["after_drop"], 2);
    assert_eq!(seen["pipeline"], json!(["42501", "Alice"]));
    assert_eq!(seen["after_pipeline"], "ok");
    assert_eq!(seen["copy_out"]["sqlstate"], "0A000", "{seen}");
    assert!(
        seen["copy_out"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be masked by column")
    );
    assert_eq!(seen["count"], 102);
}

#[test]
fn notices_and_notifications_pass_through() {
    let s = setup();
    s.cluster.app_sql(
        "shop",
        "CREATE FUNCTION hello() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'hello from plpgsql'; RETURN 1; END $$",
    );
    let out = psql(
        &s.gh,
        "shop",
        &s.key,
        "shop",
        "LISTEN jobs;\nNOTIFY jobs, 'ready';\nSELECT hello();\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("Asynchronous notification \"jobs\" with payload \"ready\""),
        "{text}"
    );
    assert!(text.contains("NOTICE:  hello from plpgsql"), "{text}");
}

#[test]
fn upstream_tls_is_verified_against_the_configured_ca() {
    let certs = tempfile::tempdir().unwrap();
    let cert = gatehouse_tests::tls::TestCert::generate(certs.path());
    let cluster = PgCluster::start_tls(&cert.cert, &cert.key);
    let other_dir = tempfile::tempdir().unwrap();
    let other = gatehouse_tests::tls::TestCert::generate(other_dir.path());
    let gh = GatehouseBuilder::new()
        .postgres_connection(
            "verified",
            &cluster.url(),
            &[],
            &format!("upstream_ca_file = {:?}", cert.cert.display().to_string()),
            "upstream_tls = \"verify-full\"\nallow_cleartext_password = true",
        )
        .postgres_connection(
            "wrong-ca",
            &cluster.url(),
            &[],
            &format!("upstream_ca_file = {:?}", other.cert.display().to_string()),
            "upstream_tls = \"verify-full\"\nallow_cleartext_password = true",
        )
        .start();
    let key = gh.create_key("bot", &[]);
    let out = psql(
        &gh,
        "verified",
        &key,
        "shop",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "t\n");
    let out = psql(&gh, "wrong-ca", &key, "shop", "SELECT 1;\n");
    let err = stderr(&out);
    assert!(err.contains("TLS to the database server failed"), "{err}");
    assert!(!err.contains(gatehouse_tests::pg_cluster::APP_PASSWORD));
}

/// A fake server that logs anyone in, then answers the first query with
/// `reply` (raw bytes) and keeps the connection open.
fn lying_upstream(reply: Vec<u8>) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut startup = vec![0u8; i32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut startup).unwrap();
        // AuthenticationOk, BackendKeyData, ReadyForQuery.
        s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]).unwrap();
        s.write_all(&[b'K', 0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 9])
            .unwrap();
        s.write_all(&[b'Z', 0, 0, 0, 5, b'I']).unwrap();
        let mut head = [0u8; 5];
        if s.read_exact(&mut head).is_err() {
            return;
        }
        let mut body =
            vec![0u8; i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4];
        let _ = s.read_exact(&mut body);
        let _ = s.write_all(&reply);
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    (addr, handle)
}

#[test]
fn malformed_and_oversized_upstream_messages_end_the_session_cleanly() {
    // A RowDescription that promises two columns and holds one; a DataRow declaring 2 GiB.
    let mut bad_row_description = vec![b'T', 0, 0, 0, 0, 0, 2];
    bad_row_description.extend_from_slice(b"id\0");
    bad_row_description.extend_from_slice(&[0; 18]);
    let n = (bad_row_description.len() - 1) as i32;
    bad_row_description[1..5].copy_from_slice(&n.to_be_bytes());
    let oversized = vec![b'D', 0x7f, 0xff, 0xff, 0xff];
    for (reply, expect) in [
        (bad_row_description, "malformed message"),
        (oversized, "larger than the"),
    ] {
        let (addr, server) = lying_upstream(reply);
        let gh = GatehouseBuilder::new()
            .policy("sql-guard", "sql-guard", Some(guard_settings()))
            .postgres_connection(
                "liar",
                &format!("postgres://{addr}"),
                &["sql-guard"],
                "",
                "user = \"app\"\nallow_cleartext_password = true",
            )
            .start();
        let key = gh.create_key("bot", &[]);
        let out = psql(&gh, "liar", &key, "shop", "SELECT name FROM customers;\n");
        let err = stderr(&out);
        assert!(err.contains("Gatehouse lost the database session"), "{err}");
        assert!(err.contains(expect), "{err}");
        let (verdict, _, detail) = wait_for(&gh, "pg.statement", "SELECT name FROM customers");
        assert_eq!(verdict, "error");
        assert_eq!(detail["error"]["sqlstate"], "08006", "{detail}");
        drop(gh);
        let _ = server.join();
    }
}
