//! The real `kubectl`, pointed at a Gatehouse connection through a
//! kubeconfig that holds only the caller's Gatehouse key (never the
//! cluster's credential), with its own home and discovery cache per test.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

pub struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    binary: PathBuf,
    envs: Vec<(String, String)>,
}

impl Kubectl {
    /// A kubeconfig for `server` (`https://127.0.0.1:PORT`, whose
    /// certificate `ca` signs) with `token` (a Gatehouse API key) as the
    /// user's bearer token. kubectl sends no token over plain HTTP.
    pub fn new(server: &str, ca: &std::path::Path, token: &str) -> Kubectl {
        let dir = tempfile::tempdir().expect("kubectl home");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: gatehouse
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: gatehouse-key
  user:
    token: {token}
contexts:
- name: gatehouse
  context:
    cluster: gatehouse
    user: gatehouse-key
    namespace: default
current-context: gatehouse
",
                ca = ca.display()
            ),
        )
        .expect("write kubeconfig");
        Kubectl {
            dir,
            kubeconfig,
            binary: binary(),
            envs: vec![],
        }
    }

    /// The same kubeconfig with another kubectl binary.
    pub fn using(mut self, binary: PathBuf) -> Kubectl {
        self.binary = binary;
        self
    }

    /// The same with an environment variable set (e.g.
    /// `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`, which makes kubectl 1.30+
    /// speak SPDY for exec).
    pub fn with_env(mut self, key: &str, value: &str) -> Kubectl {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.binary);
        // Global flags first: after `--` everything is the pod's command.
        c.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("http_proxy")
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs kubectl to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `stdin` written to it.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut input = child.stdin.take().expect("stdin");
        // Written from another thread while the output is read: a large
        // input would otherwise fill the pipes both ways.
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().expect("kubectl output");
        let _ = writer.join();
        out
    }

    /// Starts kubectl and leaves it running (`port-forward`), with stdout
    /// and stderr piped. The caller stops it.
    pub fn start(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl")
    }

    /// Runs kubectl on a blocking thread, for a command that waits (held
    /// for approval) while the test does something else.
    pub fn spawn(&self, args: &[&str]) -> tokio::task::JoinHandle<Output> {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        tokio::task::spawn_blocking(move || command.output().expect("run kubectl"))
    }
}

/// `$KUBECTL`, else `kubectl` on the PATH (the Makefile's `kubectl`
/// target installs Debian's `kubernetes-client` when there is none).
pub fn binary() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// A kubectl of an older minor version installed beside the one on the
/// PATH (Google Cloud SDK's dispatcher ships `kubectl.1.27` to `1.33`),
/// if there is one.
pub fn older(minor: u32) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.with_file_name(format!("kubectl.1.{minor}")))
        .filter(|p| p.exists())
}

/// stdout and stderr of a run, for assertion messages.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
