//! MCP with the official Python SDK on both sides: [`McpServer`] runs
//! `tests/mcp/server.py` (FastMCP: streamable HTTP with SSE and with JSON
//! answers, and the legacy HTTP+SSE transport), and [`McpClient`] runs
//! `tests/mcp/client.py`, the SDK's client, through a Gatehouse connection.
//! Both need the venv of `make py-deps`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::root;

/// The venv's Python, with the MCP SDK.
pub fn python() -> PathBuf {
    let p = root().join("target/py/bin/python");
    assert!(
        p.exists() && root().join("target/py/.mcp-1.30.0").exists(),
        "run `make py-deps` (make test does) for the MCP SDK"
    );
    p
}

/// The MCP server, killed on drop.
pub struct McpServer {
    child: Child,
    pub port: u16,
}

impl McpServer {
    pub fn start() -> McpServer {
        let mut child = Command::new(python())
            .arg(root().join("tests/mcp/server.py"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/mcp/server.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("listening ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => port,
            _ => {
                let _ = child.kill();
                panic!("the MCP server did not start");
            }
        };
        McpServer { child, port }
    }

    /// The origin Gatehouse forwards to.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which transport the SDK client uses, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Streamable HTTP at `/mcp` (the server answers with event streams).
    Streamable,
    /// Streamable HTTP at `/json/mcp` (the server answers with JSON).
    StreamableJson,
    /// The legacy HTTP+SSE transport at `/sse`.
    Sse,
}

impl Transport {
    pub const ALL: [Transport; 3] = [
        Transport::Streamable,
        Transport::StreamableJson,
        Transport::Sse,
    ];

    fn path(self) -> &'static str {
        match self {
            Transport::Streamable => "/mcp",
            Transport::StreamableJson => "/json/mcp",
            Transport::Sse => "/sse",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            _ => "streamable",
        }
    }
}

/// The SDK client pointed at `base` (a Gatehouse connection's URL).
pub struct McpClient {
    pub base: String,
    pub token: String,
}

impl McpClient {
    pub fn new(base: &str, token: &str) -> McpClient {
        McpClient {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// Runs `steps` in one session (see `tests/mcp/client.py`) and returns
    /// the client's account: `{"server", "steps": [...]}` or `{"fatal"}`.
    pub async fn run(&self, transport: Transport, steps: Value) -> Value {
        let out = tokio::process::Command::new(python())
            .arg(root().join("tests/mcp/client.py"))
            .arg(format!("{}{}", self.base, transport.path()))
            .arg(transport.name())
            .arg(&self.token)
            .arg(steps.to_string())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("the MCP client finished within 120 s")
            .expect("run tests/mcp/client.py");
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "the MCP client printed no JSON ({e}): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}
