//! `gatehouse policy test|bench|new`: the shipped policies pass their
//! fixtures through the real engine; every hook's fixture event reaches a
//! guest intact; failures are reported with diffs and a non-zero exit;
//! malformed fixtures are refused with the file and the key; bench reports
//! rates and percentiles; a new Rust skeleton builds and passes its own
//! fixtures. And the `secrets` and `pii` plugins end to end: curl and psql
//! through a running gateway.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gatehouse_tests::pg_client::{psql, stderr, stdout};
use gatehouse_tests::pg_cluster::PgCluster;
use gatehouse_tests::{GatehouseBuilder, Upstream, gatehouse_bin, policy_wasm, root};
use serde_json::{Value, json};

fn gatehouse(args: &[&str]) -> Output {
    Command::new(gatehouse_bin())
        .args(args)
        .env("GATEHOUSE_LOG", "warn")
        .output()
        .expect("run gatehouse")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn policy_test_json(wasm: &Path, fixtures: &Path) -> (Output, Value) {
    let out = gatehouse(&[
        "policy",
        "test",
        wasm.to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    (out, report)
}

fn failures(report: &Value) -> String {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] != true)
        .map(|c| format!("{}: {}", c["name"], c["mismatches"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_shipped_policy_passes_its_fixtures() {
    for plugin in [
        "secrets",
        "pii",
        "sql-guard",
        "http-guard",
        "mcp-guard",
        "llm-guard",
        "k8s-guard",
    ] {
        let fixtures = root().join("plugins").join(plugin).join("fixtures");
        let (out, report) = policy_test_json(&policy_wasm(plugin), &fixtures);
        assert!(out.status.success(), "{plugin}:\n{}", failures(&report));
        assert_eq!(report["failed"], 0, "{plugin}");
        assert!(
            report["passed"].as_u64().unwrap() >= 3,
            "{plugin}: {report}"
        );
        assert!(
            report["policy"].as_str().unwrap().starts_with(plugin),
            "{report}"
        );
    }
}

#[test]
fn every_hook_event_reaches_the_guest_intact() {
    let fixtures = root().join("tests/fixtures/probe/every-hook.yaml");
    let (out, report) = policy_test_json(&policy_wasm("fixture-probe"), &fixtures);
    assert!(out.status.success(), "{}", failures(&report));
    let hooks: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hook"].as_str().unwrap())
        .collect();
    assert_eq!(
        hooks,
        [
            "http.on-request",
            "http.on-response",
            "postgres.on-query",
            "postgres.on-result-columns",
            "kubernetes.on-request",
            "llm.on-request",
            "llm.on-response",
            "mcp.on-request",
            "mcp.on-result",
            "mcp.filter-tools",
            "mcp-listing.filter",
            "ssh.on-command"
        ]
    );
}

#[test]
fn failures_are_reported_with_diffs_and_a_non_zero_exit() {
    let wasm = policy_wasm("fixture-probe");
    let fixtures = root().join("tests/fixtures/probe/failing.yaml");
    let out = gatehouse(&[
        "policy",
        "test",
        wasm.to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = text(&out);
    assert!(s.contains("FAIL  wrong verdict and reason"), "{s}");
    assert!(
        s.contains("        verdict:\n          - allow\n          + deny (http.on-request GET"),
        "{s}"
    );
    assert!(
        s.contains("        reason:\n          - contains \"never said\""),
        "{s}"
    );
    assert!(
        s.contains("        hidden_tools:\n          - read\n          + wipe"),
        "{s}"
    );
    assert!(
        s.contains(
            "        hidden_entries:\n          - p\n          + EntryKind::Prompt p name=p"
        ),
        "{s}"
    );
    assert!(
        s.contains(
            "        masks:\n          - {detector: email, method: redact}\n          + (none)"
        ),
        "{s}"
    );
    assert!(s.contains("0 passed, 4 failed"), "{s}");

    let (out, report) = policy_test_json(&wasm, &fixtures);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["failed"], 4);
    let first = &report["cases"][0];
    assert_eq!(first["mismatches"][0]["field"], "verdict");
    assert_eq!(first["mismatches"][0]["expected"], "allow");
    assert_eq!(first["observed"]["outcome"], "deny");
}

#[test]
fn a_missing_hook_fails_the_case_with_what_the_policy_exports() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k8s.yaml");
    std::fs::write(
        &f,
        "version: 1\nhook: kubernetes.on-request\nevent: {verb: get, resource: pods}\nexpect: {verdict: allow}\n",
    )
    .unwrap();
    let (out, report) = policy_test_json(&policy_wasm("sql-guard"), &f);
    assert_eq!(out.status.code(), Some(1));
    let failure = report["cases"][0]["observed"]["failure"].as_str().unwrap();
    assert!(
        failure.contains("does not export the kubernetes interface (it exports: postgres)"),
        "{failure}"
    );
}

#[test]
fn malformed_fixtures_are_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "version.yaml",
            "version: 2\nhook: http.on-request\nexpect: {verdict: allow}\n",
            "fixture format version 2 is not supported",
        ),
        (
            "hook.yaml",
            "version: 1\nhook: http.on-teapot\nexpect: {verdict: allow}\n",
            "unknown variant `http.on-teapot`",
        ),
        (
            "key.yaml",
            "version: 1\nhook: http.on-request\nexpect: {verdict: allow, reson_contains: x}\n",
            "unknown field `reson_contains`",
        ),
        (
            "event.yaml",
            "version: 1\nhook: postgres.on-query\nevent: {query: x}\nexpect: {verdict: allow}\n",
            "cases[0]: event: unknown field `query`",
        ),
        (
            "verdict.yaml",
            "version: 1\nhook: ssh.on-command\nevent: {command: ls}\nexpect: {}\n",
            "expect.verdict is required",
        ),
        (
            "mask.yaml",
            "version: 1\nhook: http.on-response\nevent: {response: {}}\nexpect: {verdict: mask, masks: [{header: a, detector: b}]}\n",
            "expect.masks[0]: a mask needs exactly one of",
        ),
        ("yaml.yaml", "version: 1\n  hook: [\n", "yaml.yaml"),
        ("json.json", "{\"version\": 1,", "json.json"),
    ];
    let wasm = policy_wasm("fixture-probe");
    for (name, body, want) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        let out = gatehouse(&[
            "policy",
            "test",
            wasm.to_str().unwrap(),
            "--fixtures",
            f.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{name} passed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
    let empty = tempfile::tempdir().unwrap();
    let out = gatehouse(&[
        "policy",
        "test",
        wasm.to_str().unwrap(),
        "--fixtures",
        empty.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no fixture files"));
}

#[test]
fn bench_reports_decision_rate_and_percentiles() {
    let fixture = root().join("plugins/sql-guard/fixtures/guard.yaml");
    let wasm = policy_wasm("sql-guard");
    let out = gatehouse(&[
        "policy",
        "bench",
        wasm.to_str().unwrap(),
        "--fixture",
        fixture.to_str().unwrap(),
        "--case",
        "results get the caller's masks",
        "--duration",
        "0.5",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["hook"], "postgres.on-result-columns");
    assert_eq!(r["failures"], 0);
    assert!(r["decisions"].as_u64().unwrap() > 10, "{r}");
    let f = |k: &str| r[k].as_f64().unwrap();
    assert!(f("compile_ms") > 0.0 && f("cached_load_ms") > 0.0 && f("instantiate_us") > 0.0);
    assert!(
        f("p50_us") > 0.0
            && f("p50_us") <= f("p90_us")
            && f("p90_us") <= f("p99_us")
            && f("p99_us") <= f("max_us"),
        "{r}"
    );
    assert!(f("decisions_per_sec") > 10.0, "{r}");

    let refusal = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "bench",
            wasm.to_str().unwrap(),
            "--fixture",
            fixture.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&gatehouse(&args).stderr).into_owned()
    };
    assert!(refusal(&["--case", "nope"]).contains("no case named \"nope\""));
    assert!(refusal(&["--duration", "0"]).contains("--duration"));
    assert!(refusal(&["--timeout-ms", "0"]).contains("--timeout-ms must be"));
}

fn new_project(dir: &Path, name: &str, lang: &str, hook: &str) -> PathBuf {
    let sdk = root().join("sdk");
    let out = gatehouse(&[
        "policy",
        "new",
        name,
        "--lang",
        lang,
        "--hook",
        hook,
        "--dir",
        dir.to_str().unwrap(),
        "--sdk-path",
        sdk.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    dir.join(name)
}

#[test]
fn a_new_rust_policy_builds_and_passes_its_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(dir.path(), "no-drops", "rust", "postgres");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "Makefile",
        "README.md",
        "wit/hooks.wit",
        "wit/types.wit",
        "fixtures/postgres.yaml",
    ] {
        assert!(project.join(f).exists(), "{f} missing");
    }
    // A second `new` never overwrites.
    let again = gatehouse(&[
        "policy",
        "new",
        "no-drops",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = gatehouse(&["policy", "new", "No Drops"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("lower-case letters"));

    // Shared with other runs so dependencies compile once.
    let target = root().join("target/policy-new");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let wasm = target.join("wasm32-wasip2/release/no_drops.wasm");
    let (out, report) = policy_test_json(&wasm, &project.join("fixtures"));
    assert!(out.status.success(), "{}", failures(&report));
    assert_eq!(report["passed"], 4);
    assert_eq!(report["policy"], "no-drops 0.1.0");
}

/// The SDK's example policy is a real component: built for wasm32-wasip2,
/// it passes its fixtures through the engine.
#[test]
fn the_sdk_example_builds_and_passes_its_fixtures() {
    let build = Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "gatehouse-sdk",
            "--example",
            "change_freeze",
            "--profile",
            "wasm",
            "--target",
            "wasm32-wasip2",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let wasm = root().join("target/wasm32-wasip2/wasm/examples/change_freeze.wasm");
    let (out, report) = policy_test_json(&wasm, &root().join("sdk/examples/change_freeze.yaml"));
    assert!(out.status.success(), "{}", failures(&report));
    // (No `policy` name in the report: without settings naming approvers the
    // policy refuses to load, so the default load that describes it fails.)
    assert_eq!(report["passed"], 5, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
}

#[test]
fn a_new_python_policy_builds_and_makes_the_same_decisions() {
    let componentize = root().join("target/py/bin/componentize-py");
    assert!(
        componentize.exists(),
        "{} is missing: run `make py-deps`",
        componentize.display()
    );
    let arg = format!("COMPONENTIZE_PY={}", componentize.display());
    build_and_test_skeleton("python", "py-no-drops", &[&arg]);
}

/// Needs Node and the npm registry (the project's Makefile installs
/// ComponentizeJS).
#[test]
fn a_new_javascript_policy_builds_and_makes_the_same_decisions() {
    build_and_test_skeleton("js", "js-no-drops", &[]);
}

/// Generates a postgres project in `lang`, builds it with its own Makefile,
/// and runs the fixture every language shares: the same four decisions.
fn build_and_test_skeleton(lang: &str, name: &str, make_args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let project = new_project(dir.path(), name, lang, "postgres");
    let build = Command::new("make")
        .arg("build")
        .args(make_args)
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let wasm = project.join(format!("build/{name}.wasm"));
    // An interpreter's fresh instance is slower than Rust's, more so under
    // a debug host: a deadline like the one such a policy would be given.
    let out = gatehouse(&[
        "policy",
        "test",
        wasm.to_str().unwrap(),
        "--fixtures",
        project.join("fixtures").to_str().unwrap(),
        "--timeout-ms",
        "2000",
        "--format",
        "json",
    ]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert!(out.status.success(), "{}", failures(&report));
    assert_eq!(report["passed"], 4);
    assert_eq!(report["policy"], format!("{name} 0.1.0"));
}

#[test]
fn python_and_js_skeletons_are_complete_projects() {
    let dir = tempfile::tempdir().unwrap();
    for hook in ["http", "postgres", "kubernetes", "llm", "mcp", "ssh"] {
        let py = new_project(dir.path(), &format!("py-{hook}"), "python", hook);
        let app = std::fs::read_to_string(py.join("app.py")).unwrap();
        let class = format!("class {}(exports.", capitalise(hook));
        assert!(app.contains(&class), "{hook}: {app}");
        let make = std::fs::read_to_string(py.join("Makefile")).unwrap();
        assert!(make.contains(&format!("gatehouse:policy/{hook}-policy@0.1.0")));
        let js = new_project(dir.path(), &format!("js-{hook}"), "js", hook);
        let policy = std::fs::read_to_string(js.join("policy.js")).unwrap();
        assert!(
            policy.contains(&format!("export const {hook} = {{")),
            "{policy}"
        );
        let package: Value =
            serde_json::from_str(&std::fs::read_to_string(js.join("package.json")).unwrap())
                .unwrap();
        assert!(
            package["scripts"]["build"]
                .as_str()
                .unwrap()
                .contains("componentize-js policy.js")
        );
        // The same fixture for every language.
        assert_eq!(
            std::fs::read(py.join(format!("fixtures/{hook}.yaml"))).unwrap(),
            std::fs::read(js.join(format!("fixtures/{hook}.yaml"))).unwrap()
        );
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

const GITHUB_TOKEN: &str = "ghp_R2d2C3p0L1k3Sk1w4lk3rH4nS0l0Ch3wb4cX";

#[tokio::test(flavor = "multi_thread")]
async fn secrets_masks_credentials_both_ways_for_curl() {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy(
            "secrets",
            "secrets",
            Some(json!({"unless_groups": ["secops"]})),
        )
        .http_connection("api", &upstream.url(), &["secrets"], "")
        .config("[policies.defaults]\ntimeout_ms = 2000")
        .start();
    let key = gh.create_key("ci-bot", &["dev"]);
    let body = format!(
        "{{\"note\": \"deploy with {GITHUB_TOKEN}\", \"dsn\": \"postgres://app:s3cr3t-pw@db:5432/app\"}}"
    );
    let curl = |path: &str, key: &str, body: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--fail-with-body",
            "-H",
            &format!("Authorization: Bearer {key}"),
        ]);
        if let Some(b) = body {
            cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
        }
        let out = cmd.arg(gh.url("api", path)).output().expect("run curl");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    // The request body is masked before the upstream sees it (it echoes it).
    let echoed: Value = serde_json::from_str(&curl("/echo", &key, Some(&body))).unwrap();
    let seen = echoed["body"].as_str().unwrap();
    assert_eq!(
        seen,
        "{\"note\": \"deploy with [MASKED:github-token]\", \"dsn\": \"[MASKED:connection-string-password]db:5432/app\"}"
    );
    // The response is masked on the way back.
    let resp = curl("/json", &key, None);
    assert!(resp.contains("key [MASKED:aws-access-key-id]"), "{resp}");
    // secops is exempt.
    let secops = gh.create_key("secops-bot", &["secops"]);
    assert!(curl("/json", &secops, None).contains(gatehouse_tests::AWS_KEY));
    // Nothing unmasked reached the audit trail.
    gh.wait_for_events(3);
    let details: Vec<String> = gh
        .audit_db()
        .prepare("SELECT detail FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let all = details.join("\n");
    assert!(
        !all.contains(GITHUB_TOKEN) && !all.contains("s3cr3t-pw"),
        "{all}"
    );
}

#[test]
fn pii_masks_columns_and_free_text_for_psql() {
    let cluster = PgCluster::start();
    cluster.app_sql(
        "shop",
        "CREATE TABLE customers (id int, email text, phone_number text, email_verified bool, notes text);\
         INSERT INTO customers VALUES (1, 'ann@example.com', '+44 20 7946 0958', true,\
           'IBAN GB82 WEST 1234 5698 7654 32, card 4111 1111 1111 1111, order 1234 5678 1234 5678');",
    );
    let gh = GatehouseBuilder::new()
        .policy(
            "pii",
            "pii",
            Some(json!({"methods": {"email": {"partial": {"prefix": 2, "suffix": 0}}}})),
        )
        .postgres_connection(
            "crm",
            &cluster.url(),
            &["pii"],
            "",
            "allow_cleartext_password = true",
        )
        .config("[policies.defaults]\ntimeout_ms = 2000")
        .start();
    let key = gh.create_key("crm-bot", &["dev"]);
    let out = psql(
        &gh,
        "crm",
        &key,
        "shop",
        "SELECT id, email, phone_number, email_verified, notes FROM customers;\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let row = stdout(&out);
    let cols: Vec<&str> = row.trim_end().split('|').collect();
    assert_eq!(cols[0], "1");
    assert!(
        cols[1].starts_with("an") && !cols[1].contains("example.com"),
        "{row}"
    );
    assert_eq!(cols[2], "[MASKED:phone_number]", "{row}");
    assert_eq!(cols[3], "t", "{row}");
    assert_eq!(
        cols[4], "IBAN [MASKED:iban], card [MASKED:credit-card], order 1234 5678 1234 5678",
        "{row}"
    );
}
