//! PostgreSQL clients logging in to Gatehouse over SCRAM-SHA-256: the key
//! id as the user name, the whole key as the password, which never crosses
//! the wire. Real clients (psql/libpq, tokio-postgres) against the real
//! gateway and a throwaway cluster; a hand-driven session for what no real
//! client sends.

use std::process::{Command, Output};

use gatehouse_tests::audit_events::{events, wait_for};
use gatehouse_tests::pg_client::{RawSession, stderr, stdout};
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::tls::TestCert;
use gatehouse_tests::{Gatehouse, GatehouseBuilder};
use serde_json::Value;

struct Setup {
    cluster: PgCluster,
    gh: Gatehouse,
    key: String,
    id: String,
    cert: TestCert,
    _certs: tempfile::TempDir,
}

/// One gateway in front of one cluster, with a connection per login rule:
/// `plain` (auto, no TLS, cleartext refused), `open` (auto, cleartext
/// allowed), `scram-only`, `password-only`, and `secure` (auto over TLS).
fn setup() -> Setup {
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('hello');",
    );
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let tls = format!(
        "tls = {{ cert_file = {:?}, key_file = {:?} }}",
        cert.cert.display().to_string(),
        cert.key.display().to_string()
    );
    let gh = GatehouseBuilder::new()
        .postgres_connection("plain", &cluster.url(), &[], "", "")
        .postgres_connection(
            "open",
            &cluster.url(),
            &[],
            "",
            "allow_cleartext_password = true",
        )
        .postgres_connection(
            "scram-only",
            &cluster.url(),
            &[],
            "",
            "client_auth = \"scram-sha-256\"",
        )
        .postgres_connection(
            "password-only",
            &cluster.url(),
            &[],
            "",
            "client_auth = \"password\"\nallow_cleartext_password = true",
        )
        .postgres_connection("secure", &cluster.url(), &[], &tls, "")
        .start();
    let key = gh.create_key("scram-bot", &["dev"]);
    let id = key_id(&key);
    Setup {
        cluster,
        gh,
        key,
        id,
        cert,
        _certs: certs,
    }
}

fn key_id(key: &str) -> String {
    key.split('_')
        .nth(1)
        .expect("ghk_<id>_<secret>")
        .to_string()
}

/// psql with a full connection string; ON_ERROR_STOP so a failed login or
/// statement is a failed run.
fn psql(conninfo: &str, password: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env_remove("PGSSLMODE")
        .env_remove("PGCHANNELBINDING")
        .output()
        .expect("run psql")
}

fn conninfo(gh: &Gatehouse, connection: &str, user: &str, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=shop {extra}",
        gh.port(connection)
    )
}

/// Waits for a line in the gateway's log that holds every needle.
fn wait_for_log(gh: &Gatehouse, needles: &[&str]) -> String {
    for _ in 0..100 {
        let log = gh.log();
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return line.to_string();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no log line with {needles:?}:\n{}", gh.log());
}

/// A session that has sent only its startup packet.
fn raw_startup(gh: &Gatehouse, connection: &str, user: &str) -> RawSession {
    let stream = std::net::TcpStream::connect(("127.0.0.1", gh.port(connection))).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "shop")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut s = RawSession { stream };
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    s.send_raw(&packet);
    s
}

/// Reads the authentication request: its code and, for SASL, the mechanisms.
fn auth_request(s: &mut RawSession) -> (i32, Vec<String>) {
    let (tag, body) = s.read();
    assert_eq!(
        tag,
        b'R',
        "expected an authentication request, got {}",
        String::from_utf8_lossy(&body)
    );
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mechanisms = body[4..]
        .split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    (code, mechanisms)
}

fn sasl_initial(mechanism: &str, data: &[u8]) -> Vec<u8> {
    let mut b = mechanism.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(&(data.len() as i32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn psql_and_tokio_postgres_log_in_over_scram_without_tls() {
    let s = setup();
    // `plain` refuses a cleartext password without TLS, so these logins
    // can only be SCRAM.
    let cleartext = psql(
        &conninfo(&s.gh, "plain", "agent", "sslmode=disable"),
        &s.key,
        "SELECT 1",
    );
    assert!(
        stderr(&cleartext).contains("accepts credentials only over TLS"),
        "{}",
        stderr(&cleartext)
    );
    for user in [s.id.clone(), format!("ghk_{}", s.id)] {
        let out = psql(
            &conninfo(&s.gh, "plain", &user, "sslmode=disable"),
            &s.key,
            "SELECT current_user || ' ' || v FROM notes",
        );
        assert!(out.status.success(), "{user}: {}", stderr(&out));
        assert_eq!(stdout(&out), "app hello\n");
    }
    let line = wait_for_log(&s.gh, &["client authenticated", "SCRAM-SHA-256"]);
    assert!(!line.contains("PLUS"), "{line}");

    // The server's offer, as a client sees it: SASL (10), no -PLUS without TLS.
    let mut raw = raw_startup(&s.gh, "plain", &s.id);
    assert_eq!(auth_request(&mut raw), (10, vec!["SCRAM-SHA-256".into()]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = format!(
            "host=127.0.0.1 port={} user={} dbname=shop password={} sslmode=disable",
            s.gh.port("plain"),
            s.id,
            s.key
        );
        let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .expect("tokio-postgres logs in over SCRAM");
        tokio::spawn(conn);
        let row = client.query_one("SELECT v FROM notes", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "hello");
    });

    let (verdict, _, detail) = wait_for(&s.gh, "pg.connect", "connect shop");
    assert_eq!(verdict, "allow");
    assert_eq!(detail["presented"], format!("key:{}", s.id), "{detail}");
    // The key never reaches the audit trail or the log.
    let all: String = events(&s.gh, "pg.connect")
        .iter()
        .map(|(_, _, d)| d.to_string())
        .collect();
    assert!(!all.contains(&s.key));
    assert!(!s.gh.log().contains(&s.key));
}

#[test]
fn tls_clients_bind_scram_to_the_certificate() {
    let s = setup();
    let ca = format!(
        "sslmode=verify-ca sslrootcert={} channel_binding=require",
        s.cert.cert.display()
    );
    for extra in ["sslmode=require channel_binding=require", ca.as_str()] {
        let out = psql(
            &conninfo(&s.gh, "secure", &s.id, extra),
            &s.key,
            "SELECT v FROM notes",
        );
        assert!(out.status.success(), "{extra}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hello\n");
    }
    wait_for_log(&s.gh, &["client authenticated", "SCRAM-SHA-256-PLUS"]);

    // A client that will not bind still gets plain SCRAM over TLS.
    let out = psql(
        &conninfo(
            &s.gh,
            "secure",
            &s.id,
            "sslmode=require channel_binding=disable",
        ),
        &s.key,
        "SELECT 'unbound'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Without TLS there is nothing to bind to, and libpq refuses.
    let out = psql(
        &conninfo(
            &s.gh,
            "plain",
            &s.id,
            "sslmode=disable channel_binding=require",
        ),
        &s.key,
        "SELECT 1",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("channel binding"), "{}", stderr(&out));
    // Over TLS, an OIDC token or a key as the password of a non-key user
    // still goes in cleartext.
    let out = psql(
        &conninfo(&s.gh, "secure", "agent", "sslmode=require"),
        &s.key,
        "SELECT 'cleartext over tls'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for_log(&s.gh, &["client authenticated", "\"password\""]);
}

#[test]
fn a_wrong_or_revoked_key_is_refused_and_audited() {
    let s = setup();
    let wrong = format!("ghk_{}_{}", s.id, "0".repeat(64));
    let out = psql(
        &conninfo(&s.gh, "plain", &s.id, "sslmode=disable"),
        &wrong,
        "SELECT 1",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Gatehouse authentication failed: the SCRAM proof does not match"),
        "{}",
        stderr(&out)
    );
    let (_, _, detail) = wait_for(&s.gh, "auth.refused", "SCRAM proof");
    assert_eq!(detail["presented"], format!("key:{}", s.id), "{detail}");
    assert_eq!(detail["error"]["sqlstate"], "28P01", "{detail}");

    // A key whose id matches none: refused like a wrong key, with the id recorded.
    let out = psql(
        &conninfo(&s.gh, "scram-only", "0123456789abcdef", "sslmode=disable"),
        &wrong,
        "SELECT 1",
    );
    assert!(
        stderr(&out).contains("unknown or wrong API key"),
        "{}",
        stderr(&out)
    );

    let revoked = s.gh.create_key("short-lived", &[]);
    let revoked_id = key_id(&revoked);
    let out = s.gh.cli(&["keys", "revoke", &revoked_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = psql(
        &conninfo(&s.gh, "plain", &revoked_id, "sslmode=disable"),
        &revoked,
        "SELECT 1",
    );
    assert!(
        stderr(&out).contains("Gatehouse authentication failed: the API key was revoked"),
        "{}",
        stderr(&out)
    );
    let (_, _, detail) = wait_for(&s.gh, "auth.refused", "revoked");
    assert_eq!(detail["presented"], format!("key:{revoked_id}"), "{detail}");

    let all: String = events(&s.gh, "auth.refused")
        .iter()
        .map(|(_, _, d)| d.to_string())
        .collect();
    assert!(all.contains("key:0123456789abcdef"), "{all}");
    for secret in [&wrong, &revoked, &s.key] {
        assert!(!all.contains(secret.as_str()));
        assert!(!s.gh.log().contains(secret.as_str()));
    }
}

#[test]
fn non_key_users_and_keys_without_a_verifier_use_cleartext_in_auto_mode() {
    let s = setup();
    // A user name that is not a key id: cleartext, where cleartext is allowed.
    let out = psql(
        &conninfo(&s.gh, "open", "agent", "sslmode=disable"),
        &s.key,
        "SELECT 'cleartext'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut raw = raw_startup(&s.gh, "open", "agent");
    assert_eq!(auth_request(&mut raw).0, 3);

    // A key made before verifiers were kept (none in the store): cleartext in
    // auto mode, refused on a SCRAM-only connection with what to do.
    let old = s.gh.create_key("old-key", &[]);
    let old_id = key_id(&old);
    s.gh.audit_db()
        .execute(
            "UPDATE api_keys SET scram_verifier = NULL WHERE id = ?1",
            [&old_id],
        )
        .unwrap();
    let mut raw = raw_startup(&s.gh, "open", &old_id);
    assert_eq!(auth_request(&mut raw).0, 3);
    let out = psql(
        &conninfo(&s.gh, "open", &old_id, "sslmode=disable"),
        &old,
        "SELECT 'old key'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = psql(
        &conninfo(&s.gh, "scram-only", &old_id, "sslmode=disable"),
        &old,
        "SELECT 1",
    );
    assert!(
        stderr(&out).contains("made before Gatehouse kept SCRAM verifiers"),
        "{}",
        stderr(&out)
    );

    // client_auth = "password": always cleartext, even for a key id.
    let mut raw = raw_startup(&s.gh, "password-only", &s.id);
    assert_eq!(auth_request(&mut raw).0, 3);
    let out = psql(
        &conninfo(&s.gh, "password-only", &s.id, "sslmode=disable"),
        &s.key,
        "SELECT 'password mode'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_scram_only_connection_refuses_cleartext_logins_clearly() {
    let s = setup();
    let out = psql(
        &conninfo(&s.gh, "scram-only", "agent", "sslmode=disable"),
        &s.key,
        "SELECT 1",
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("accepts only SCRAM-SHA-256 logins with a Gatehouse API key"),
        "{err}"
    );
    assert!(err.contains("HINT") && err.contains("user name"), "{err}");
    let (_, _, detail) = wait_for(&s.gh, "auth.refused", "only SCRAM-SHA-256");
    assert_eq!(detail["error"]["sqlstate"], "28000", "{detail}");
    assert_eq!(detail["presented"], Value::Null, "{detail}");

    let mut raw = raw_startup(&s.gh, "scram-only", "agent");
    let err = raw.expect_error();
    assert!(err.contains("C28000"), "{err}");

    let out = psql(
        &conninfo(&s.gh, "scram-only", &s.id, "sslmode=disable"),
        &s.key,
        "SELECT 'scram only'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "scram only\n");
}

/// What a hand-driven client sends after the server's SASL offer.
type Step = dyn Fn(&mut RawSession);

#[test]
fn malformed_sasl_messages_end_only_that_session() {
    let s = setup();
    let start = || {
        let mut raw = raw_startup(&s.gh, "plain", &s.id);
        assert_eq!(auth_request(&mut raw).0, 10);
        raw
    };
    let cases: Vec<(&str, Box<Step>, &str)> = vec![
        (
            "a SASLInitialResponse without its length",
            Box::new(|r| r.send(b'p', b"SCRAM-SHA-256\0")),
            "C08P01",
        ),
        (
            "another message instead",
            Box::new(|r| r.send(b'Q', b"SELECT 1\0")),
            "expected a SASLInitialResponse",
        ),
        (
            "a mechanism that was not offered",
            Box::new(|r| {
                r.send(
                    b'p',
                    &sasl_initial("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=abc"),
                )
            }),
            "did not offer",
        ),
        (
            "a broken client-first-message",
            Box::new(|r| r.send(b'p', &sasl_initial("SCRAM-SHA-256", b"x,,n=,r=abc"))),
            "malformed SCRAM message",
        ),
        (
            "an authorization identity",
            Box::new(|r| r.send(b'p', &sasl_initial("SCRAM-SHA-256", b"n,a=admin,n=,r=abc"))),
            "C0A000",
        ),
        (
            "a broken client-final-message",
            Box::new(|r| {
                r.send(b'p', &sasl_initial("SCRAM-SHA-256", b"n,,n=,r=abc"));
                let (code, _) = auth_request(r);
                assert_eq!(code, 11, "SASLContinue");
                r.send(b'p', b"c=biws,p=garbage");
            }),
            "malformed SCRAM message",
        ),
    ];
    for (what, send, expect) in cases {
        let mut raw = start();
        send(&mut raw);
        let err = raw.expect_error();
        assert!(err.contains("SFATAL"), "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        assert!(
            raw.try_read().is_none(),
            "{what}: the session should be closed"
        );
    }
    let malformed = events(&s.gh, "auth.refused");
    assert!(
        malformed
            .iter()
            .all(|(_, _, d)| d["presented"] == format!("key:{}", s.id)),
        "{malformed:#?}"
    );
    // The gateway still serves everyone else.
    let out = psql(
        &conninfo(&s.gh, "plain", &s.id, "sslmode=disable"),
        &s.key,
        "SELECT v FROM notes",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
}

/// The stored verifier is PostgreSQL's own format: the server itself
/// accepts the key as the password of a role given that verifier.
#[test]
fn the_stored_verifier_is_one_postgresql_accepts() {
    let s = setup();
    let verifier: String =
        s.gh.audit_db()
            .query_row(
                "SELECT scram_verifier FROM api_keys WHERE id = ?1",
                [&s.id],
                |r| r.get(0),
            )
            .unwrap();
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    s.cluster.superuser_sql(
        "shop",
        &format!(
            "CREATE ROLE keyholder LOGIN PASSWORD '{verifier}'; GRANT SELECT ON notes TO keyholder"
        ),
    );
    let direct = psql(
        &format!(
            "host=127.0.0.1 port={} user=keyholder dbname=shop sslmode=disable",
            s.cluster.port
        ),
        &s.key,
        "SELECT current_user",
    );
    assert!(direct.status.success(), "{}", stderr(&direct));
    assert_eq!(stdout(&direct), "keyholder\n");
}

/// Keys in a PostgreSQL audit store (schema migration 2 there) log in too.
#[test]
fn scram_logins_with_keys_in_a_postgresql_store() {
    let db = gatehouse_tests::postgres::TempDatabase::create("gatehouse_scram");
    let cluster = PgCluster::start();
    let gh = GatehouseBuilder::new()
        .database(&db.url())
        .postgres_connection("plain", &cluster.url(), &[], "", "")
        .start();
    let key = gh.create_key("pg-store-bot", &[]);
    let id = key_id(&key);
    assert_eq!(
        db.sql(&format!(
            "SELECT left(scram_verifier, 19) FROM api_keys WHERE id = '{id}'"
        ))
        .trim(),
        "SCRAM-SHA-256$4096:"
    );
    let out = psql(
        &conninfo(&gh, "plain", &id, "sslmode=disable"),
        &key,
        "SELECT 'pg store'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pg store\n");
}
