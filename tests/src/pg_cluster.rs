//! A throwaway PostgreSQL cluster with password authentication, started
//! from the installed server binaries: SCRAM-SHA-256 for most roles, md5
//! and trust for one role each, so every upstream login path is real.
//!
//! `initdb` runs once per test process into a template; each cluster is a
//! copy of it with its own port, stopped (immediately) on drop. PostgreSQL
//! refuses to run as root, so when the tests run as root the server runs as
//! the `postgres` system user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The superuser's password in every cluster.
pub const SUPERUSER_PASSWORD: &str = "cluster-superuser-pw-9d1e";
/// The role Gatehouse logs in as (SCRAM-SHA-256).
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "app-scram-password-4b7c";
/// A role whose password is stored as md5 and checked with md5.
pub const MD5_USER: &str = "legacy";
pub const MD5_PASSWORD: &str = "legacy-md5-password-2e8f";
/// A role admitted without a password.
pub const TRUST_USER: &str = "trusted";

pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
}

fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(base)
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("an installed PostgreSQL with initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server binary, as `postgres` when we are root.
fn server_cmd(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn give_to_server_user(path: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .expect("chown");
        assert!(st.success(), "chown {} to postgres", path.display());
    }
}

/// The initdb'd template, made once (kept under `target/pg-template`, reused
/// by later runs while the roles and settings below stay the same).
fn template() -> &'static PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let bin = bin_dir();
        let version = bin
            .parent()
            .and_then(|p| p.file_name())
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pg".into());
        let base = crate::root().join("target/pg-template");
        let ready = base.join(format!("{version}-v1"));
        if ready.join("data/PG_VERSION").exists() {
            return ready.join("data");
        }
        std::fs::create_dir_all(&base).expect("target/pg-template");
        let dir = base.join(format!("building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("template dir");
        let pw = dir.join("pw");
        std::fs::write(&pw, SUPERUSER_PASSWORD).expect("pwfile");
        give_to_server_user(&base);
        let out = server_cmd(&bin, "initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["--auth=scram-sha-256", "-U", "postgres", "-N", "-E", "UTF8", "--locale=C"])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = format!(
            "local all all scram-sha-256\nhost all {TRUST_USER} 127.0.0.1/32 trust\nhost all {MD5_USER} 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n"
        );
        std::fs::write(dir.join("data/pg_hba.conf"), hba).expect("pg_hba.conf");
        give_to_server_user(&dir);
        // Another process may have finished first; either copy will do.
        if std::fs::rename(&dir, &ready).is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        ready.join("data")
    })
}

impl PgCluster {
    /// Starts a fresh cluster with the roles above and a `shop` database
    /// owned by `app`.
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// The same, serving TLS with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> PgCluster {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&Path, &Path)>) -> PgCluster {
        let bin = bin_dir();
        let template = template();
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir()
            .expect("cluster dir");
        let st = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(dir.path().join("data"))
            .status()
            .expect("copy template");
        assert!(st.success(), "copy the template cluster");
        let mut tls_opts = String::new();
        if let Some((cert, key)) = tls {
            let data = dir.path().join("data");
            std::fs::copy(cert, data.join("server.crt")).expect("copy the certificate");
            std::fs::copy(key, data.join("server.key")).expect("copy the key");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("key mode");
            tls_opts = " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".into();
        }
        give_to_server_user(dir.path());
        let port = free_port();
        let out = server_cmd(&bin, "pg_ctl")
            .arg("-D")
            .arg(dir.path().join("data"))
            .arg("-l")
            .arg(dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60{tls_opts}",
                dir.path().display()
            ))
            .args(["-w", "-t", "30", "start"])
            .output()
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        let c = PgCluster { dir, port, bin };
        c.superuser_sql(
            "postgres",
            &format!(
                "CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}';\
                 CREATE ROLE {TRUST_USER} LOGIN;\
                 SET password_encryption = 'md5';\
                 CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}';"
            ),
        );
        c.superuser_sql(
            "postgres",
            &format!("CREATE DATABASE shop OWNER {APP_USER}"),
        );
        c
    }

    pub fn url(&self) -> String {
        format!("postgres://127.0.0.1:{}", self.port)
    }

    /// Runs SQL as the superuser; returns unaligned, tuples-only output.
    pub fn superuser_sql(&self, db: &str, sql: &str) -> String {
        run_psql(self.port, "postgres", SUPERUSER_PASSWORD, db, sql)
    }

    /// Runs SQL as `app` in `db`.
    pub fn app_sql(&self, db: &str, sql: &str) -> String {
        run_psql(self.port, APP_USER, APP_PASSWORD, db, sql)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the server at once, as a crash would (for upstream-failure tests).
    pub fn kill(&self) {
        let _ = server_cmd(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run_psql(port: u16, user: &str, password: &str, db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            db,
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql as {user}: {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
