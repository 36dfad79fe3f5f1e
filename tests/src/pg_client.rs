//! Real PostgreSQL clients pointed at a Gatehouse connection: `psql`,
//! `pgbench` and tokio-postgres, each presenting a Gatehouse credential as
//! the password.

use std::process::{Command, Output};

use crate::Gatehouse;

/// Runs `psql` through `connection` with `credential` as the password.
/// `script` goes to stdin; ON_ERROR_STOP is off so a script can go on after
/// an error, as an interactive user would.
pub fn psql(gh: &Gatehouse, connection: &str, credential: &str, db: &str, script: &str) -> Output {
    psql_args(gh, connection, credential, db, script, &[])
}

pub fn psql_args(
    gh: &Gatehouse,
    connection: &str,
    credential: &str,
    db: &str,
    script: &str,
    args: &[&str],
) -> Output {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &gh.port(connection).to_string()])
        .args(["-U", "agent", "-d", db, "-X", "-q", "-A", "-t"])
        .args(args)
        .env("PGPASSWORD", credential)
        .env_remove("PGSSLMODE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run psql");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write the script");
    child.wait_with_output().expect("psql output")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tokio-postgres client through `connection`; the connection task runs
/// in the background.
pub async fn connect(
    gh: &Gatehouse,
    connection: &str,
    credential: &str,
    db: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!(
        "host=127.0.0.1 port={} user=agent dbname={db} password={credential} sslmode=disable",
        gh.port(connection)
    );
    let (client, conn) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// Runs pgbench through `connection`; returns its output.
pub fn pgbench(
    gh: &Gatehouse,
    connection: &str,
    credential: &str,
    db: &str,
    args: &[&str],
) -> Output {
    Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &gh.port(connection).to_string()])
        .args(["-U", "agent"])
        .args(args)
        .arg(db)
        .env("PGPASSWORD", credential)
        .output()
        .expect("run pgbench")
}

/// A hand-driven protocol session, for sending what no real client would.
pub struct RawSession {
    pub stream: std::net::TcpStream,
}

impl RawSession {
    /// Connects and logs in with `credential`; returns once ReadyForQuery arrives.
    pub fn login(gh: &Gatehouse, connection: &str, credential: &str, db: &str) -> RawSession {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", gh.port(connection))).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(&196_608i32.to_be_bytes());
        for (k, v) in [("user", "raw"), ("database", db)] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        stream.write_all(&packet).unwrap();
        let mut s = RawSession { stream };
        let (tag, _) = s.read();
        assert_eq!(tag, b'R', "expected an authentication request");
        let mut pw = credential.as_bytes().to_vec();
        pw.push(0);
        s.send(b'p', &pw);
        loop {
            match s.read() {
                (b'Z', _) => return s,
                (b'E', body) => panic!("login failed: {}", String::from_utf8_lossy(&body)),
                _ => {}
            }
        }
    }

    pub fn send(&mut self, tag: u8, body: &[u8]) {
        use std::io::Write;
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        self.stream.write_all(&m).unwrap();
    }

    /// Sends raw bytes (a header that lies about its length, say).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    pub fn query(&mut self, sql: &str) {
        let mut b = sql.as_bytes().to_vec();
        b.push(0);
        self.send(b'Q', &b);
    }

    /// Reads one message: (tag, body). Panics on EOF.
    pub fn read(&mut self) -> (u8, Vec<u8>) {
        self.try_read().expect("connection closed")
    }

    /// Reads one message, or `None` at end of stream.
    pub fn try_read(&mut self) -> Option<(u8, Vec<u8>)> {
        use std::io::Read;
        let mut head = [0u8; 5];
        self.stream.read_exact(&mut head).ok()?;
        let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some((head[0], body))
    }

    /// Reads until an ErrorResponse and returns its text, failing at EOF.
    pub fn expect_error(&mut self) -> String {
        loop {
            match self.read() {
                (b'E', body) => return String::from_utf8_lossy(&body).replace('\0', "|"),
                _ => continue,
            }
        }
    }
}
