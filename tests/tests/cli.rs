//! The command line outside `serve`: `policy check`, `keys`, `approvals`
//! and `sessions` through a gateway's admin API, and errors.

use std::process::{Command, Output};
use std::time::Duration;

use gatehouse_tests::openapi::OpenApi;
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::{GatehouseBuilder, gatehouse_bin, policy_wasm};
use serde_json::{Value, json};

fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(gatehouse_bin())
        .args(args)
        .output()
        .expect("run gatehouse")
}

#[test]
fn policy_check_describes_a_good_component() {
    let out = gatehouse(&[
        "policy",
        "check",
        policy_wasm("http-guard").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["description"]["name"], "http-guard");
    assert_eq!(v["description"]["protocols"], serde_json::json!(["http"]));
    assert_eq!(v["hooks"], serde_json::json!(["http"]));
    assert_eq!(v["digest"].as_str().unwrap().len(), 64);
}

#[test]
fn policy_check_explains_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let out = gatehouse(&["policy", "check", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid component"));

    let settings = dir.path().join("bad.json");
    std::fs::write(&settings, r#"{"deny": [{"methods": ["GTE"]}]}"#).unwrap();
    let out = gatehouse(&[
        "policy",
        "check",
        policy_wasm("http-guard").to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("settings rejected by the policy") && err.contains("GTE"),
        "{err}"
    );

    let out = gatehouse(&["policy", "check", "/nonexistent.wasm"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.wasm"));
}

#[test]
fn a_missing_config_file_is_named() {
    let out = gatehouse(&["serve", "--config", "/nonexistent/gatehouse.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gatehouse.toml"));
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A DELETE held for a DBA's approval on a real PostgreSQL session, then
/// the approval and the session through the CLI as different people.
#[test]
fn approvals_and_sessions_through_the_admin_api() {
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'Alice'), (2, 'Bob');",
    );
    let guard = json!({"rules": [{"action": "approve", "kinds": ["delete"], "approvers": ["dba"],
                                  "timeout_secs": 60, "reason": "deletes need a DBA's OK"}]});
    let gh = GatehouseBuilder::new()
        .admin_groups(&["gatehouse-admins"])
        .auditor_groups(&["auditors"])
        .policy("sql-guard", "sql-guard", Some(guard))
        .postgres_connection(
            "shop",
            &cluster.url(),
            &["sql-guard"],
            "",
            "allow_cleartext_password = true",
        )
        .start();
    let bot = gh.create_key("sql-bot", &["dev"]);
    // The approver is another person than the one the bot acts for.
    let dba = gh.cli(&[
        "keys",
        "create",
        "--name",
        "dora",
        "--owner",
        "dora@example.com",
        "--groups",
        "dba",
    ]);
    assert!(dba.status.success(), "{}", err(&dba));
    let dba = out(&dba).trim().to_string();
    let auditor = gh.create_key("audit-bot", &["auditors"]);

    let port = gh.port("shop");
    let waiting = {
        let bot = bot.clone();
        std::thread::spawn(move || {
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "agent",
                    "-d",
                    "shop",
                ])
                .args(["-X", "-A", "-t", "-c", "DELETE FROM customers WHERE id = 2"])
                .args(["-c", "SELECT count(*) FROM customers"])
                .env("PGPASSWORD", bot)
                .env_remove("PGSSLMODE")
                .output()
                .unwrap()
        })
    };

    // The held statement shows up in the list, as a table and as JSON.
    let mut listed = Value::Null;
    for _ in 0..200 {
        let o = gh.cli_remote(&dba, &["approvals", "list", "--json"]);
        assert!(o.status.success(), "{}", err(&o));
        listed = serde_json::from_slice(&o.stdout).unwrap();
        if !listed["approvals"].as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    OpenApi::load().check("GET", "/v1/approvals", 200, "application/json", &listed);
    let id = listed["approvals"][0]["id"]
        .as_str()
        .expect("an approval waits")
        .to_string();
    let table = gh.cli_remote(&dba, &["approvals", "list"]);
    let table = out(&table);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains("DELETE FROM customers WHERE id = 2"),
        "{table}"
    );
    let shown = out(&gh.cli_remote(&dba, &["approvals", "show", &id]));
    assert!(
        shown.contains("requester  sql-bot") && shown.contains("approvers  dba"),
        "{shown}"
    );
    let shown: Value = serde_json::from_slice(
        &gh.cli_remote(&dba, &["approvals", "show", &id, "--json"])
            .stdout,
    )
    .unwrap();
    OpenApi::load().check("GET", "/v1/approvals/{id}", 200, "application/json", &shown);

    // Refusals say what to do.
    let own = gh.cli_remote(&bot, &["approvals", "approve", &id]);
    assert!(!own.status.success());
    assert!(
        err(&own).contains("403") && err(&own).contains("approver groups"),
        "{}",
        err(&own)
    );
    let no_reason = gh.cli_remote(&dba, &["approvals", "deny", &id]);
    assert!(!no_reason.status.success());
    assert!(err(&no_reason).contains("--reason"), "{}", err(&no_reason));
    let bad = gh.cli_remote("ghk_not_a_key", &["approvals", "list"]);
    assert!(
        err(&bad).contains("401") && err(&bad).contains("gatehouse login"),
        "{}",
        err(&bad)
    );

    let approved = gh.cli_remote(
        &dba,
        &["approvals", "approve", &id, "--reason", "known test row"],
    );
    assert!(approved.status.success(), "{}", err(&approved));
    assert!(
        out(&approved).starts_with(&format!("approved {id} as dora")),
        "{}",
        out(&approved)
    );
    let psql = waiting.join().unwrap();
    assert!(psql.status.success(), "{}", err(&psql));
    assert_eq!(out(&psql), "DELETE 1\n1\n");

    // The session, found by an auditor.
    let mut sessions = Value::Null;
    for _ in 0..200 {
        let o = gh.cli_remote(
            &auditor,
            &[
                "sessions",
                "list",
                "--protocol",
                "postgres",
                "--text",
                "count(*)",
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", err(&o));
        sessions = serde_json::from_slice(&o.stdout).unwrap();
        if sessions["sessions"][0]["ended_at_ms"].is_i64() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = sessions["sessions"][0]["id"]
        .as_str()
        .expect("a session")
        .to_string();
    let table = out(&gh.cli_remote(&auditor, &["sessions", "list", "--principal", "sql-bot"]));
    assert!(
        table.starts_with("ID") && table.contains(&session) && table.contains("postgres"),
        "{table}"
    );
    let none = gh.cli_remote(&auditor, &["sessions", "list", "--verdict", "refused"]);
    assert!(
        none.status.success() && out(&none).is_empty(),
        "{}",
        out(&none)
    );
    assert!(err(&none).contains("no sessions match"));

    let shown = out(&gh.cli_remote(&auditor, &["sessions", "show", &session]));
    assert!(shown.contains("principal sql-bot (agent) [dev]"), "{shown}");
    assert!(
        shown.contains("approved") && shown.contains("pg.statement"),
        "{shown}"
    );

    // The replay is the one `gatehouse audit replay` prints from the store.
    let replay = gh.cli_remote(&auditor, &["sessions", "replay", &session]);
    assert!(replay.status.success(), "{}", err(&replay));
    let local = gh.cli(&["audit", "replay", &session]);
    assert_eq!(out(&replay), out(&local));
    assert!(
        out(&replay).contains("shop=> DELETE FROM customers WHERE id = 2"),
        "{}",
        out(&replay)
    );
    assert!(
        out(&replay).contains(&format!("approval {id}: approved")),
        "{}",
        out(&replay)
    );
    let steps: Value = serde_json::from_slice(
        &gh.cli_remote(&auditor, &["sessions", "replay", &session, "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(steps["session"]["id"], session.as_str());

    let export = gh.cli_remote(&auditor, &["sessions", "export", &session]);
    assert!(export.status.success(), "{}", err(&export));
    let lines: Vec<Value> = out(&export)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "session");
    assert!(lines.len() >= 4, "{lines:?}");
    assert!(
        lines[1..]
            .iter()
            .all(|l| l["type"] == "event" && l["event"]["session_id"] == session.as_str())
    );

    // Who may read, and what a typo gets.
    let dev = gh.cli_remote(&bot, &["sessions", "list"]);
    assert!(!dev.status.success());
    assert!(
        err(&dev).contains("403") && err(&dev).contains("auditor groups"),
        "{}",
        err(&dev)
    );
    let missing = gh.cli_remote(
        &auditor,
        &["sessions", "show", "0190a0a0-0000-7000-8000-000000000000"],
    );
    assert!(
        err(&missing).contains("404") && err(&missing).contains("no session"),
        "{}",
        err(&missing)
    );
    let bad = gh.cli_remote(&auditor, &["sessions", "list", "--from", "yesterday"]);
    assert!(
        err(&bad).contains("400") && err(&bad).contains("not a time"),
        "{}",
        err(&bad)
    );
    let nowhere = Command::new(gatehouse_bin())
        .args(["sessions", "list"])
        .env_remove("GATEHOUSE_GATEWAY")
        .output()
        .unwrap();
    assert!(err(&nowhere).contains("--gateway"), "{}", err(&nowhere));
}
