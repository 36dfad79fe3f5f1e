//! The Kubernetes API through Gatehouse, driven by the real `kubectl`
//! against a stand-in API server (`gatehouse_tests::kube_api`): Secrets
//! masked in YAML, JSON, table and watch output; a namespace deletion held
//! for approval; exec blocked by policy, and when allowed relayed over
//! WebSocket and SPDY, recorded and replayed; port-forward decided by
//! namespace and relayed over both transports; refusals as `Status`
//! objects kubectl prints; and bad input from either side refused, never
//! passed through.

use std::time::Duration;

use gatehouse_tests::audit_events::events;
use gatehouse_tests::kube_api::{KubeApi, SECRET_PASSWORD_B64, SECRET_STRING_DATA};
use gatehouse_tests::kubectl::{Kubectl, text};
use gatehouse_tests::tls::TestCert;
use gatehouse_tests::{Gatehouse, GatehouseBuilder};
use serde_json::{Value, json};

/// k8s-guard with approvals by `ops` and exec blocked in kube-system.
fn guard() -> Value {
    json!({
        "deletes": {"approver_groups": ["ops"], "timeout_secs": 60},
        "exec": {"blocked_namespaces": ["kube-system"], "blocked_commands": ["rm"]}
    })
}

/// A gateway whose `cluster` connection serves TLS with a test certificate
/// (kubectl sends tokens only over TLS).
struct Gateway {
    gh: Gatehouse,
    cert: TestCert,
    _certs: tempfile::TempDir,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.gh.port("cluster"))
    }

    fn client(&self) -> reqwest::Client {
        let pem = std::fs::read(&self.cert.cert).unwrap();
        reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }

    fn kubectl(&self, key: &str) -> Kubectl {
        Kubectl::new(&self.url(""), &self.cert.cert, key)
    }
}

impl std::ops::Deref for Gateway {
    type Target = Gatehouse;
    fn deref(&self) -> &Gatehouse {
        &self.gh
    }
}

fn gateway(api: &KubeApi, extra: &str) -> Gateway {
    gateway_with(api, guard(), extra)
}

fn gateway_with(api: &KubeApi, guard: Value, extra: &str) -> Gateway {
    let certs = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(certs.path());
    let gh = GatehouseBuilder::new()
        .policy("k8s", "k8s-guard", Some(guard))
        .admin_groups(&["admins"])
        .config(&format!(
            r#"
[[connections]]
name = "cluster"
protocol = "kubernetes"
listen = "127.0.0.1:0"
upstream = "{}"
policies = ["k8s"]
{extra}
[connections.tls]
cert_file = {:?}
key_file = {:?}

[connections.credential]
header = "authorization"
prefix = "Bearer "
secret = {{ env = "GATEHOUSE_UPSTREAM_TOKEN" }}
"#,
            api.url(),
            cert.cert,
            cert.key
        ))
        .start();
    Gateway {
        gh,
        cert,
        _certs: certs,
    }
}

#[track_caller]
fn assert_masked(out: &str) {
    assert!(
        !out.contains(SECRET_PASSWORD_B64),
        "secret value leaked:\n{out}"
    );
    assert!(
        !out.contains(SECRET_STRING_DATA),
        "secret value leaked:\n{out}"
    );
}

#[tokio::test]
async fn secrets_are_masked_in_yaml_json_table_and_lists() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let key = gh.create_key("agent", &["dev"]);
    let k = gh.kubectl(&key);

    let o = k.run(&["get", "secret", "db-credentials", "-o", "yaml"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_masked(&out);
    assert!(out.contains("kind: Secret"), "{out}");
    assert!(out.contains("password: '[MASKED:json]'"), "{out}");
    assert!(out.contains("name: db-credentials"), "{out}");

    let o = k.run(&["get", "secrets", "-o", "json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_masked(&out);
    let list: Value = serde_json::from_str(&out).expect("kubectl -o json");
    assert_eq!(list["items"][0]["data"]["password"], "[MASKED:json]");
    assert_eq!(list["items"][1]["stringData"]["token"], "[MASKED:json]");

    // Plain table output: the Table's rows.
    let o = k.run(&["get", "secrets"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains("db-credentials") && out.contains("api-token"),
        "{out}"
    );

    // A Table that includes whole objects is masked row by row.
    let body = reqwest_get(
        &gh,
        &key,
        "/api/v1/namespaces/default/secrets?includeObject=Object",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_masked(&body);
    let table: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(
        table["rows"][0]["object"]["data"]["password"],
        "[MASKED:json]"
    );

    // Other objects are untouched.
    let o = k.run(&["get", "namespace", "default", "-o", "json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("\"phase\": \"Active\""), "{out}");

    // The stand-in saw only the held credential, and never a protobuf Accept.
    assert!(api.seen().iter().all(|s| !s.accept.contains("protobuf")));
    let direct = gatehouse_tests::http_client()
        .get(format!("{}/api/v1/namespaces/default/secrets", api.url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        direct.status(),
        401,
        "the caller's key opens nothing upstream"
    );

    // The audit record holds the masked answer and the classified request.
    let ev = events(&gh, "http.exchange");
    let get = ev
        .iter()
        .find(|(_, s, _)| s.contains("/secrets/db-credentials"))
        .expect("recorded get");
    assert_masked(&get.2.to_string());
    assert_eq!(get.2["kubernetes"]["request"]["verb"], "get", "{}", get.2);
    assert_eq!(get.2["kubernetes"]["request"]["resource"], "secrets");
}

async fn reqwest_get(gh: &Gateway, key: &str, path: &str, accept: &str) -> String {
    let resp = gh
        .client()
        .get(gh.url(path))
        .bearer_auth(key)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.text().await.unwrap()
}

#[tokio::test]
async fn watches_are_masked_event_by_event_and_protobuf_is_not_asked_for() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let key = gh.create_key("agent", &["dev"]);
    let resp = gh
        .client()
        .get(gh.url("/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1"))
        .bearer_auth(&key)
        .header(
            "accept",
            "application/vnd.kubernetes.protobuf;stream=watch,application/json",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert_masked(&body);
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one event"))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["ADDED", "ADDED", "MODIFIED"]);
    assert_eq!(events[2]["object"]["data"]["password"], "[MASKED:json]");
    let seen = api.seen();
    let watch = seen
        .iter()
        .find(|s| s.query.contains("watch=true"))
        .unwrap();
    assert_eq!(watch.accept, "application/json");

    // kubectl's own watch, cut short by its request timeout.
    let k = gh.kubectl(&key);
    let o = k.run(&[
        "get",
        "secrets",
        "--watch",
        "-o",
        "json",
        "--request-timeout=2s",
    ]);
    let (out, _) = text(&o);
    assert_masked(&out);
    assert!(out.contains("db-credentials"), "{out}");
}

#[tokio::test]
async fn a_broken_answer_is_refused_not_passed_through() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "json_mask_limit_bytes = 4096");
    let key = gh.create_key("agent", &["dev"]);
    let k = gh.kubectl(&key);

    // A list cut off in the middle of a Secret.
    let o = k.run(&["get", "secrets", "-n", "broken", "-o", "yaml"]);
    let (out, err) = text(&o);
    assert!(!o.status.success());
    assert_masked(&out);
    assert_masked(&err);
    assert!(err.contains("Error from server (InternalError)"), "{err}");
    assert!(err.contains("not JSON"), "{err}");

    // A watch cut off in the middle of an event ends with an ERROR event.
    let resp = gh
        .client()
        .get(gh.url("/api/v1/namespaces/broken/secrets?watch=1"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap_or_default();
    assert_masked(&body);
    let last: Value = serde_json::from_str(body.lines().last().unwrap_or("null")).unwrap();
    assert_eq!(last["type"], "ERROR", "{body}");
    assert_eq!(last["object"]["kind"], "Status");

    // A request object that is not JSON, and one over the body limit.
    for (body, code, reason) in [
        ("{\"kind\": \"Secret\", ".to_string(), 400, "BadRequest"),
        (
            format!(
                "{{\"kind\":\"ConfigMap\",\"data\":{{\"a\":\"{}\"}}}}",
                "x".repeat(8 << 20)
            ),
            413,
            "RequestEntityTooLarge",
        ),
    ] {
        let resp = gh
            .client()
            .post(gh.url("/api/v1/namespaces/default/configmaps"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), code);
        let status: Value = resp.json().await.unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], reason, "{status}");
    }
    assert!(
        api.seen().iter().all(|s| s.method != "POST"),
        "nothing unchecked went upstream"
    );
}

#[tokio::test]
async fn deleting_a_namespace_waits_for_an_approval() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let agent = gh.create_key("agent", &["dev"]);
    let olga = gh.create_person_key("olga", &["ops"]);
    let k = gh.kubectl(&agent);

    let held = k.spawn(&["delete", "namespace", "scratch", "--wait=false"]);
    let approval = wait_for_approval(&gh, &olga);
    assert_eq!(approval["reason"], "delete namespace scratch", "{approval}");
    assert!(
        api.namespaces().contains(&"scratch".to_string()),
        "not deleted before the approval"
    );
    decide(&gh, &olga, &approval, "approve");
    let o = held.await.unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("namespace \"scratch\" deleted"), "{out}");
    assert!(!api.namespaces().contains(&"scratch".to_string()));

    // Denied: kubectl prints the Status, and the namespace stays.
    let held = k.spawn(&["delete", "namespace", "default", "--wait=false"]);
    let approval = wait_for_approval(&gh, &olga);
    decide(&gh, &olga, &approval, "deny");
    let o = held.await.unwrap();
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        err.starts_with("Error from server (Forbidden): gatehouse: approval"),
        "{err}"
    );
    assert!(err.contains("denied by olga"), "{err}");
    assert!(api.namespaces().contains(&"default".to_string()));
}

/// The first waiting approval, as an operator lists it with `gatehouse
/// approvals list` through the admin API.
fn wait_for_approval(gh: &Gatehouse, key: &str) -> Value {
    for _ in 0..400 {
        let o = gh.cli_remote(key, &["approvals", "list", "--json"]);
        assert!(o.status.success(), "{:?}", text(&o));
        let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
        if let Some(a) = listed["approvals"].as_array().and_then(|a| a.first()) {
            return a.clone();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no approval appeared; log:\n{}", gh.log());
}

/// `gatehouse approvals approve|deny ID`.
fn decide(gh: &Gatehouse, key: &str, approval: &Value, action: &str) {
    let id = approval["id"].as_str().expect("approval id");
    let o = gh.cli_remote(key, &["approvals", action, id, "--reason", "checked"]);
    assert!(o.status.success(), "{:?}", text(&o));
}

#[tokio::test]
async fn exec_is_blocked_by_policy_and_otherwise_recorded_for_replay() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let key = gh.create_key("agent", &["dev"]);
    let k = gh.kubectl(&key);

    // Blocked: a Status kubectl prints, and no exec reached the API server.
    let o = k.run(&["exec", "-n", "kube-system", "web", "--", "ls"]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        err.contains("Error from server (Forbidden): gatehouse: denied by policy k8s: exec into pods of namespace kube-system is not allowed"),
        "{err}"
    );
    let o = k.run(&["exec", "web", "--", "rm", "-rf", "/data"]);
    assert!(
        text(&o).1.contains("running rm in a pod is not allowed"),
        "{:?}",
        text(&o)
    );
    assert!(api.seen().iter().all(|s| !s.path.ends_with("/exec")));

    // Allowed: output relayed, and with stdin.
    let o = k.run(&["exec", "web", "--", "echo", "hello", "from", "web"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out, "hello from web\n");
    let o = k.run_with_stdin(
        &["exec", "-i", "web", "--", "cat"],
        b"typed line one\ntyped line two\n",
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out, "typed line one\ntyped line two\n");
    // The pod's exit code comes through.
    let o = k.run(&["exec", "web", "--", "false"]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));

    // Recorded: frames with channels and timing, in order.
    let parts = wait_for_parts(&gh, 3).await;
    let cat = parts
        .iter()
        .find(|(_, s, _)| s.contains(": cat"))
        .expect("the cat session is recorded");
    let frames = cat.2["frames"].as_array().unwrap();
    let stdin: Vec<&str> = frames
        .iter()
        .filter(|f| f["channel"] == "stdin")
        .filter_map(|f| f["data"].as_str())
        .collect();
    assert_eq!(stdin.concat(), "typed line one\ntyped line two\n");
    assert!(
        frames
            .iter()
            .any(|f| f["channel"] == "stdout" && f["dir"] == "out")
    );
    let times: Vec<u64> = frames.iter().map(|f| f["t_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(cat.2["end"]["status"]["status"], "Success");
    let failed = parts
        .iter()
        .find(|(_, s, _)| s.contains(": false"))
        .unwrap();
    assert_eq!(failed.2["end"]["status"]["reason"], "NonZeroExitCode");

    // Replayed: the session's transcript shows the stream.
    let session = session_of(&gh, &cat.2);
    let auditor = gh.create_person_key("ada", &["admins"]);
    let o = gh.cli_remote(&auditor, &["sessions", "replay", &session]);
    let replay = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{replay}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(replay.contains("exec default/web: cat"), "{replay}");
    assert!(replay.contains("> stdin: typed line one"), "{replay}");
    assert!(replay.contains("< stdout: typed line one"), "{replay}");
}

/// With `exec.approve`, the command waits for a person before the upgrade
/// goes on; approved, the stream runs as usual.
#[tokio::test]
async fn exec_waits_for_an_approval_of_its_command() {
    let api = KubeApi::start().await;
    let gh = gateway_with(
        &api,
        json!({"exec": {"approve": true, "approver_groups": ["ops"]}}),
        "",
    );
    let agent = gh.create_key("agent", &["dev"]);
    let olga = gh.create_person_key("olga", &["ops"]);
    let k = gh.kubectl(&agent);
    let held = k.spawn(&["exec", "web", "--", "echo", "approved", "run"]);
    let approval = wait_for_approval(&gh, &olga);
    assert_eq!(
        approval["reason"], "exec in pod default/web: echo approved run",
        "{approval}"
    );
    assert!(
        api.seen().iter().all(|s| !s.path.ends_with("/exec")),
        "held before the upgrade"
    );
    decide(&gh, &olga, &approval, "approve");
    let o = held.await.unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out, "approved run\n");
}

/// kubectl 1.32 with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` speaks
/// SPDY/3.1 for exec, as kubectl before 1.30 and its fallback do: the
/// policy decides first, and an allowed exec is relayed, its streams
/// recorded by channel and replayed like a WebSocket one.
#[tokio::test]
async fn exec_over_spdy_is_decided_relayed_and_recorded() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let key = gh.create_key("agent", &["dev"]);
    let k = gh
        .kubectl(&key)
        .with_env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");

    let o = k.run(&["exec", "-n", "kube-system", "web", "--", "ls"]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        err.contains("exec into pods of namespace kube-system is not allowed"),
        "{err}"
    );
    assert!(api.seen().iter().all(|s| !s.path.ends_with("/exec")));

    let o = k.run(&["exec", "web", "--", "echo", "hello", "over", "spdy"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}\n{}", gh.log());
    assert_eq!(out, "hello over spdy\n");
    let o = k.run_with_stdin(
        &["exec", "-i", "web", "--", "cat"],
        b"spdy line one\nspdy line two\n",
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert_eq!(out, "spdy line one\nspdy line two\n");
    let o = k.run(&["exec", "web", "--", "false"]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    // Much data both ways at once: neither direction waits on the other.
    let big: Vec<u8> = (0..4 << 20)
        .map(|i| b"0123456789abcdef\n"[i % 17])
        .collect();
    let o = k.run_with_stdin(&["exec", "-i", "web", "--", "cat"], &big);
    assert!(o.status.success(), "{:?}", text(&o).1);
    assert!(o.stdout == big, "{} bytes came back", o.stdout.len());
    // attach takes the same path.
    let o = k.run_with_stdin(&["attach", "-i", "web"], b"attached line\n");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("attached line\n"), "{out}\n{err}");
    let o = k.run(&["exec", "web", "--", "nosuch"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(127), "{err}");
    assert!(err.contains("nosuch: not found"), "{err}");
    // It was SPDY that reached the API server.
    assert!(
        api.seen()
            .iter()
            .filter(|s| s.path.ends_with("/exec"))
            .all(|s| s.method == "POST"),
        "{:?}",
        api.seen()
    );

    let parts = wait_for_parts(&gh, 6).await;
    let cat = parts
        .iter()
        .find(|(_, s, d)| s.contains(": cat") && d["end"]["bytes_in"] == 28)
        .expect("the cat session is recorded");
    assert_eq!(cat.2["end"]["transport"], "spdy", "{}", cat.2);
    let big_cat = parts
        .iter()
        .find(|(_, s, d)| s.contains(": cat") && d["end"]["bytes_in"] == 4 << 20)
        .expect("the big cat session is recorded");
    assert_eq!(big_cat.2["end"]["truncated"], true, "{}", big_cat.2);
    assert_eq!(cat.2["end"]["status"]["status"], "Success");
    assert!(cat.2["end"]["error"].is_null(), "{}", cat.2);
    let frames: Vec<Value> = parts
        .iter()
        .filter(|(_, _, d)| d["request_id"] == cat.2["request_id"])
        .flat_map(|(_, _, d)| d["frames"].as_array().cloned().unwrap_or_default())
        .collect();
    let stdin: String = frames
        .iter()
        .filter(|f| f["channel"] == "stdin")
        .filter_map(|f| f["data"].as_str())
        .collect();
    assert_eq!(stdin, "spdy line one\nspdy line two\n");
    let stdout: String = frames
        .iter()
        .filter(|f| f["channel"] == "stdout" && f["dir"] == "out")
        .filter_map(|f| f["data"].as_str())
        .collect();
    assert_eq!(stdout, "spdy line one\nspdy line two\n");
    let failed = parts
        .iter()
        .find(|(_, s, d)| s.contains(": false") && d["end"].is_object())
        .unwrap();
    assert_eq!(failed.2["end"]["status"]["reason"], "NonZeroExitCode");

    let session = session_of(&gh, &cat.2);
    let auditor = gh.create_person_key("ada", &["admins"]);
    let o = gh.cli_remote(&auditor, &["sessions", "replay", &session]);
    let replay = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{replay}");
    assert!(replay.contains("exec default/web: cat"), "{replay}");
    assert!(replay.contains("> stdin: spdy line one"), "{replay}");
    assert!(replay.contains("< stdout: spdy line one"), "{replay}");

    // kubectl 1.29, where the machine has it, needs no setting for SPDY.
    if let Some(old) = gatehouse_tests::kubectl::older(29) {
        let o = gh
            .kubectl(&key)
            .using(old)
            .run(&["exec", "web", "--", "echo", "from", "1.29"]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        assert_eq!(out, "from 1.29\n");
    }
}

/// A kubelet that breaks SPDY (a frame of another version, a header block
/// that inflates to 16 MiB) and a client that does: the stream ends with a
/// GOAWAY and a recorded error, the gateway goes on.
#[tokio::test]
async fn malformed_spdy_from_either_side_ends_the_stream() {
    let api = KubeApi::start().await;
    let gh = gateway(&api, "");
    let key = gh.create_key("agent", &["dev"]);
    let k = gh
        .kubectl(&key)
        .with_env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    for (command, why) in [("garble", "SPDY version 2"), ("bomb", "compression bomb")] {
        let o = k.run(&["exec", "web", "--", command]);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{command}: {out}\n{err}");
        eprintln!("kubectl exec -- {command}: {err}");
        // kubectl prints the Status Gatehouse put on the error stream.
        assert!(
            err.contains("gatehouse: the upstream sent SPDY Gatehouse could not read")
                && err.contains(why),
            "{command}: {err}"
        );
    }
    let parts = wait_for_parts(&gh, 2).await;
    let error_of = |cmd: &str| {
        parts
            .iter()
            .find(|(_, s, d)| s.contains(&format!(": {cmd} (")) && d["end"].is_object())
            .map(|(_, _, d)| d["end"]["error"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let garbled = error_of("garble");
    assert!(
        garbled.contains("the upstream sent SPDY Gatehouse could not read")
            && garbled.contains("SPDY version 2"),
        "{garbled}"
    );
    let bomb = error_of("bomb");
    assert!(bomb.contains("compression bomb"), "{bomb}");

    // A client that sends a valid stream, then garbage.
    let mut conn = spdy_upgrade(&gh, &key).await;
    let (r, w) = tokio::io::split(&mut conn);
    let mut writer = gatehouse_tests::spdy::Writer::new(w);
    let mut p = 1u32.to_be_bytes().to_vec();
    p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    p.extend(writer.compress(&[("streamtype", "error")]));
    writer.control(1, 0, &p).await.unwrap();
    // A control frame of SPDY/2.
    writer.raw(&[0x80, 0x02, 0, 1, 0, 0, 0, 0]).await.unwrap();
    let mut reader = gatehouse_tests::spdy::Reader::new(r);
    let mut got_goaway = false;
    while let Ok(Ok(Some(frame))) =
        tokio::time::timeout(Duration::from_secs(10), reader.next()).await
    {
        got_goaway |= matches!(frame, gatehouse_tests::spdy::Frame::GoAway);
    }
    assert!(got_goaway, "the client was told the session ended");
    let parts = wait_for_parts(&gh, 3).await;
    assert!(
        parts.iter().any(|(_, _, d)| d["end"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("the client sent SPDY Gatehouse could not read"))),
        "{parts:?}"
    );

    // The gateway is fine: the next exec runs.
    let o = k.run(&["exec", "web", "--", "echo", "still", "here"]);
    assert_eq!(text(&o).0, "still here\n", "{:?}", text(&o));
}

/// A hand-made SPDY exec upgrade through the gateway, answered 101.
async fn spdy_upgrade(
    gh: &Gateway,
    key: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", gh.port("cluster")))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(gh.cert.client_config())
        .connect(name, tcp)
        .await
        .unwrap();
    let req = format!(
        "POST /api/v1/namespaces/default/pods/web/exec?command=cat&stdin=true&stdout=true HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    tls
}

/// `kubectl port-forward`: a decision per namespace before the upgrade;
/// allowed, the pod port is reached through the gateway over WebSocket
/// (kubectl's default, SPDY tunnelled) and over plain SPDY, and the record
/// names the port and counts the bytes.
#[tokio::test]
async fn port_forward_is_decided_and_relayed_over_both_transports() {
    let api = KubeApi::start().await;
    let gh = gateway_with(
        &api,
        json!({"portforward": {"allowed_namespaces": ["default"]}}),
        "",
    );
    let key = gh.create_key("agent", &["dev"]);
    let k = gh.kubectl(&key);

    let o = k.run(&["port-forward", "-n", "scratch", "pod/web", ":8080"]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}");
    eprintln!("kubectl port-forward into scratch: {err}");
    assert!(
        err.contains("port-forward into pods of namespace scratch is not allowed"),
        "{err}"
    );
    assert!(api.seen().iter().all(|s| !s.path.ends_with("/portforward")));

    for (transport, k) in [
        ("spdy-in-websocket", gh.kubectl(&key)),
        (
            "spdy",
            gh.kubectl(&key)
                .with_env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false"),
        ),
    ] {
        let before = events(&gh, "stream.frames")
            .iter()
            .filter(|(_, _, d)| d["end"].is_object())
            .count();
        let mut child = k.start(&["port-forward", "pod/web", ":8080", ":9999"]);
        let ports = forwarded_ports(&mut child);
        let echoed = round_trip(ports[0], b"hello through the gateway").await;
        assert_eq!(echoed, b"hello through the gateway", "{transport}");
        let echoed = round_trip(ports[0], b"again").await;
        assert_eq!(echoed, b"again", "{transport}");
        // A closed port: the connection ends, kubectl hears why.
        let refused = round_trip(ports[1], b"anyone?").await;
        assert!(refused.is_empty(), "{transport}: {refused:?}");
        stop(&mut child);

        let parts = wait_for_parts(&gh, before + 1).await;
        let detail = parts
            .iter()
            .filter(|(_, _, d)| d["end"]["transport"] == transport)
            .map(|(_, _, d)| d.clone())
            .next_back()
            .unwrap_or_else(|| panic!("{transport}: no record in {parts:?}"));
        let end = &detail["end"];
        let p8080 = end["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["port"] == "8080"))
            .unwrap_or_else(|| panic!("{end}"));
        assert_eq!(p8080["connections"], 2, "{end}");
        assert_eq!(p8080["bytes_in"], 30, "{end}");
        assert_eq!(p8080["bytes_out"], 30, "{end}");
        let p9999 = end["ports"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["port"] == "9999"))
            .unwrap_or_else(|| panic!("{end}"));
        assert!(
            p9999["errors"][0]
                .as_str()
                .is_some_and(|e| e.contains("connection refused")),
            "{end}"
        );
        let recorded = serde_json::to_string(&parts).unwrap();
        assert!(
            !recorded.contains("hello through the gateway"),
            "the payload is not recorded"
        );

        // The replay names the connections and the ports.
        let session = session_of(&gh, &detail);
        let auditor = gh.create_person_key(&format!("ada-{transport}"), &["admins"]);
        let o = gh.cli_remote(&auditor, &["sessions", "replay", &session]);
        let replay = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{replay}");
        assert!(replay.contains("portforward default/web"), "{replay}");
        assert!(
            replay.contains("> portforward: port 8080: connection 0 opened"),
            "{replay}"
        );
        assert!(
            replay.contains("port 8080: 2 connections, 30 bytes in, 30 bytes out"),
            "{replay}"
        );
        assert!(replay.contains(&format!("over {transport}")), "{replay}");
    }
}

/// The local ports kubectl listens on, from its `Forwarding from` lines.
fn forwarded_ports(child: &mut std::process::Child) -> Vec<u16> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut ports = vec![];
    while ports.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("kubectl port-forward printed its ports");
        // `Forwarding from 127.0.0.1:41234 -> 8080`
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            let port = rest.split_whitespace().next().unwrap_or("");
            ports.push(port.parse().expect("a port"));
        }
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    ports
}

/// Sends `data` to a local port, half-closes, and reads the answer.
async fn round_trip(port: u16, data: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(data).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    got
}

/// Stops `kubectl port-forward` as a person would (Ctrl-C).
fn stop(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_for_parts(gh: &Gatehouse, n: usize) -> Vec<(String, String, Value)> {
    for _ in 0..200 {
        let parts: Vec<_> = events(gh, "stream.frames")
            .into_iter()
            .filter(|(_, _, d)| d["end"].is_object())
            .collect();
        if parts.len() >= n {
            return events(gh, "stream.frames");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} exec streams were not recorded; log:\n{}", gh.log());
}

fn session_of(gh: &Gatehouse, detail: &Value) -> String {
    let request_id = detail["request_id"].as_str().expect("request id");
    gh.audit_db()
        .query_row(
            "SELECT session_id FROM events WHERE kind = 'stream.frames' AND detail LIKE ?1 LIMIT 1",
            [format!("%{request_id}%")],
            |r| r.get(0),
        )
        .expect("session of the exec stream")
}
