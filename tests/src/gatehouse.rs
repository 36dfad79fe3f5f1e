//! Starts and stops the real `gatehouse serve` process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tempfile::TempDir;

use crate::{gatehouse_bin, policy_wasm, root};

/// Builds a configuration in a fresh folder and starts the gateway.
pub struct GatehouseBuilder {
    dir: TempDir,
    body: String,
    database: String,
    admin_groups: Vec<String>,
    auditor_groups: Vec<String>,
    env: Vec<(String, String)>,
}

/// A running gateway. Killed on drop.
pub struct Gatehouse {
    child: Child,
    dir: TempDir,
    /// The environment `serve` got; CLI commands get it too.
    env: Vec<(String, String)>,
    pub addrs: HashMap<String, SocketAddr>,
}

impl Default for GatehouseBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GatehouseBuilder {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("policies")).expect("policies dir");
        Self {
            dir,
            body: String::new(),
            database: "sqlite://audit.db".into(),
            admin_groups: vec![],
            auditor_groups: vec![],
            env: vec![(
                "GATEHOUSE_UPSTREAM_TOKEN".into(),
                crate::UPSTREAM_TOKEN.into(),
            )],
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Copies a built component into the policy folder as `name.wasm`, with
    /// optional settings as `name.json`.
    pub fn policy(self, name: &str, crate_name: &str, settings: Option<serde_json::Value>) -> Self {
        install_policy(self.dir.path(), name, crate_name, settings);
        self
    }

    /// Appends TOML to the configuration.
    pub fn config(mut self, toml: &str) -> Self {
        self.body.push_str(toml);
        self.body.push('\n');
        self
    }

    /// An HTTP connection to `upstream` holding the test credential.
    pub fn http_connection(
        self,
        name: &str,
        upstream: &str,
        policies: &[&str],
        extra: &str,
    ) -> Self {
        self.protocol_connection("http", name, upstream, policies, extra, "authorization")
    }

    /// A connection of a protocol on HTTP (`http`, `llm`, `mcp`,
    /// `kubernetes`) to `upstream`, holding the test credential in `header`
    /// (`authorization` gets the `Bearer ` prefix; others, such as
    /// Anthropic's `x-api-key`, none). `extra` goes into the
    /// `[[connections]]` table.
    pub fn protocol_connection(
        self,
        protocol: &str,
        name: &str,
        upstream: &str,
        policies: &[&str],
        extra: &str,
        header: &str,
    ) -> Self {
        let policies = policies
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let prefix = if header == "authorization" {
            "Bearer "
        } else {
            ""
        };
        self.config(&format!(
            r#"
[[connections]]
name = "{name}"
protocol = "{protocol}"
listen = "127.0.0.1:0"
upstream = "{upstream}"
policies = [{policies}]
{extra}
[connections.credential]
header = "{header}"
prefix = "{prefix}"
secret = {{ env = "GATEHOUSE_UPSTREAM_TOKEN" }}
"#
        ))
    }

    /// A PostgreSQL connection to `upstream` (`postgres://HOST:PORT`) that
    /// logs in as the test cluster's `app` role. `extra` goes into the
    /// `[[connections]]` table, `pg_extra` into its `postgres` table.
    pub fn postgres_connection(
        self,
        name: &str,
        upstream: &str,
        policies: &[&str],
        extra: &str,
        pg_extra: &str,
    ) -> Self {
        let policies = policies
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let has_user = pg_extra.lines().any(|l| l.trim_start().starts_with("user"));
        let user = if has_user {
            String::new()
        } else {
            format!(
                "user = \"{}\"\npassword = {{ env = \"GATEHOUSE_PG_PASSWORD\" }}\n",
                crate::pg_cluster::APP_USER
            )
        };
        self.env("GATEHOUSE_PG_PASSWORD", crate::pg_cluster::APP_PASSWORD)
            .config(&format!(
                r#"
[[connections]]
name = "{name}"
protocol = "postgres"
listen = "127.0.0.1:0"
upstream = "{upstream}"
policies = [{policies}]
{extra}
[connections.postgres]
{user}{pg_extra}
"#
            ))
    }

    /// Groups allowed to change state through the admin API.
    pub fn admin_groups(mut self, groups: &[&str]) -> Self {
        self.admin_groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Groups allowed to read the audit trail through the admin API.
    pub fn auditor_groups(mut self, groups: &[&str]) -> Self {
        self.auditor_groups = groups.iter().map(|g| g.to_string()).collect();
        self
    }

    /// Uses another audit database (e.g. a PostgreSQL URL).
    pub fn database(mut self, url: &str) -> Self {
        self.database = url.to_string();
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn write_config(&self) -> PathBuf {
        let cache = root().join("target/gatehouse-test-cache");
        let text = format!(
            "[audit]\ndatabase = \"{}\"\n\n[policies]\ndir = \"policies\"\ncache_dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\nadmin_groups = {:?}\nauditor_groups = {:?}\n\n{}",
            self.database,
            cache.display(),
            self.admin_groups,
            self.auditor_groups,
            self.body
        );
        let path = self.dir.path().join("gatehouse.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    pub fn start(self) -> Gatehouse {
        self.write_config();
        spawn(self.dir, self.env)
    }
}

/// Runs `serve` on the configuration in `dir` and waits for `ready`.
fn spawn(dir: TempDir, env: Vec<(String, String)>) -> Gatehouse {
    let config = dir.path().join("gatehouse.toml");
    // Appended, so a restarted gateway's log follows the first run's.
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("gatehouse.log"))
        .expect("log file");
    let mut cmd = Command::new(gatehouse_bin());
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env("GATEHOUSE_LOG", "info,gatehouse=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gatehouse");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addrs = HashMap::new();
    let mut gh = Gatehouse {
        child,
        dir,
        env,
        addrs: HashMap::new(),
    };
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == "ready" => break,
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("listening ")
                    && let Some((name, addr)) = rest.split_once(' ')
                {
                    addrs.insert(name.to_string(), addr.parse().expect("addr"));
                }
            }
            Err(_) => panic!("gatehouse did not start; its log:\n{}", gh.log()),
        }
    }
    gh.addrs = addrs;
    gh
}

/// Copies a built component (and settings) into `dir/policies`. Written to a
/// temporary name and renamed, the way operators should deploy.
pub fn install_policy(
    dir: &Path,
    name: &str,
    crate_name: &str,
    settings: Option<serde_json::Value>,
) {
    let policies = dir.join("policies");
    if let Some(s) = settings {
        let tmp = policies.join(format!(".{name}.json.tmp"));
        std::fs::write(&tmp, s.to_string()).expect("write settings");
        std::fs::rename(&tmp, policies.join(format!("{name}.json"))).expect("rename settings");
    }
    let tmp = policies.join(format!(".{name}.wasm.tmp"));
    std::fs::copy(policy_wasm(crate_name), &tmp).expect("copy policy");
    std::fs::rename(&tmp, policies.join(format!("{name}.wasm"))).expect("rename policy");
}

impl Gatehouse {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self, connection: &str, path: &str) -> String {
        format!("http://{}{path}", self.addrs[connection])
    }

    /// The process id (to read its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A listener's port, by connection name.
    pub fn port(&self, connection: &str) -> u16 {
        self.addrs[connection].port()
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs["admin"])
    }

    /// `GET` on the admin API as `key`, the answer as JSON (`null` if it is not JSON).
    pub async fn admin_get(&self, key: &str, path: &str) -> serde_json::Value {
        let resp = crate::http_client()
            .get(self.admin_url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("the admin API answers");
        resp.json().await.unwrap_or(serde_json::Value::Null)
    }

    /// What the gateway has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    /// Runs a `gatehouse` subcommand against this instance's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(gatehouse_bin())
            .args(args)
            .arg("--config")
            .arg(self.dir.path().join("gatehouse.toml"))
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run gatehouse")
    }

    /// Runs a `gatehouse` subcommand that talks to this gateway's admin API
    /// (`--gateway`) with `token` as the caller's credential.
    pub fn cli_remote(&self, token: &str, args: &[&str]) -> Output {
        Command::new(gatehouse_bin())
            .args(args)
            .arg("--gateway")
            .arg(self.admin_url(""))
            .current_dir(self.dir.path())
            .env("GATEHOUSE_TOKEN", token)
            .env_remove("GATEHOUSE_GATEWAY")
            .output()
            .expect("run gatehouse")
    }

    /// Creates an API key and returns it.
    pub fn create_key(&self, name: &str, groups: &[&str]) -> String {
        self.create_key_owned(name, "alice@example.com", "agent", groups)
    }

    /// Creates a key for a person (`kind = human`, acting for nobody; owned
    /// by `name`, or `name@example.com` when it is no address) and returns
    /// it. [`Gatehouse::create_key`] makes agent keys that all act for
    /// alice@example.com.
    pub fn create_person_key(&self, name: &str, groups: &[&str]) -> String {
        let owner = if name.contains('@') {
            name.to_string()
        } else {
            format!("{name}@example.com")
        };
        self.create_key_owned(name, &owner, "human", groups)
    }

    /// Creates a key of `kind` (`agent`, `human`, `service`) named `name`
    /// and owned by `owner`, and returns it.
    pub fn create_key_owned(&self, name: &str, owner: &str, kind: &str, groups: &[&str]) -> String {
        let groups = groups.join(",");
        let mut args = vec![
            "keys", "create", "--name", name, "--owner", owner, "--kind", kind,
        ];
        if !groups.is_empty() {
            args.extend(["--groups", groups.as_str()]);
        }
        let out = self.cli(&args);
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }

    pub fn install_policy(
        &self,
        name: &str,
        crate_name: &str,
        settings: Option<serde_json::Value>,
    ) {
        install_policy(self.dir.path(), name, crate_name, settings);
    }

    pub fn policy_path(&self, file: &str) -> PathBuf {
        self.dir.path().join("policies").join(file)
    }

    /// Opens the audit database read-write (for tamper tests) or to query it.
    pub fn audit_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("audit.db")).expect("open audit db")
    }

    /// Waits until the audit store holds at least `n` events.
    pub fn wait_for_events(&self, n: i64) -> i64 {
        for _ in 0..100 {
            let count: i64 = self
                .audit_db()
                .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
                .unwrap_or(0);
            if count >= n {
                return count;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("fewer than {n} audit events were written");
    }

    /// Kills the process at once, as a crash would; the folder, its
    /// configuration and store stay for [`Gatehouse::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit, keeping the folder (to read
    /// the store afterwards, or to restart).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    /// Starts the gateway again on the same folder and configuration (new
    /// ports), after [`Gatehouse::kill`] or [`Gatehouse::terminate`].
    pub fn restart(mut self) -> Gatehouse {
        self.kill();
        // Moved out; the dropped shell kills nothing (the child has exited).
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        let env = std::mem::take(&mut self.env);
        spawn(dir, env)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
