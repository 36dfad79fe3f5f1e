//! TLS on both sides: clients reach the gateway over HTTPS (HTTP/1.1 and
//! HTTP/2 by ALPN) and the gateway reaches an HTTPS upstream it trusts
//! through a configured CA file.

use gatehouse_tests::tls::TestCert;
use gatehouse_tests::{AWS_KEY, GatehouseBuilder, Upstream};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn https_in_and_out() {
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let upstream = Upstream::start_tls(cert.server_config()).await;
    let extra = format!(
        "upstream_ca_file = {:?}\n[connections.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        cert.cert.display().to_string(),
        cert.cert.display().to_string(),
        cert.key.display().to_string()
    );
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "http-guard",
            Some(json!({"mask_response": [{"detector": "aws-access-key-id"}]})),
        )
        .http_connection("secure", &upstream.https_url(), &["guard"], &extra)
        .http_connection("untrusted", &upstream.https_url(), &["guard"], "")
        .start();
    let key = gh.create_key("tls-bot", &[]);
    let url = format!("https://{}/split-secret", gh.addrs["secure"]);
    for version in ["--http1.1", "--http2"] {
        let out = std::process::Command::new("curl")
            .args(["-sS", version, "--cacert"])
            .arg(&cert.cert)
            .args([
                "-H",
                &format!("Authorization: Bearer {key}"),
                "-w",
                "\n%{http_version}",
                &url,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, http_version) = text.rsplit_once('\n').unwrap();
        assert_eq!(
            body,
            r#"{"key":"[MASKED:aws-access-key-id]","ok":true}"#,
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(http_version, if version == "--http2" { "2" } else { "1.1" });
        assert!(!text.contains(AWS_KEY));
    }

    // Plain HTTP to a TLS listener does not get through.
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{}/echo", gh.addrs["secure"]),
        ])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");

    // An upstream whose certificate is not trusted is a clear 502.
    let resp = gatehouse_tests::http_client()
        .get(format!("http://{}/echo", gh.addrs["untrusted"]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{body}"
    );
}

/// The admin listener over TLS: the API and the console answer over HTTPS,
/// plain HTTP to it gets nowhere, and a client that stalls in the handshake
/// does not hold up others.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_serves_https() {
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let gh = GatehouseBuilder::new()
        .admin_groups(&["ops"])
        .config(&format!(
            "[admin.tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            cert.cert.display().to_string(),
            cert.key.display().to_string()
        ))
        .start();
    let admin = gh.addrs["admin"];
    let _stalled = tokio::net::TcpStream::connect(admin).await.unwrap();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert.cert).unwrap()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let health = https
        .get(format!("https://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let key = gh.create_key("ops-bot", &["ops"]);
    let keys = https
        .get(format!("https://{admin}/v1/keys"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), 200, "{}", keys.text().await.unwrap());
    let console = https
        .get(format!("https://{admin}/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);

    let plain = reqwest::get(format!("http://{admin}/healthz")).await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP reached a TLS admin listener"
    );
}
