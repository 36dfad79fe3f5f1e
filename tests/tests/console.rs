//! The web console: a person signs in at the real OpenID provider in
//! headless Chromium (playwright-core driving the system's browser), approves
//! a PostgreSQL statement an agent is waiting on, and opens its session
//! replay; screenshots are kept under `target/test-artifacts/console/`. The
//! failure paths (forged sign-in, missing CSRF header, dead session) are
//! checked over plain HTTP.

use std::path::Path;
use std::process::{Command, Output};

use gatehouse_tests::oidc::OidcProvider;
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, root};
use serde_json::{Value, json};

const APPROVER: &str = "root@example.com";
const HELD_SQL: &str = "DELETE FROM customers WHERE id = 2";

/// A gateway trusting `idp` for console sign-in, with a PostgreSQL
/// connection whose deletes wait for a `gatehouse-admins` approval.
fn gateway(idp: &OidcProvider, cluster: &PgCluster) -> Gatehouse {
    let guard = json!({"rules": [{"action": "approve", "kinds": ["delete"], "approvers": ["gatehouse-admins"],
                                  "timeout_secs": 120, "reason": "deletes need an admin's OK"}]});
    GatehouseBuilder::new()
        .admin_groups(&["gatehouse-admins"])
        .policy("sql-guard", "sql-guard", Some(guard))
        .config(&format!(
            "[[identity.oidc]]\nissuer = \"{}\"\naudience = \"gatehouse\"\nconsole_client_id = \"gatehouse-console\"\n",
            idp.issuer
        ))
        .postgres_connection(
            "shop",
            &cluster.url(),
            &["sql-guard"],
            "",
            "allow_cleartext_password = true",
        )
        .start()
}

fn browser_ready() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("no /usr/bin/chromium: run `make console-harness` (make test does)".into());
    }
    if !root()
        .join("tests/console/node_modules/playwright-core")
        .exists()
    {
        return Err("no playwright-core in tests/console: run `make console-harness`".into());
    }
    Ok(())
}

fn admin_origin(gh: &Gatehouse) -> String {
    gh.admin_url("").trim_end_matches('/').to_string()
}

#[test]
fn a_person_signs_in_approves_a_waiting_statement_and_replays_its_session() {
    browser_ready().unwrap();
    let idp = OidcProvider::start();
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'Alice'), (2, 'Bob');",
    );
    let gh = gateway(&idp, &cluster);
    let bot = gh.create_key("sql-bot", &["dev"]);

    let port = gh.port("shop");
    let waiting = std::thread::spawn(move || {
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
            .args(["-X", "-A", "-t", "-c", HELD_SQL])
            .args(["-c", "SELECT count(*) FROM customers"])
            .env("PGPASSWORD", bot)
            .env_remove("PGSSLMODE")
            .output()
            .unwrap()
    });

    let artifacts = root().join("target/test-artifacts/console");
    let _ = std::fs::remove_dir_all(&artifacts);
    let browser: Output = Command::new("node")
        .arg("approve.mjs")
        .current_dir(root().join("tests/console"))
        .env("CONSOLE_URL", admin_origin(&gh))
        .env("LOGIN", APPROVER)
        .env("EXPECT", HELD_SQL)
        .env("SCREENSHOTS", &artifacts)
        .output()
        .expect("run node tests/console/approve.mjs");
    assert!(
        browser.status.success(),
        "the browser run failed:\n{}\n{}\n--- gatehouse log ---\n{}",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr),
        gh.log()
    );
    let seen: Value =
        serde_json::from_slice(&browser.stdout).expect("one JSON line from the browser");

    // What the approver saw: the statement, who asked, the policy's reason.
    let card = seen["approval_text"].as_str().unwrap();
    assert!(
        card.contains(HELD_SQL) && card.contains("sql-bot"),
        "{card}"
    );
    assert!(card.contains("deletes need an admin's OK"), "{card}");
    assert!(
        seen["status"].as_str().unwrap().contains("approved"),
        "{seen}"
    );
    let decided = seen["decided_text"].as_str().unwrap();
    assert!(
        decided.contains(APPROVER),
        "the decision names the approver: {decided}"
    );

    // The agent's statement ran once approved; its session went on.
    let out = waiting.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim_end().ends_with('1'),
        "one customer left: {stdout}"
    );

    // The replay shows the held statement and its approval, step by step.
    let steps: Vec<&str> = seen["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        steps.iter().any(|s| s.contains("DELETE FROM customers")),
        "{steps:?}"
    );
    assert!(
        seen["counter"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Step {}", steps.len())),
        "{seen}"
    );
    assert!(seen["session_rows"].as_u64().unwrap() >= 1, "{seen}");
    assert!(
        seen["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("sql-guard")),
        "{seen}"
    );
    assert_eq!(seen["console_errors"], json!([]), "the pages logged errors");
    for shot in [
        "01-signin",
        "02-pending-approval",
        "03-approved",
        "04-replay-first-step",
        "05-replay-last-step",
    ] {
        let f = artifacts.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&f)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{} was not kept",
            f.display()
        );
    }
}

#[tokio::test]
async fn forged_sign_ins_cross_site_writes_and_dead_sessions_are_refused() {
    let idp = OidcProvider::start();
    let cluster = PgCluster::start();
    let gh = gateway(&idp, &cluster);
    let origin = admin_origin(&gh);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Not signed in: the sign-in page, locked down.
    let r = http.get(format!("{origin}/console/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let page = r.text().await.unwrap();
    assert!(
        page.contains("/console/login?issuer=0") && page.contains(&idp.issuer),
        "{page}"
    );

    // Starting a sign-in goes to the provider with PKCE and a state, and
    // keeps them in an HttpOnly cookie for the callback only.
    let r = http
        .get(format!("{origin}/console/login?issuer=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&idp.issuer)
            && to.contains("code_challenge_method=S256")
            && to.contains("state="),
        "{to}"
    );
    assert!(
        to.contains(&format!(
            "redirect_uri={}",
            urlencode(&format!("{origin}/console/callback"))
        )),
        "{to}"
    );
    let flow = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        flow.contains("HttpOnly") && flow.contains("Path=/console/callback"),
        "{flow}"
    );

    // A callback without the flow cookie, or with another state, signs no one in.
    for (cookie, query) in [
        (None, "code=abc&state=xyz"),
        (
            Some(flow.split(';').next().unwrap().to_string()),
            "code=abc&state=not-the-state",
        ),
    ] {
        let mut req = http.get(format!("{origin}/console/callback?{query}"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        let session_set = r.headers().get_all("set-cookie").iter().any(|c| {
            c.to_str().unwrap().starts_with("gatehouse_console=")
                && !c.to_str().unwrap().starts_with("gatehouse_console=;")
        });
        assert!(!session_set, "a forged callback set a session");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("could not be matched to this browser"),
            "{body}"
        );
    }
    // The provider's refusal is shown, escaped.
    let r = http
        .get(format!(
            "{origin}/console/callback?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E"
        ))
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("access_denied &lt;b&gt;no&lt;/b&gt;"),
        "{body}"
    );
    let r = http
        .get(format!("{origin}/console/login?issuer=7"))
        .send()
        .await
        .unwrap();
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no console sign-in is configured at issuer #7")
    );

    // A session cookie is a bearer token: garbage is a 401, and a real
    // person's token works for reads but writes need the console header.
    let r = http
        .get(format!("{origin}/console/me"))
        .header("cookie", "gatehouse_console=not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A whole sign-in over HTTP: the login link, the provider's pages, the
    // callback, which sets the session cookie.
    let person = idp.person(APPROVER);
    let (landed, page) = person
        .sign_in_at(&format!("{origin}/console/login?issuer=0"))
        .await;
    assert!(
        landed.starts_with(&format!("{origin}/console/")),
        "{landed}: {page}"
    );
    let token = person
        .cookie(&format!("{origin}/console/"), "gatehouse_console")
        .unwrap_or_else(|| panic!("no session cookie after signing in: {page}"));
    assert!(
        person
            .cookie(
                &format!("{origin}/console/callback"),
                "gatehouse_console_flow"
            )
            .is_none(),
        "the flow cookie is cleared"
    );
    let cookie = format!("gatehouse_console={token}");
    let me: Value = http
        .get(format!("{origin}/console/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["subject"], APPROVER, "{me}");
    let r = http
        .get(format!("{origin}/v1/approvals"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{origin}/v1/approvals/some-id/approve"))
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cookie-only write must be refused");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Gatehouse-Console"),
        "{body}"
    );
    let r = http
        .post(format!("{origin}/v1/approvals/some-id/approve"))
        .header("cookie", &cookie)
        .header("x-gatehouse-console", "1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "with the header the API itself answers");

    // Signing out clears the cookie.
    let r = http
        .post(format!("{origin}/console/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("gatehouse_console=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
