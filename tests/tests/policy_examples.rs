//! The policies of `policy-examples/`. The same SQL policy in three
//! languages: the Rust, Python (componentize-py) and JavaScript
//! (ComponentizeJS) components pass one shared fixture set offline, and,
//! loaded side by side into a running gateway, make the same decisions for
//! a real PostgreSQL client: DROP refused with 42501 unless the caller is in
//! `dba`, the `email` column masked. A truncated component dropped in beside
//! them is reported as a load error while the three keep serving. The HTTP
//! policy in Python passes its fixtures and decides for curl through a
//! running gateway: DELETE refused unless the caller is in `ops`, e-mail
//! addresses masked in responses. And every example is what `gatehouse
//! policy new` generates for its language and hook, so the two cannot drift.
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
use gatehouse_tests::{Gatehouse, GatehouseBuilder, Upstream, gatehouse_bin, root};
use serde_json::{Value, json};

const LANGS: [&str; 3] = ["rust", "python", "js"];

/// An interpreter's fresh instance under a debug host takes milliseconds;
/// the deadline such a policy would be given.
const TIMEOUT_MS: &str = "2000";

/// Builds the examples once per test binary; returns the folder holding
/// `rust-sql.wasm`, `python-sql.wasm`, `js-sql.wasm` and `python-http.wasm`.
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

/// `gatehouse policy test` on an example; the JSON report.
fn policy_test(example: &str, fixtures: &str) -> Value {
    let out = Command::new(gatehouse_bin())
        .args(["policy", "test"])
        .arg(examples().join(format!("{example}.wasm")))
        .arg("--fixtures")
        .arg(root().join("policy-examples/fixtures").join(fixtures))
        .args(["--timeout-ms", TIMEOUT_MS, "--format", "json"])
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{example}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{example}: {report}");
    assert_eq!(report["failed"], 0, "{example}: {report}");
    assert_eq!(report["policy"], format!("{example} 0.1.0"));
    report
}

#[test]
fn every_language_passes_the_shared_fixtures() {
    for lang in LANGS {
        let report = policy_test(&format!("{lang}-sql"), "sql");
        assert_eq!(report["passed"], 4, "{lang}: {report}");
    }
}

#[test]
fn the_python_http_policy_passes_its_fixtures() {
    let report = policy_test("python-http", "http");
    assert_eq!(report["passed"], 3, "{report}");
}

/// An example as `gatehouse policy new` generates it for its language and
/// hook: each generated file and the example file it must equal.
struct Generated {
    lang: &'static str,
    name: &'static str,
    hook: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const GENERATED: &[Generated] = &[
    Generated {
        lang: "rust",
        name: "rust-sql",
        hook: "postgres",
        files: &[
            ("src/lib.rs", "rust-sql/src/lib.rs"),
            ("fixtures/postgres.yaml", "fixtures/sql/postgres.yaml"),
        ],
    },
    Generated {
        lang: "python",
        name: "python-sql",
        hook: "postgres",
        files: &[("app.py", "python-sql/app.py")],
    },
    Generated {
        lang: "js",
        name: "js-sql",
        hook: "postgres",
        files: &[("policy.js", "js-sql/policy.js")],
    },
    Generated {
        lang: "python",
        name: "python-http",
        hook: "http",
        files: &[
            ("app.py", "python-http/app.py"),
            ("fixtures/http.yaml", "fixtures/http/http.yaml"),
        ],
    },
];

/// No drift between the templates and the examples: each example's policy
/// source and fixture are byte for byte what `gatehouse policy new`
/// generates, except that the Rust example builds from the repository's
/// contract (`wit: "../../wit"`) instead of a copy. After changing a
/// template, `GATEHOUSE_BLESS_EXAMPLES=1` rewrites the examples (then review
/// the diff and rebuild them with `make examples`).
#[test]
fn examples_are_what_policy_new_generates() {
    let bless = std::env::var_os("GATEHOUSE_BLESS_EXAMPLES").is_some();
    let dir = tempfile::tempdir().unwrap();
    let mut drifted = Vec::new();
    for Generated {
        lang,
        name,
        hook,
        files,
    } in GENERATED
    {
        let out = Command::new(gatehouse_bin())
            .args([
                "policy", "new", name, "--lang", lang, "--hook", hook, "--dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (generated, example) in *files {
            let mut want = std::fs::read_to_string(dir.path().join(name).join(generated)).unwrap();
            if *lang == "rust" {
                want = want.replace(r#"wit: "wit""#, r#"wit: "../../wit""#);
            }
            let path = root().join("policy-examples").join(example);
            if bless {
                std::fs::write(&path, &want).unwrap();
                continue;
            }
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have != want {
                let line = have
                    .lines()
                    .zip(want.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or(have.lines().count().min(want.lines().count()));
                drifted.push(format!(
                    "policy-examples/{example} differs from `gatehouse policy new {name} --lang {lang} --hook {hook}` ({generated}) at line {}:\n  example:   {:?}\n  generated: {:?}",
                    line + 1,
                    have.lines().nth(line).unwrap_or("<end>"),
                    want.lines().nth(line).unwrap_or("<end>"),
                ));
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "{}\nchange the template (host/src/cli/policy_new*), or rewrite the examples from it with GATEHOUSE_BLESS_EXAMPLES=1",
        drifted.join("\n")
    );
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

/// The HTTP policy in Python through a running gateway, for curl: a DELETE
/// from outside `ops` refused with the policy's reason, the same DELETE from
/// `ops` forwarded, and the e-mail address in an upstream answer masked.
#[tokio::test(flavor = "multi_thread")]
async fn python_http_decides_for_curl_in_a_running_gateway() {
    let bytes = std::fs::read(examples().join("python-http.wasm")).unwrap();
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .config(&format!("[policies.defaults]\ntimeout_ms = {TIMEOUT_MS}"))
        .http_connection("api", &upstream.url(), &["python-http"], "")
        .start();
    let settings = json!({"allow_groups": ["ops"]});
    deploy(gh.dir(), "python-http", &bytes, Some(&settings));
    wait_until_loaded(&gh, &["python-http".to_string()]).await;
    let dev = gh.create_key("app-bot", &["dev"]);
    let ops = gh.create_key("ops-bot", &["ops"]);
    // (status, body) of one curl request.
    let curl = |method: &str, path: &str, key: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-X", method, "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {key}"))
            .arg(gh.url("api", path))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').expect("status line");
        (status.to_string(), body.to_string())
    };

    let (status, body) = curl("DELETE", "/items/1", &dev);
    assert_eq!(status, "403", "{body}");
    assert!(
        body.contains("DELETE needs one of the allowed groups"),
        "{body}"
    );
    assert_eq!(
        curl("DELETE", "/items/1", &ops),
        ("200".to_string(), "ok DELETE /items/1".to_string())
    );
    let (status, body) = curl("GET", "/json", &dev);
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("[MASKED:email]"), "{body}");
    assert!(!body.contains("alice@example.com"), "{body}");
}
