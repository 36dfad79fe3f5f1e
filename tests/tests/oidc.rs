//! OpenID Connect bearer tokens from a real provider (`oidc-provider`),
//! obtained through the client-credentials grant, through the HTTP path.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use gatehouse_tests::oidc::OidcProvider;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, Upstream};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    gatehouse_tests::http_client()
}

fn gateway(idp: &OidcProvider, upstream: &Upstream, extra_oidc: &str) -> Gatehouse {
    GatehouseBuilder::new()
        .policy("allow-all", "allow-all", None)
        .config(&format!(
            "[[identity.oidc]]\nissuer = \"{}\"\naudience = \"gatehouse\"\nunknown_kid_refresh_secs = 1\nleeway_secs = 5\n{extra_oidc}\n",
            idp.issuer
        ))
        .http_connection("api", &upstream.url(), &["allow-all"], "allowed_groups = [\"dev\"]")
        .http_connection("ops-only", &upstream.url(), &["allow-all"], "allowed_groups = [\"ops\"]")
        .start()
}

async fn status(gh: &Gatehouse, conn: &str, token: &str) -> (u16, Value) {
    let resp = client()
        .get(gh.url(conn, "/echo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The issuer is discovered in the background; wait until tokens pass.
async fn until_accepted(gh: &Gatehouse, token: &str) {
    let started = Instant::now();
    loop {
        let (s, body) = status(gh, "api", token).await;
        if s == 200 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "token never accepted: {s} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the first recorded exchange; returns the refusals stored before it.
fn refusals_before_first_exchange(gh: &Gatehouse) -> i64 {
    let count = |kind: &str| -> i64 {
        gh.audit_db()
            .query_row("SELECT COUNT(*) FROM events WHERE kind = ?1", [kind], |r| {
                r.get(0)
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while count("http.exchange") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the accepted request was never recorded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    count("auth.refused")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The principal recorded for `subject`, once its first event is written.
fn principal_of(gh: &Gatehouse, subject: &str) -> Value {
    let started = Instant::now();
    loop {
        let found: Option<String> = gh
            .audit_db()
            .query_row(
                "SELECT principal_json FROM sessions WHERE principal_subject = ?1 AND principal_json IS NOT NULL LIMIT 1",
                [subject],
                |r| r.get(0),
            )
            .ok();
        if let Some(json) = found {
            return serde_json::from_str(&json).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no session recorded for {subject}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_a_real_grant_is_accepted_and_audited() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "delegation_claim = \"on_behalf_of\"");
    let token = idp.token("agent-dev").await;
    until_accepted(&gh, &token).await;
    let p = principal_of(&gh, "agent-dev");
    assert_eq!(p["groups"], json!(["dev"]));
    assert_eq!(p["issuer"], idp.issuer);
    assert_eq!(p["kind"], "human");

    // An agent acting for a person: both are recorded.
    let delegated = idp.token("agent-delegated").await;
    assert_eq!(status(&gh, "api", &delegated).await.0, 200);
    gh.wait_for_events(2);
    let p = principal_of(&gh, "agent-delegated");
    assert_eq!(p["acting_for"], "alice@example.com");
    assert_eq!(p["kind"], "agent");

    // Groups decide which connections a token opens.
    assert_eq!(status(&gh, "ops-only", &token).await.0, 403);
    let ops = idp.token("agent-ops").await;
    assert_eq!(status(&gh, "ops-only", &ops).await.0, 200);

    // No token reaches the log or the audit store.
    gh.wait_for_events(4);
    let all: String = {
        let db = gh.audit_db();
        let mut stmt = db.prepare("SELECT detail FROM events").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for t in [&token, &delegated, &ops] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(
            !all.contains(signature) && !gh.log().contains(signature),
            "a token leaked"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_claim_given_as_a_string_is_split() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(
        &idp,
        &upstream,
        "groups_claim = \"roles\"\ngroups_separator = \" \"\n[[identity.oidc.claim_groups]]\nclaim = \"client_id\"\nvalue = \"groups-string\"\ngroups = [\"mapped\"]",
    );
    let token = idp.token("groups-string").await;
    until_accepted(&gh, &token).await;
    assert_eq!(
        principal_of(&gh, "groups-string")["groups"],
        json!(["dev", "ops", "mapped"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_with_a_clear_error_and_audited() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "");
    let good = idp.token("agent-dev").await;
    until_accepted(&gh, &good).await;
    // Requests made before the issuer was discovered were refused too; once
    // the accepted one is stored, so are they (the writer keeps order).
    let early = refusals_before_first_exchange(&gh);

    let base = |extra: Value| {
        let mut c = json!({"iss": idp.issuer, "aud": "gatehouse", "sub": "forger", "groups": ["dev"], "iat": now(), "exp": now() + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (h, p, _) = {
        let mut it = good.split('.');
        (
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let mut claims: Value = serde_json::from_slice(&b64.decode(&p).unwrap()).unwrap();
    claims["groups"] = json!(["ops"]);
    let tampered = format!(
        "{h}.{}.{}",
        b64.encode(claims.to_string()),
        good.rsplit('.').next().unwrap()
    );
    let alg_none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(base(json!({})).to_string())
    );
    let kid = serde_json::from_slice::<Value>(&b64.decode(&h).unwrap()).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        let pem = idp.public_pem().await;
        jsonwebtoken::encode(
            &header,
            &base(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
        )
        .unwrap()
    };

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            idp.sign(
                &base(json!({"exp": now() - 3600, "iat": now() - 7200})),
                None,
            )
            .await,
            "expired",
        ),
        (
            "not yet valid",
            idp.sign(&base(json!({"nbf": now() + 3600})), None).await,
            "not valid yet",
        ),
        (
            "wrong audience",
            idp.sign(&base(json!({"aud": "someone-else"})), None).await,
            "not meant for this gateway",
        ),
        (
            "wrong issuer",
            idp.sign(&base(json!({"iss": "http://127.0.0.1:1"})), None)
                .await,
            "issuer is not trusted",
        ),
        (
            "unknown kid",
            idp.sign(&base(json!({})), Some("no-such-key")).await,
            "unknown key",
        ),
        ("tampered", tampered, "signature does not verify"),
        ("alg none", alg_none, "algorithm"),
        ("HS256 with the public key", hs256, "not accepted"),
    ];
    for (name, token, want) in &cases {
        let (s, body) = status(&gh, "api", token).await;
        assert_eq!(s, 401, "{name}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated", "{name}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(want), "{name}: {msg}");
    }

    // Expired and revoked API keys, and a valid identity outside the connection's groups.
    let out = gh.cli(&[
        "keys",
        "create",
        "--name",
        "short",
        "--owner",
        "alice",
        "--groups",
        "dev",
        "--expires-in",
        "1s",
    ]);
    let short = String::from_utf8(out.stdout).unwrap().trim().to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, body) = status(&gh, "api", &short).await;
    assert_eq!(s, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(status(&gh, "ops-only", &good).await.0, 403);

    gh.wait_for_events(early + 11);
    let refused: Vec<String> = {
        let db = gh.audit_db();
        let mut stmt = db
            .prepare("SELECT detail FROM events WHERE kind = 'auth.refused'")
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(refused.len() as i64, early + cases.len() as i64 + 2);
    // Each refusal names the identity that was presented, never the token.
    assert!(
        refused
            .iter()
            .any(|d| d.contains("jwt iss=") && d.contains("sub=forger (unverified)"))
    );
    for (_, token, _) in &cases {
        let sig = token.rsplit('.').next().unwrap();
        if sig.len() > 10 {
            assert!(
                !refused.iter().any(|d| d.contains(sig)),
                "a token was stored"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_signing_key_is_picked_up_without_restart() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "");
    let before = idp.token("agent-dev").await;
    until_accepted(&gh, &before).await;

    idp.rotate().await;
    let after = idp.token("agent-dev").await;
    assert_eq!(
        status(&gh, "api", &after).await.0,
        200,
        "new key not fetched"
    );
    // The old key is no longer published: its tokens stop working.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, body) = status(&gh, "api", &before).await;
    assert_eq!(s, 401, "{body}");
    assert!(gh.log().contains("signing keys fetched again"));
}

#[tokio::test(flavor = "multi_thread")]
async fn several_issuers_are_trusted_at_once_each_with_its_own_keys() {
    let (a, b) = (OidcProvider::start(), OidcProvider::start());
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy("allow-all", "allow-all", None)
        .config(&format!(
            "[[identity.oidc]]\nissuer = \"{}\"\naudience = \"gatehouse\"\n[[identity.oidc]]\nissuer = \"{}\"\naudience = \"gatehouse\"\n",
            a.issuer, b.issuer
        ))
        .http_connection("api", &upstream.url(), &["allow-all"], "allowed_groups = [\"dev\"]")
        .start();
    let (ta, tb) = (a.token("agent-dev").await, b.token("agent-dev").await);
    until_accepted(&gh, &ta).await;
    until_accepted(&gh, &tb).await;
    // A token that claims issuer B but is signed with A's key is refused.
    let forged = a
        .sign(&json!({"iss": b.issuer, "aud": "gatehouse", "sub": "x", "groups": ["dev"], "exp": now() + 600}), None)
        .await;
    let (s, body) = status(&gh, "api", &forged).await;
    assert_eq!(s, 401, "{body}");
}
