//! The same SQL policy in three languages (`policy-examples/`): the Rust,
//! Python (componentize-py) and JavaScript (ComponentizeJS) components pass
//! one shared fixture set offline, and, loaded side by side into a running
//! gateway, make the same decisions for a real PostgreSQL client: DROP
//! refused with 42501 unless the caller is in `dba`, the `email` column
//! masked. A truncated component dropped in beside them is reported as a load
//! error while the three keep serving.
//!
//! The components are built here with `make examples` (incremental; about a
//! minute from scratch: componentize-py and ComponentizeJS, the latter
//! installed by `npm ci`), so `make test` does not have to wait for them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gatehouse_tests::pg_client::connect;
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, gatehouse_bin, root};
use serde_json::{Value, json};

const LANGS: [&str; 3] = ["rust", "python", "js"];

/// An interpreter's fresh instance under a debug host takes milliseconds;
/// the deadline such a policy would be given.
const TIMEOUT_MS: &str = "2000";

/// Builds the three examples once per test binary; returns the folder
/// holding `rust-sql.wasm`, `python-sql.wasm` and `js-sql.wasm`.
fn examples() -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = Command::new("make")
            .arg("examples")
            .env("CARGO", env!("CARGO"))
            .current_dir(root())
            .output()
            .map_err(|e| format!("run make: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`make examples` failed (needs target/py from `make py-deps`, Node and npm):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    root().join("target/policy-examples")
}

fn wasm(lang: &str) -> PathBuf {
    examples().join(format!("{lang}-sql.wasm"))
}

#[test]
fn every_language_passes_the_shared_fixtures() {
    let fixtures = root().join("policy-examples/fixtures/sql");
    for lang in LANGS {
        let out = Command::new(gatehouse_bin())
            .args(["policy", "test"])
            .arg(wasm(lang))
            .arg("--fixtures")
            .arg(&fixtures)
            .args(["--timeout-ms", TIMEOUT_MS, "--format", "json"])
            .env("GATEHOUSE_LOG", "warn")
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{lang}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(out.status.success(), "{lang}: {report}");
        assert_eq!(report["failed"], 0, "{lang}: {report}");
        assert_eq!(report["passed"], 4, "{lang}: {report}");
        assert_eq!(report["policy"], format!("{lang}-sql 0.1.0"));
    }
}

/// Copies a component into the gateway's policy folder the way operators
/// deploy (a temporary name, then a rename).
fn deploy(dir: &std::path::Path, name: &str, bytes: &[u8], settings: Option<&Value>) {
    let policies = dir.join("policies");
    if let Some(s) = settings {
        std::fs::write(policies.join(format!("{name}.json")), s.to_string()).unwrap();
    }
    let tmp = policies.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, policies.join(format!("{name}.wasm"))).unwrap();
}

/// What one connection decided for the scenario's statements, in a form
/// the three languages must agree on.
#[derive(Debug, PartialEq)]
struct Decisions {
    drop_by_dev: String,
    drop_by_dba: String,
    rows: Vec<(i32, String)>,
}

async fn decide(gh: &Gatehouse, lang: &str, dev: &str, dba: &str) -> Decisions {
    let outcome = |r: Result<u64, tokio_postgres::Error>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => format!("not a server error: {e}"),
        },
    };
    let c = connect(gh, lang, dev, "shop").await.unwrap();
    let drop = format!("DROP TABLE scratch_{lang}");
    let drop_by_dev = outcome(c.execute(&drop, &[]).await);
    // The session stays usable after the refusal.
    let rows = c
        .query("SELECT id, email FROM users ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let admin = connect(gh, lang, dba, "shop").await.unwrap();
    let drop_by_dba = outcome(admin.execute(&drop, &[]).await);
    Decisions {
        drop_by_dev,
        drop_by_dba,
        rows,
    }
}

async fn policies(gh: &Gatehouse) -> Value {
    gatehouse_tests::http_client()
        .get(gh.admin_url("/v1/policies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until every policy in `names` is loaded, or fails on a load error.
async fn wait_until_loaded(gh: &Gatehouse, names: &[String]) {
    let started = Instant::now();
    loop {
        let status = policies(gh).await;
        let list = status["policies"].as_array().unwrap();
        let loaded = names
            .iter()
            .all(|n| list.iter().any(|p| &p["name"] == n && p["loaded"] == true));
        if loaded {
            return;
        }
        for p in list {
            assert!(p["last_error"].is_null(), "{status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not loaded after 300 s: {status}\n{}",
            gh.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the admin API reports a load error for `name`; returns it.
async fn load_error(gh: &Gatehouse, name: &str) -> (String, Value) {
    let started = Instant::now();
    loop {
        let status = policies(gh).await;
        let p = status["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned();
        if let Some(p) = p
            && let Some(err) = p["last_error"].as_str()
        {
            return (err.to_string(), status);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no load error reported for {name}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_language_decides_the_same_in_a_running_gateway() {
    let components: Vec<(&str, Vec<u8>)> = LANGS
        .iter()
        .map(|l| (*l, std::fs::read(wasm(l)).unwrap()))
        .collect();
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE users (id int, email text);\
         INSERT INTO users VALUES (1, 'ann@example.com'), (2, 'bob@example.org');\
         CREATE TABLE scratch_rust (id int); CREATE TABLE scratch_python (id int);\
         CREATE TABLE scratch_js (id int);",
    );
    let mut builder =
        GatehouseBuilder::new().config(&format!("[policies.defaults]\ntimeout_ms = {TIMEOUT_MS}"));
    for lang in LANGS {
        builder = builder.postgres_connection(
            lang,
            &cluster.url(),
            &[&format!("{lang}-sql")],
            "",
            "allow_cleartext_password = true",
        );
    }
    // Deployed into the running gateway: the interpreters' cold compile
    // (tens of seconds under a debug host with an empty cache) happens while
    // it serves, not inside its start-up wait.
    let gh = builder.start();
    let settings = json!({"allow_groups": ["dba"]});
    for (lang, bytes) in &components {
        deploy(gh.dir(), &format!("{lang}-sql"), bytes, Some(&settings));
    }
    wait_until_loaded(&gh, &LANGS.map(|l| format!("{l}-sql"))).await;
    let dev = gh.create_key("app-bot", &["dev"]);
    let dba = gh.create_key("dba-bot", &["dba"]);

    let expected = Decisions {
        drop_by_dev: "42501: denied by policy: DROP needs one of the allowed groups".into(),
        drop_by_dba: "ok".into(),
        rows: vec![(1, "[MASKED:email]".into()), (2, "[MASKED:email]".into())],
    };
    for lang in LANGS {
        assert_eq!(decide(&gh, lang, &dev, &dba).await, expected, "{lang}");
    }

    // A truncated component beside them: reported as a load error, and the
    // three keep serving (the DROP tables are gone, so only the refusal and
    // the masks are asked again).
    let rust = &components[0].1;
    deploy(gh.dir(), "broken", &rust[..rust.len() / 2], None);
    let (error, status) = load_error(&gh, "broken").await;
    assert!(error.contains("not a valid component"), "{error}");
    for lang in LANGS {
        let p = status["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == format!("{lang}-sql"))
            .unwrap();
        assert_eq!(p["loaded"], true, "{status}");
        assert!(p["last_error"].is_null(), "{status}");
    }
    assert!(gh.log().contains("policy failed to load"));
    for lang in LANGS {
        let got = decide(&gh, lang, &dev, &dba).await;
        assert_eq!(got.drop_by_dev, expected.drop_by_dev, "{lang}");
        assert_eq!(got.rows, expected.rows, "{lang}");
        assert!(got.drop_by_dba.starts_with("42P01"), "{lang}: {got:?}");
    }
}
