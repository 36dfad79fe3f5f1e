//! The LLM tests' parts: a local OpenAI- and Anthropic-compatible upstream
//! (`tests/python/llm_upstream.py`, real SSE framing), the official `openai`
//! and `anthropic` Python SDKs driven through a gateway connection
//! (`tests/python/llm_client.py`, in the `target/py` venv of `make py-deps`).
//! Connections come from `GatehouseBuilder::protocol_connection`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::{UPSTREAM_TOKEN, root};

/// What the upstream puts in its answer to the prompt `leak`, near the end
/// of a long text (so it arrives split across 5-character deltas). It
/// matches the host's `openai-api-key` detector.
pub const LEAKED_SECRET: &str = "sk-proj-Zx81Qw93Lm47Np02Rt56Vb19Kc38Hd74Gf65JsAb1";

/// The venv's Python, with the SDKs installed.
pub fn python() -> std::path::PathBuf {
    let p = root().join("target/py/bin/python");
    assert!(p.exists(), "{} is missing: run `make py-deps`", p.display());
    p
}

/// The Python upstream; killed on drop.
pub struct LlmUpstream {
    child: Child,
    pub port: u16,
}

impl LlmUpstream {
    pub fn start() -> LlmUpstream {
        let mut child = Command::new(python())
            .arg(root().join("tests/python/llm_upstream.py"))
            .arg(UPSTREAM_TOKEN)
            .arg(LEAKED_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the LLM upstream");
        let stdout = child.stdout.take().expect("upstream stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the upstream's port");
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the upstream said {line:?}, not its port"));
        LlmUpstream { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request body the upstream received, oldest first.
    pub async fn requests(&self) -> Vec<Value> {
        crate::http_client()
            .get(format!("{}/_requests", self.url()))
            .send()
            .await
            .expect("read the upstream's requests")
            .json::<Vec<Value>>()
            .await
            .expect("JSON")
    }
}

impl Drop for LlmUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the SDK client: `mode` is `chat`, `chat-stream`, `embeddings`,
/// `anthropic` or `anthropic-stream`. Returns what the SDK returned, or
/// `{"error": {...}}` with the SDK's exception.
pub async fn sdk(mode: &str, base_url: &str, key: &str, model: &str, prompt: &str) -> Value {
    let out = tokio::process::Command::new(python())
        .arg(root().join("tests/python/llm_client.py"))
        .args([mode, base_url, key, model, prompt])
        .env("NO_PROXY", "*")
        .output()
        .await
        .expect("run the SDK client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the SDK client printed no JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
