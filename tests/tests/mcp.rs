//! MCP through Gatehouse, with the official Python SDK's client and a server
//! built with the SDK (FastMCP), over streamable HTTP (event-stream and JSON
//! answers) and the legacy HTTP+SSE transport: tool calls allowed, denied,
//! held for approval and masked; `tools/list` filtered, and resources,
//! resource templates and prompts listed and read only as a policy lets
//! each caller (`mcp-listing.filter`); a call of a tool
//! Gatehouse never saw listed (no listing, a restart) decided with what the
//! server says when Gatehouse asks it; and the failure paths: malformed
//! JSON-RPC, batches, bodies over the limit, answers over the limit,
//! truncated and malformed event streams, sessions that are not the
//! caller's, a server that does not answer Gatehouse's own listing.

use std::time::Duration;

use gatehouse_tests::audit_events::events;
use gatehouse_tests::mcp::{McpClient, McpServer, Transport};
use gatehouse_tests::{Gatehouse, GatehouseBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Agents may call the read-only tools and `delete_records` (destructive,
/// so held for `ops`); `run_shell` is denied outright; `admin_reset` is not
/// theirs, so they do not see it. Results are masked. Agents see and read
/// the app's configuration and the public documents, and get the greeting
/// prompt; ops see everything.
fn guard() -> Value {
    json!({
        "groups": {
            "agents": {"allow": ["echo", "lookup_*", "progress_report", "big_report", "delete_records", "run_shell"],
                       "deny": ["run_shell"]},
            "ops": {"allow": ["*"], "deny": ["run_shell"]}
        },
        "approve_destructive": {"approver_groups": ["ops"], "timeout_secs": 60},
        "mask_results": [{"detector": "email"}, {"detector": "credit-card"}],
        "resources": {"groups": {
            "agents": {"allow": ["config://app", "docs://*"], "deny": ["docs://private/*"]},
            "ops": {"allow": ["*"]}
        }},
        "prompts": {"groups": {"agents": {"allow": ["greeting"]}, "ops": {"allow": ["*"]}}}
    })
}

fn mcp_connection(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[[connections]]
name = "tools"
protocol = "mcp"
listen = "127.0.0.1:0"
upstream = "{upstream}"
policies = ["guard"]
{extra}
[connections.credential]
header = "x-upstream-token"
secret = {{ env = "GATEHOUSE_UPSTREAM_TOKEN" }}
"#
    )
}

fn gateway(upstream: &str, extra: &str) -> Gatehouse {
    GatehouseBuilder::new()
        .policy("guard", "mcp-guard", Some(guard()))
        .config(&mcp_connection(upstream, extra))
        .admin_groups(&["admins"])
        .start()
}

/// The server, a gateway in front of it, and the SDK client with an
/// agent's key.
struct Setup {
    _server: McpServer,
    gh: Gatehouse,
    client: McpClient,
}

fn setup(extra: &str) -> Setup {
    let server = McpServer::start();
    let gh = gateway(&server.url(), extra);
    let agent = gh.create_key("mcp-agent", &["agents"]);
    let client = McpClient::new(&gh.url("tools", ""), &agent);
    Setup {
        _server: server,
        gh,
        client,
    }
}

fn texts(step: &Value) -> String {
    step["ok"]["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn tool_names(step: &Value) -> Vec<String> {
    step["ok"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool list: {step}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn tools_are_filtered_allowed_denied_and_masked_on_every_transport() {
    let Setup {
        _server,
        gh,
        client,
    } = setup("");
    for transport in Transport::ALL {
        let out = client
            .run(
                transport,
                json!([
                    ["list_tools"],
                    ["call", "echo", {"text": "hello"}],
                    ["call", "lookup_customer", {"customer_id": "7"}],
                    ["call", "run_shell", {"command": "rm -rf /"}],
                    ["call", "admin_reset", {}],
                    ["call", "progress_report", {"steps": 2}],
                    ["read", "config://app"],
                    ["prompt", "greeting", {"name": "Bo"}]
                ]),
            )
            .await;
        let steps = out["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{transport:?}: {out}"));

        let names = tool_names(&steps[0]);
        assert!(
            names.contains(&"echo".to_string()),
            "{transport:?}: {names:?}"
        );
        assert!(names.contains(&"delete_records".to_string()), "{names:?}");
        assert!(
            !names.contains(&"run_shell".to_string()),
            "{transport:?}: {names:?}"
        );
        assert!(
            !names.contains(&"admin_reset".to_string()),
            "{transport:?}: {names:?}"
        );

        assert_eq!(texts(&steps[1]), "hello", "{transport:?}: {}", steps[1]);

        let customer = texts(&steps[2]);
        assert!(
            customer.contains("Ada Lovelace"),
            "{transport:?}: {customer}"
        );
        assert!(
            customer.contains("[MASKED:email]"),
            "{transport:?}: {customer}"
        );
        assert!(
            customer.contains("[MASKED:credit-card]"),
            "{transport:?}: {customer}"
        );
        assert!(
            !steps[2].to_string().contains("ada@example.com"),
            "{transport:?}: {}",
            steps[2]
        );
        assert!(!steps[2].to_string().contains("4111 1111"), "{}", steps[2]);

        for denied in [&steps[3], &steps[4]] {
            let e = &denied["error"];
            assert_eq!(e["code"], -32001, "{transport:?}: {denied}");
            assert!(
                e["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("is not allowed for your groups"),
                "{transport:?}: {denied}"
            );
            assert_eq!(e["data"]["gatehouse"]["code"], "policy_denied", "{denied}");
            assert_eq!(e["data"]["gatehouse"]["policy"], "guard", "{denied}");
        }

        let progress = texts(&steps[5]);
        assert!(
            progress.contains("2 steps done"),
            "{transport:?}: {progress}"
        );
        assert!(
            !steps[5].to_string().contains("ops@example.com"),
            "{}",
            steps[5]
        );

        let resource = steps[6]["ok"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(
            resource.contains("mode=production"),
            "{transport:?}: {}",
            steps[6]
        );
        assert!(
            resource.contains("[MASKED:email]"),
            "{transport:?}: {resource}"
        );
        let prompt = &steps[7]["ok"]["messages"][0]["content"]["text"];
        assert_eq!(prompt, "Say hello to Bo.", "{transport:?}: {}", steps[7]);
    }

    // The audit trail has each call in MCP terms, with its decision.
    let recorded = events(&gh, "http.exchange");
    let denied = recorded
        .iter()
        .find(|(_, _, d)| d["mcp"]["request"]["tool"] == "run_shell")
        .unwrap_or_else(|| panic!("no run_shell record"));
    assert_eq!(denied.0, "deny");
    assert_eq!(denied.2["decisions"]["protocol_request"]["verdict"], "deny");
    let masked = recorded
        .iter()
        .find(|(_, _, d)| d["mcp"]["request"]["tool"] == "lookup_customer")
        .unwrap();
    assert!(
        !masked.2.to_string().contains("ada@example.com"),
        "{}",
        masked.2
    );
}

#[tokio::test]
async fn callers_outside_the_groups_see_and_call_no_tools() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let dev = gh.create_key("dev-agent", &["dev"]);
    let out = McpClient::new(&gh.url("tools", ""), &dev)
        .run(
            Transport::Streamable,
            json!([["list_tools"], ["call", "echo", {"text": "x"}]]),
        )
        .await;
    assert_eq!(tool_names(&out["steps"][0]), Vec::<String>::new(), "{out}");
    assert_eq!(out["steps"][1]["error"]["code"], -32001, "{out}");
}

async fn approvals(gh: &Gatehouse, key: &str) -> Vec<Value> {
    let v = gh.admin_get(key, "/v1/approvals?status=waiting").await;
    v["approvals"].as_array().cloned().unwrap_or_default()
}

async fn waiting_approval(gh: &Gatehouse, key: &str) -> Value {
    for _ in 0..300 {
        if let Some(a) = approvals(gh, key).await.into_iter().next() {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no approval came up");
}

async fn decide(gh: &Gatehouse, key: &str, id: &str, action: &str) {
    let resp = gatehouse_tests::http_client()
        .post(gh.admin_url(&format!("/v1/approvals/{id}/{action}")))
        .bearer_auth(key)
        .json(&json!({"reason": "checked by a test"}))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "{}",
        resp.text().await.unwrap_or_default()
    );
}

#[tokio::test]
async fn a_destructive_tool_call_waits_for_approval() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let agent = gh.create_key("mcp-agent", &["agents"]);
    let olga = gh.create_person_key("olga", &["ops"]);
    for (transport, action) in [
        (Transport::Streamable, "approve"),
        (Transport::StreamableJson, "deny"),
        (Transport::Sse, "approve"),
        (Transport::Sse, "deny"),
    ] {
        let client = McpClient::new(&gh.url("tools", ""), &agent);
        let call = tokio::spawn(async move {
            client
                .run(
                    transport,
                    json!([["list_tools"], ["call", "delete_records", {"table": "users"}], ["call", "echo", {"text": "after"}]]),
                )
                .await
        });
        let approval = waiting_approval(&gh, &olga).await;
        assert_eq!(approval["protocol"], "mcp", "{approval}");
        assert_eq!(
            approval["request"]["mcp"]["tool"], "delete_records",
            "{approval}"
        );
        assert!(
            !call.is_finished(),
            "{transport:?}: the call went on before a decision"
        );
        let id = approval["id"].as_str().unwrap().to_string();
        decide(&gh, &olga, &id, action).await;
        let out = call.await.unwrap();
        let steps = &out["steps"];
        if action == "approve" {
            assert_eq!(
                texts(&steps[1]),
                "deleted all records of users",
                "{transport:?}: {out}"
            );
        } else {
            assert_eq!(steps[1]["error"]["code"], -32001, "{transport:?}: {out}");
            assert_eq!(
                steps[1]["error"]["data"]["gatehouse"]["code"], "approval_denied",
                "{out}"
            );
        }
        // The session goes on either way.
        assert_eq!(texts(&steps[2]), "after", "{transport:?}: {out}");
    }
}

/// POSTs a raw body to the connection's streamable endpoint.
async fn post(gh: &Gatehouse, key: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = gatehouse_tests::http_client()
        .post(gh.url("tools", path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_requests_get_json_rpc_errors_and_the_gateway_keeps_serving() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "body_limit_bytes = 4096");
    let agent = gh.create_key("mcp-agent", &["agents"]);

    let (status, body) = post(
        &gh,
        &agent,
        "/mcp",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32700, "{body}");

    let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]);
    let (status, body) = post(&gh, &agent, "/mcp", batch.to_string().into_bytes()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("batches"),
        "{body}"
    );

    let (status, body) = post(
        &gh,
        &agent,
        "/mcp",
        br#"{"jsonrpc":"1.0","id":1,"method":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2.0"),
        "{body}"
    );

    let big = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x".repeat(10_000)}}});
    let (status, body) = post(&gh, &agent, "/mcp", big.to_string().into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("body_limit_bytes"),
        "{body}"
    );

    // A legacy POST into a session nobody opened.
    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let (status, body) = post(
        &gh,
        &agent,
        "/messages/?session_id=0123456789abcdef",
        msg.into_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no open MCP session"),
        "{body}"
    );

    // Still serving.
    let client = McpClient::new(&gh.url("tools", ""), &agent);
    let out = client
        .run(
            Transport::Streamable,
            json!([["list_tools"], ["call", "echo", {"text": "still here"}]]),
        )
        .await;
    assert_eq!(texts(&out["steps"][1]), "still here", "{out}");
}

#[tokio::test]
async fn a_legacy_session_belongs_to_the_caller_who_opened_it() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let alice = gh.create_key("alice-agent", &["agents"]);
    let mallory = gh.create_key("mallory-agent", &["agents"]);
    let resp = gatehouse_tests::http_client()
        .get(gh.url("tools", "/sse"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut seen = String::new();
    while !seen.contains("session_id=") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("the endpoint event")
            .unwrap()
            .expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let endpoint = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_string();
    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let (status, body) = post(&gh, &mallory, &endpoint, msg.clone().into_bytes()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another caller"),
        "{body}"
    );
    drop(resp);
}

/// A server that answers every POST with `answer` and closes.
async fn broken_server(answer: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // The head and the JSON body; enough for these tests.
                while !String::from_utf8_lossy(&got).contains("}") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn broken_answers_become_json_rpc_errors() {
    let truncated = broken_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ada@exa",
    )
    .await;
    let garbage = broken_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: this is not json\n\n",
    )
    .await;
    let bad_json = broken_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\nconnection: close\r\n\r\n{\"jsonrpc",
    )
    .await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}})
    .to_string();
    for (upstream, expected) in [
        (truncated, "ended in the middle of an event"),
        (garbage, "not a JSON-RPC message"),
        (bad_json, "not a JSON-RPC message"),
    ] {
        let gh = GatehouseBuilder::new()
            .policy(
                "guard",
                "mcp-guard",
                Some(json!({"unknown_tools": "allow"})),
            )
            .config(&mcp_connection(&upstream, ""))
            .start();
        let key = gh.create_key("mcp-agent", &["agents"]);
        let resp = gatehouse_tests::http_client()
            .post(gh.url("tools", "/mcp"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(call.clone())
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap_or_default();
        assert!(!text.contains("ada@exa"), "{text}");
        let error_line = text
            .lines()
            .map(|l| l.strip_prefix("data: ").unwrap_or(l))
            .find(|l| l.contains("\"error\""))
            .unwrap_or_else(|| panic!("no JSON-RPC error in {text:?}"));
        let error: Value = serde_json::from_str(error_line).unwrap();
        assert_eq!(error["id"], 5, "{text}");
        assert_eq!(error["error"]["code"], -32001, "{text}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{text}"
        );
    }
}

#[tokio::test]
async fn answers_over_the_limit_are_refused() {
    let Setup {
        _server,
        gh: _gh,
        client,
    } = setup("json_mask_limit_bytes = 65536");
    for transport in Transport::ALL {
        let out = client
            .run(
                transport,
                json!([["list_tools"], ["call", "big_report", {"size": 200000}], ["call", "big_report", {"size": 1000}]]),
            )
            .await;
        let steps = &out["steps"];
        assert_eq!(steps[1]["error"]["code"], -32001, "{transport:?}: {out}");
        assert!(
            steps[1]["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("limit"),
            "{transport:?}: {out}"
        );
        assert_eq!(texts(&steps[2]).len(), 1000, "{transport:?}: {out}");
    }
}

/// The records of `tools/call`s of `tool`, oldest first, once at least
/// `n` have landed (records are written behind the data path).
async fn calls_of(gh: &Gatehouse, tool: &str, n: usize) -> Vec<(String, Value)> {
    for _ in 0..100 {
        let calls: Vec<(String, Value)> = events(gh, "http.exchange")
            .into_iter()
            .filter(|(_, _, d)| d["mcp"]["request"]["tool"] == tool)
            .map(|(verdict, _, d)| (verdict, d))
            .collect();
        if calls.len() >= n {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} records of {tool} calls");
}

#[tokio::test]
async fn a_call_without_a_listing_is_decided_with_what_the_server_says() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let agent = gh.create_key("mcp-agent", &["agents"]);
    let olga = gh.create_person_key("olga", &["ops"]);
    for transport in Transport::ALL {
        // No tools/list in this session, nor before it on this gateway for
        // `echo` on the first round: Gatehouse asks the server itself.
        let client = McpClient::new(&gh.url("tools", ""), &agent);
        let out = client
            .run(
                transport,
                json!([["call", "echo", {"text": "unlisted"}], ["call", "admin_reset", {}]]),
            )
            .await;
        assert_eq!(texts(&out["steps"][0]), "unlisted", "{transport:?}: {out}");
        // What the caller may not call stays refused.
        assert_eq!(
            out["steps"][1]["error"]["code"], -32001,
            "{transport:?}: {out}"
        );
    }
    let echo = calls_of(&gh, "echo", 3).await;
    assert_eq!(echo.len(), 3, "{echo:?}");
    let (verdict, first) = &echo[0];
    assert_eq!(verdict, "allow");
    let lookup = &first["mcp"]["request"]["catalog_lookup"];
    assert_eq!(lookup["found"], true, "{first}");
    assert!(lookup["tools"].as_u64() >= Some(7), "{first}");
    assert_eq!(lookup["pages"], 1, "{first}");
    assert!(lookup["error"].is_null(), "{first}");
    assert_eq!(
        first["mcp"]["request"]["tool_info"],
        json!({"destructive": false, "read_only": true}),
        "{first}"
    );
    // Known from then on: the later calls do not ask again.
    for (_, d) in &echo[1..] {
        assert!(d["mcp"]["request"]["catalog_lookup"].is_null(), "{d}");
        assert_eq!(d["mcp"]["request"]["tool_info"]["read_only"], true, "{d}");
    }

    // A destructive tool the gateway never saw listed is held for approval
    // as the server's annotation says (not refused as unknown), on the
    // legacy transport too, where Gatehouse's own answer comes on the
    // client's event stream and is taken off it.
    let gh2 = gateway(&server.url(), "");
    let agent = gh2.create_key("mcp-agent", &["agents"]);
    let olga2 = gh2.create_person_key("olga", &["ops"]);
    drop(olga);
    let client = McpClient::new(&gh2.url("tools", ""), &agent);
    let call = tokio::spawn(async move {
        client
            .run(
                Transport::Sse,
                json!([["call", "delete_records", {"table": "users"}], ["call", "echo", {"text": "after"}]]),
            )
            .await
    });
    let approval = waiting_approval(&gh2, &olga2).await;
    assert_eq!(
        approval["request"]["mcp"]["tool"], "delete_records",
        "{approval}"
    );
    assert_eq!(
        approval["request"]["mcp"]["catalog_lookup"]["found"], true,
        "{approval}"
    );
    decide(&gh2, &olga2, approval["id"].as_str().unwrap(), "deny").await;
    let out = call.await.unwrap();
    assert_eq!(
        out["steps"][0]["error"]["data"]["gatehouse"]["code"], "approval_denied",
        "{out}"
    );
    assert_eq!(texts(&out["steps"][1]), "after", "{out}");
}

/// Reads a legacy event stream until `needle` shows up; returns all read.
async fn read_until(resp: &mut reqwest::Response, seen: &mut String, needle: &str) {
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in {seen}"))
            .unwrap()
            .expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn gatehouse_own_listing_never_reaches_a_legacy_client() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let key = gh.create_key("mcp-agent", &["agents"]);
    let mut stream = gatehouse_tests::http_client()
        .get(gh.url("tools", "/sse"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    read_until(&mut stream, &mut seen, "session_id=").await;
    let endpoint = seen
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_string();
    let send = |body: Value| {
        let (gh, key, endpoint) = (&gh, &key, &endpoint);
        async move {
            let resp = gatehouse_tests::http_client()
                .post(gh.url("tools", endpoint))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
        }
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await;
    read_until(&mut stream, &mut seen, "\"id\":1").await;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "raw"}}}))
    .await;
    read_until(&mut stream, &mut seen, "\"id\":2").await;
    assert!(seen.contains("\"text\":\"raw\""), "{seen}");
    // The answer to Gatehouse's own tools/list went by on this stream and
    // was taken off it.
    assert!(!seen.contains("gatehouse-tools-list"), "{seen}");
    assert!(!seen.contains("lookup_customer"), "{seen}");
    let (_, d) = calls_of(&gh, "echo", 1).await.pop().expect("the record");
    assert_eq!(d["mcp"]["request"]["catalog_lookup"]["found"], true, "{d}");
    assert_eq!(d["mcp"]["request"]["transport"], "sse", "{d}");
}

/// A streamable HTTP session driven by hand, so it can outlive a gateway.
struct RawSession {
    base: String,
    key: String,
    session: String,
    next_id: u64,
}

impl RawSession {
    async fn post(&mut self, body: Value) -> reqwest::Response {
        let mut req = gatehouse_tests::http_client()
            .post(format!("{}/json/mcp", self.base))
            .bearer_auth(&self.key)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if !self.session.is_empty() {
            req = req
                .header("mcp-session-id", &self.session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        req.send().await.unwrap()
    }

    async fn open(base: String, key: String) -> RawSession {
        let mut s = RawSession {
            base,
            key,
            session: String::new(),
            next_id: 1,
        };
        let resp = s
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"}}}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        s.session = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let resp = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(resp.status(), 202);
        s
    }

    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let resp = self
            .post(json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}))
            .await;
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn after_a_restart_the_gateway_asks_the_server_for_the_tools() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let key = gh.create_key("mcp-agent", &["agents"]);
    let mut session = RawSession::open(gh.url("tools", ""), key).await;
    let listed = session.request("tools/list", json!({})).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");

    // The catalogue lived in the old process; the session lives on at the
    // server.
    let gh = gh.restart();
    session.base = gh.url("tools", "");
    let answer = session
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "again"}}),
        )
        .await;
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "again",
        "{answer}\n{}",
        gh.log()
    );
    let (verdict, d) = calls_of(&gh, "echo", 1)
        .await
        .pop()
        .expect("the call's record");
    assert_eq!(verdict, "allow");
    assert_eq!(d["mcp"]["request"]["catalog_lookup"]["found"], true, "{d}");
    assert_eq!(d["mcp"]["request"]["session"], session.session.as_str());
    // A tool the server does not have: asked for, not found, refused as
    // unknown (mcp-guard's `unknown_tools`), and the next call of it within
    // the quiet period does not ask again.
    for _ in 0..2 {
        let answer = session
            .request(
                "tools/call",
                json!({"name": "lookup_nothing", "arguments": {}}),
            )
            .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("list the tools"),
            "{answer}"
        );
    }
    let missing = calls_of(&gh, "lookup_nothing", 2).await;
    assert_eq!(missing.len(), 2);
    assert_eq!(
        missing[0].1["mcp"]["request"]["catalog_lookup"]["found"],
        false
    );
    assert!(
        missing[1].1["mcp"]["request"]["catalog_lookup"]["skipped"].is_string(),
        "{}",
        missing[1].1
    );
}

/// A server that answers `tools/call` with a JSON result, and a
/// `tools/list` as `list` says: never (`None`), or with this body (`{ID}`
/// replaced by the request's id).
async fn catalog_server(list: Option<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !String::from_utf8_lossy(&got).ends_with('}') {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&got).to_string();
                let request: Value = text
                    .split_once("\r\n\r\n")
                    .and_then(|(_, body)| serde_json::from_str(body).ok())
                    .unwrap_or(Value::Null);
                let body = if text.contains("\"tools/list\"") {
                    match list {
                        Some(body) => body.replace("{ID}", &request["id"].to_string()),
                        None => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    }
                } else {
                    r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"called"}]}}"#
                        .to_string()
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_lookup_that_fails_is_bounded_noted_and_the_policy_still_decides() {
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}})
    .to_string();
    for (list, says) in [
        (None, "did not answer tools/list within 1000 ms"),
        (
            Some(r#"{"jsonrpc":"2.0","id":"x","result":{"tools":[]}}"#),
            "it answers another request",
        ),
        (Some("<html>busy</html>"), "not a JSON-RPC answer"),
        (
            Some(r#"{"jsonrpc":"2.0","id":{ID},"result":{"tools":[{"name":"other"}]}}"#),
            "",
        ),
    ] {
        let upstream = catalog_server(list).await;
        let gh = gateway(&upstream, "upstream_timeout_ms = 1000");
        let key = gh.create_key("mcp-agent", &["agents"]);
        let started = std::time::Instant::now();
        let (status, body) = post(&gh, &key, "/mcp", call.clone().into_bytes()).await;
        assert!(started.elapsed() < Duration::from_secs(5), "{says}");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], 5, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("list the tools"),
            "{says}: {body}"
        );
        let (verdict, d) = calls_of(&gh, "echo", 1).await.pop().expect("the record");
        assert_eq!(verdict, "deny");
        let lookup = &d["mcp"]["request"]["catalog_lookup"];
        if says.is_empty() {
            // Answered, without the tool.
            assert_eq!(lookup["found"], false, "{d}");
            assert_eq!(lookup["tools"], 1, "{d}");
        } else {
            let error = lookup["error"].as_str().unwrap_or_default();
            assert!(error.contains(says), "{says}: {d}");
        }
    }
    // A server that refuses the listing: its own error is noted, and with
    // `unknown_tools = "allow"` the call goes on.
    let upstream = catalog_server(Some(
        r#"{"jsonrpc":"2.0","id":{ID},"error":{"code":-32601,"message":"no tools here"}}"#,
    ))
    .await;
    let gh = GatehouseBuilder::new()
        .policy(
            "guard",
            "mcp-guard",
            Some(json!({"unknown_tools": "allow"})),
        )
        .config(&mcp_connection(&upstream, ""))
        .start();
    let key = gh.create_key("mcp-agent", &["agents"]);
    let (_, body) = post(&gh, &key, "/mcp", call.into_bytes()).await;
    assert_eq!(body["result"]["content"][0]["text"], "called", "{body}");
    let (verdict, d) = calls_of(&gh, "echo", 1).await.pop().expect("the record");
    assert_eq!(verdict, "allow");
    assert!(
        d["mcp"]["request"]["catalog_lookup"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the server refused tools/list: no tools here"),
        "{d}"
    );
}

/// The ids in a listing step: `key` is the list, `field` the id.
fn ids(step: &Value, key: &str, field: &str) -> Vec<String> {
    step["ok"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}: {step}"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_string())
        .collect()
}

fn hidden_error(step: &Value, what: &str) {
    let e = &step["error"];
    assert_eq!(e["code"], -32001, "{step}");
    assert_eq!(
        e["message"],
        format!("denied by policy guard: the {what} is hidden from you"),
        "{step}"
    );
    assert_eq!(e["data"]["gatehouse"]["code"], "policy_denied", "{step}");
}

#[tokio::test]
async fn resources_and_prompts_are_listed_and_read_only_as_the_policy_lets_each_caller() {
    let server = McpServer::start();
    let gh = gateway(&server.url(), "");
    let agent = gh.create_key("mcp-agent", &["agents"]);
    let ops = gh.create_key("ops-agent", &["ops"]);
    let steps = json!([
        ["list_resources"],
        ["list_templates"],
        ["list_prompts"],
        ["read", "config://app"],
        ["read", "config://secrets"],
        ["read", "docs://intro"],
        ["read", "docs://private/plan"],
        ["prompt", "greeting", {"name": "Bo"}],
        ["prompt", "admin_briefing", {}]
    ]);
    for transport in Transport::ALL {
        let out = McpClient::new(&gh.url("tools", ""), &agent)
            .run(transport, steps.clone())
            .await;
        let s = out["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{transport:?}: {out}"));
        assert_eq!(
            ids(&s[0], "resources", "uri"),
            ["config://app"],
            "{transport:?}"
        );
        assert_eq!(
            ids(&s[1], "templates", "uriTemplate"),
            ["docs://{name}"],
            "{transport:?}"
        );
        assert_eq!(ids(&s[2], "prompts", "name"), ["greeting"], "{transport:?}");
        let app = s[3]["ok"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(app.contains("mode=production"), "{transport:?}: {}", s[3]);
        hidden_error(&s[4], "resource config://secrets");
        assert_eq!(
            s[5]["ok"]["contents"][0]["text"], "document intro",
            "{transport:?}: {}",
            s[5]
        );
        hidden_error(&s[6], "resource docs://private/plan");
        assert_eq!(
            s[7]["ok"]["messages"][0]["content"]["text"], "Say hello to Bo.",
            "{transport:?}"
        );
        hidden_error(&s[8], "prompt admin_briefing");
        assert!(!out.to_string().contains("k-123"), "{transport:?}: {out}");
    }

    // Ops see and read everything.
    let out = McpClient::new(&gh.url("tools", ""), &ops)
        .run(Transport::Streamable, steps)
        .await;
    let s = &out["steps"];
    assert_eq!(
        ids(&s[0], "resources", "uri"),
        ["config://app", "config://secrets"],
        "{out}"
    );
    assert_eq!(ids(&s[1], "templates", "uriTemplate").len(), 2, "{out}");
    assert_eq!(ids(&s[2], "prompts", "name").len(), 2, "{out}");
    assert_eq!(s[4]["ok"]["contents"][0]["text"], "api_key=k-123", "{out}");
    assert_eq!(
        s[8]["ok"]["messages"][0]["content"]["text"], "Brief the operators on the incident.",
        "{out}"
    );

    // The records: what each listing hid, and why each read was refused.
    let mut hidden = vec![];
    let mut refused = vec![];
    for _ in 0..100 {
        let recorded = events(&gh, "http.exchange");
        hidden = recorded
            .iter()
            .flat_map(|(_, _, d)| {
                d["mcp"]["response"]["answers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .flat_map(|a| a["hidden_entries"].as_array().cloned().unwrap_or_default())
            .collect();
        refused = recorded
            .iter()
            .filter(|(v, _, d)| v == "deny" && d["mcp"]["request"]["target"].is_string())
            .map(|(_, _, d)| d.clone())
            .collect();
        if refused.len() >= 9 && hidden.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Streamable HTTP answers are recorded with their POSTs; legacy ones
    // with the session's GET stream, once it ends.
    for id in [
        "config://secrets",
        "docs://private/{name}",
        "admin_briefing",
    ] {
        assert_eq!(
            hidden.iter().filter(|h| *h == id).count(),
            2,
            "{id}: {hidden:?}"
        );
    }
    assert_eq!(refused.len(), 9, "{refused:?}");
    for d in &refused {
        let decision = &d["decisions"]["protocol_request"];
        assert_eq!(decision["verdict"], "deny", "{d}");
        assert!(decision.to_string().contains("mcp-listing.filter"), "{d}");
    }
}
