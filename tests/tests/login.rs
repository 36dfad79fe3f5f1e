//! `gatehouse login` and `gatehouse keys --gateway`, end to end: the real
//! binary as a subprocess with its own home folder, the real OpenID provider,
//! and a person driving the provider's pages over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gatehouse_tests::oidc::OidcProvider;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, Upstream, gatehouse_bin};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A gateway trusting `idp`, whose CLI client is `cli_client`, in front of
/// `upstream` on the connection `api` (for the group `dev`).
fn gateway(idp: &OidcProvider, upstream: &Upstream, cli_client: &str) -> Gatehouse {
    GatehouseBuilder::new()
        .admin_groups(&["gatehouse-admins"])
        .policy("allow-all", "allow-all", None)
        .config(&format!(
            "[[identity.oidc]]\nissuer = \"{}\"\naudience = \"gatehouse\"\ncli_client_id = \"{cli_client}\"\n",
            idp.issuer
        ))
        .http_connection("api", &upstream.url(), &["allow-all"], "allowed_groups = [\"dev\"]")
        .start()
}

fn admin(gh: &Gatehouse) -> String {
    gh.admin_url("")
}

/// One person's machine: a home folder of their own for the CLI.
struct Machine {
    home: TempDir,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            home: tempfile::tempdir().expect("home"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(gatehouse_bin());
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("BROWSER", "none")
            .env_remove("GATEHOUSE_TOKEN")
            .env("NO_PROXY", "127.0.0.1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command that needs no one at a browser.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run gatehouse")
    }

    fn spawn(&self, args: &[&str]) -> Running {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse login");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("stdout");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        Running {
            child,
            lines,
            stderr: String::new(),
            stdout: Some(out),
        }
    }

    fn token_files(&self) -> Vec<PathBuf> {
        let dir = self.home.path().join("config/gatehouse/tokens");
        match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.expect("entry").path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect(),
            Err(_) => vec![],
        }
    }
}

/// A `gatehouse login` in progress.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: String,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// Waits for the stderr line that contains `marker`; returns the rest of
    /// it after the marker.
    fn after(&mut self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push_str(&line);
                    self.stderr.push('\n');
                    if let Some(i) = line.find(marker) {
                        return line[i + marker.len()..].trim().to_string();
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {marker:?} on stderr; it said:\n{}", self.stderr);
    }

    /// The user code the CLI shows the person.
    fn user_code(&mut self) -> String {
        self.after("enter the code ")
    }

    /// Waits for the CLI to exit: its status, stdout and the rest of stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gatehouse login did not finish; stderr:\n{}", self.stderr);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
        }
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().expect("stdout reader"))
            .unwrap_or_default();
        (status, stdout, self.stderr.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// GET /echo on `api` with the printed header line; retried while the
/// gateway is still discovering the issuer.
async fn through_gateway(gh: &Gatehouse, header_line: &str) -> u16 {
    let (name, value) = header_line
        .trim()
        .split_once(": ")
        .unwrap_or_else(|| panic!("not a header line: {header_line:?}"));
    let started = Instant::now();
    loop {
        let status = gatehouse_tests::http_client()
            .get(gh.url("api", "/echo"))
            .header(name, value)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        if status != 401 || started.elapsed() > Duration::from_secs(15) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The principal recorded for `subject`, once its session is written.
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
            return serde_json::from_str(&json).expect("principal json");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no session recorded for {subject}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Signs `login` in through the device flow; returns the CLI's stdout.
async fn device_login(machine: &Machine, idp: &OidcProvider, login: &str, args: &[&str]) -> String {
    let mut cli = machine.spawn(args);
    let code = cli.user_code();
    idp.person(login).approve_device(&code).await;
    let (status, stdout, stderr) = cli.finish();
    assert!(status.success(), "login failed:\n{stderr}");
    assert!(stderr.contains("Signed in at"), "{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_with_the_device_flow_and_the_token_is_cached() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "gatehouse-cli");
    let machine = Machine::new();
    let gw = admin(&gh);
    let login = ["login", "--gateway", gw.as_str(), "--connection", "api"];

    // The discovery document names the connection and the CLI client.
    let directory: Value = gatehouse_tests::http_client()
        .get(gh.admin_url("/v1/login"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(directory["connections"][0]["name"], "api");
    assert_eq!(directory["connections"][0]["protocol"], "http");
    assert_eq!(directory["issuers"][0]["client_id"], "gatehouse-cli");
    assert_eq!(directory["issuers"][0]["issuer"], json!(idp.issuer));

    // The person signs in; stdout holds only the header an HTTP client needs.
    let mut cli = machine.spawn(&login);
    let code = cli.user_code();
    idp.person("alice@example.com").approve_device(&code).await;
    let (status, header, stderr) = cli.finish();
    assert!(status.success(), "login failed:\n{stderr}");
    assert!(stderr.contains("open http://127.0.0.1"), "{stderr}");
    assert_eq!(header.lines().count(), 1, "stdout: {header}");
    assert!(header.starts_with("Authorization: Bearer ey"), "{header}");

    // The header works through the gateway, as the person, with their groups.
    assert_eq!(through_gateway(&gh, &header).await, 200);
    let p = principal_of(&gh, "alice@example.com");
    assert_eq!(p["groups"], json!(["dev"]));
    assert_eq!(p["issuer"], json!(idp.issuer));

    // The token is cached privately, with its expiry.
    let files = machine.token_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(files[0].parent().unwrap()), 0o700);
    let cached: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert!(cached["expires_at"].as_i64().unwrap() > 0);
    assert!(cached["refresh_token"].is_string());

    // A second run reuses it: no new sign-in, the same token, other forms.
    let again = machine.run(&login, &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), header);
    assert!(text(&again.stderr).contains("Using the cached sign-in"));
    let token = header.trim().trim_start_matches("Authorization: Bearer ");
    let as_json = machine.run(&[&login[..], &["--format", "json"]].concat(), &[]);
    let j: Value = serde_json::from_slice(&as_json.stdout).expect("json output");
    assert_eq!(j["token"], token);
    assert_eq!(j["connection"], "api");
    let kube = text(
        &machine
            .run(&[&login[..], &["--format", "kubeconfig"]].concat(), &[])
            .stdout,
    );
    assert!(
        kube.starts_with("users:\n- name: \"gatehouse-api\"\n  user:\n    token: \"")
            && kube.contains(token),
        "{kube}"
    );
    let env = text(
        &machine
            .run(&[&login[..], &["--format", "env"]].concat(), &[])
            .stdout,
    );
    assert_eq!(env.trim(), format!("export GATEHOUSE_TOKEN='{token}'"));

    // Once the access token has expired, the refresh token gets a new one.
    let mut stale = cached.clone();
    stale["expires_at"] = json!(0);
    std::fs::write(&files[0], stale.to_string()).unwrap();
    let refreshed = machine.run(&login, &[]);
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    assert!(text(&refreshed.stderr).contains("Refreshed the sign-in"));
    let new_header = text(&refreshed.stdout);
    assert_ne!(new_header, header);
    assert_eq!(through_gateway(&gh, &new_header).await, 200);

    // --force signs in again even so; this time the person refuses.
    let mut cli = machine.spawn(&[&login[..], &["--force"]].concat());
    let code = cli.user_code();
    idp.person("alice@example.com").deny_device(&code).await;
    let (status, stdout, stderr) = cli.finish();
    assert!(!status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("the sign-in was refused") && stderr.contains("access_denied"),
        "{stderr}"
    );

    // No token reaches the gateway's log.
    let signature = token.rsplit('.').next().unwrap();
    assert!(!gh.log().contains(signature), "a token leaked into the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_nobody_finishes_expires_with_a_clear_error() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    // This client's device codes expire after a few seconds.
    let gh = gateway(&idp, &upstream, "gatehouse-cli-short");
    let machine = Machine::new();
    let gw = admin(&gh);
    let mut cli = machine.spawn(&["login", "--gateway", &gw, "--connection", "api"]);
    let _ = cli.user_code();
    let (status, stdout, stderr) = cli.finish();
    assert!(!status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("the code expired"), "{stderr}");
    assert!(machine.token_files().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn login_mistakes_get_errors_that_say_what_to_do() {
    let gh = GatehouseBuilder::new()
        .policy("allow-all", "allow-all", None)
        .http_connection("api", "http://127.0.0.1:9", &["allow-all"], "")
        .start();
    let machine = Machine::new();
    let gw = admin(&gh);

    let out = machine.run(&["login", "--gateway", &gw, "--connection", "nope"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("has no connection \"nope\"") && err.contains("its connections are: api"),
        "{err}"
    );

    // The gateway has no issuer with a CLI client.
    let out = machine.run(&["login", "--gateway", &gw, "--connection", "api"], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cli_client_id"),
        "{}",
        text(&out.stderr)
    );

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let out = machine.run(
        &[
            "login",
            "--gateway",
            &format!("http://{addr}"),
            "--connection",
            "api",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the gateway") && err.contains("--gateway"),
        "{err}"
    );

    // A data listener is not the admin listener.
    let out = machine.run(
        &[
            "login",
            "--gateway",
            &gh.url("api", ""),
            "--connection",
            "api",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("admin listener"),
        "{}",
        text(&out.stderr)
    );

    let out = machine.run(&["login", "--connection", "api"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("give --gateway URL"));
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_change_through_the_admin_api_as_the_caller() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "gatehouse-cli");
    let gw = admin(&gh);
    // The bootstrap path: straight into the store, no gateway involved.
    let admin_key = gh.create_key("root-ops", &["gatehouse-admins"]);
    let dev_key = gh.create_key("dev-bot", &["dev"]);
    let nobody = Machine::new();

    // An admin API key from GATEHOUSE_TOKEN: create, list, revoke.
    let as_admin = [("GATEHOUSE_TOKEN", admin_key.as_str())];
    let out = nobody.run(
        &[
            "keys",
            "--gateway",
            &gw,
            "create",
            "--name",
            "via-api",
            "--owner",
            "alice@example.com",
            "--groups",
            "dev",
            "--expires-in",
            "1h",
        ],
        &as_admin,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let secret = text(&out.stdout).trim().to_string();
    assert!(secret.starts_with("ghk_"), "{secret}");
    let out = nobody.run(&["keys", "--gateway", &gw, "list"], &as_admin);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one key per line"))
        .collect();
    let made = listed
        .iter()
        .find(|k| k["name"] == "via-api")
        .expect("the new key is listed");
    assert!(
        !text(&out.stdout).contains(&secret[20..]),
        "a secret was listed"
    );
    let id = made["id"].as_str().unwrap().to_string();
    // --token-env names another variable.
    let out = nobody.run(
        &[
            "keys",
            "--gateway",
            &gw,
            "--token-env",
            "MY_ADMIN_KEY",
            "revoke",
            &id,
        ],
        &[("MY_ADMIN_KEY", admin_key.as_str())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("revoked {id}")));
    let out = nobody.run(&["keys", "--gateway", &gw, "revoke", &id], &as_admin);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));

    // A non-administrator is refused, and told why.
    let out = nobody.run(
        &[
            "keys",
            "--gateway",
            &gw,
            "create",
            "--name",
            "x",
            "--owner",
            "bob@example.com",
        ],
        &[("GATEHOUSE_TOKEN", dev_key.as_str())],
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(err.contains("403") && err.contains("admin groups"), "{err}");
    // A bad credential: 401, and how to get a good one.
    let out = nobody.run(
        &["keys", "--gateway", &gw, "list"],
        &[("GATEHOUSE_TOKEN", "ghk_bogus_bogus")],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("401") && err.contains("gatehouse login"),
        "{err}"
    );
    // No credential at all.
    let out = nobody.run(&["keys", "--gateway", &gw, "list"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("not signed in") && err.contains("gatehouse login --gateway"),
        "{err}"
    );

    // A person's own sign-in: an administrator may, a developer may not.
    let root = Machine::new();
    device_login(
        &root,
        &idp,
        "root@example.com",
        &["login", "--gateway", &gw],
    )
    .await;
    let out = root.run(&["keys", "--gateway", &gw, "list"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("root-ops"));
    let alice = Machine::new();
    device_login(
        &alice,
        &idp,
        "alice@example.com",
        &["login", "--gateway", &gw],
    )
    .await;
    let out = alice.run(&["keys", "--gateway", &gw, "list"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("403") && err.contains("alice@example.com is not in an admin group"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_in_a_browser_with_pkce() {
    let idp = OidcProvider::start();
    let upstream = Upstream::start().await;
    let gh = gateway(&idp, &upstream, "gatehouse-cli");
    let machine = Machine::new();
    let gw = admin(&gh);
    let mut cli = machine.spawn(&[
        "login",
        "--gateway",
        &gw,
        "--connection",
        "api",
        "--browser",
    ]);
    let _ = cli.after("open this URL in a browser:");
    let url = cli.after("");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let landed = idp.person("alice@example.com").authorize(&url).await;
    assert!(landed.contains("Signed in to Gatehouse"), "{landed}");
    let (status, header, stderr) = cli.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(through_gateway(&gh, &header).await, 200);
    assert_eq!(
        principal_of(&gh, "alice@example.com")["groups"],
        json!(["dev"])
    );
}
