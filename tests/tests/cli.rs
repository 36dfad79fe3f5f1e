//! The command line outside `serve`: `policy check`, `keys`, and errors.

use std::process::Command;

use gatehouse_tests::{gatehouse_bin, policy_wasm};

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
