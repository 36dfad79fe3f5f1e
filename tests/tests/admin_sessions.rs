//! The audit trail through the admin API: real traffic through an HTTP
//! connection makes sessions, then auditors search, page, replay and
//! export them; outsiders get 401 and 403, bad filters a 400 that names
//! the parameter, unknown sessions a 404; the same reads on a PostgreSQL
//! store. Another scenario calls every operation in `host/openapi.json` and
//! checks each answer against it.

use std::collections::BTreeSet;
use std::time::Duration;

use gatehouse_tests::openapi::OpenApi;
use gatehouse_tests::{Gatehouse, GatehouseBuilder, Upstream};
use serde_json::{Value, json};

fn guard() -> Value {
    json!({"deny": [{"methods": ["DELETE"], "reason": "no deletes"}]})
}

async fn start() -> (Upstream, Gatehouse) {
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .admin_groups(&["gatehouse-admins"])
        .auditor_groups(&["auditors"])
        .policy("http-guard", "http-guard", Some(guard()))
        .http_connection("api", &upstream.url(), &["http-guard"], "")
        .start();
    (upstream, gh)
}

/// Two sessions: `dev-bot` reads and is refused a DELETE; `search-bot`
/// looks for a needle. Each client is one connection, so one session.
async fn traffic(gh: &Gatehouse, dev: &str, searcher: &str) {
    let a = gatehouse_tests::http_client();
    assert_eq!(
        send(a.get(gh.url("api", "/items")).bearer_auth(dev)).await,
        200
    );
    assert_eq!(
        send(a.delete(gh.url("api", "/items/7")).bearer_auth(dev)).await,
        403
    );
    drop(a);
    let b = gatehouse_tests::http_client();
    let found = b
        .get(gh.url("api", "/find?what=needle-42"))
        .bearer_auth(searcher);
    assert_eq!(send(found).await, 200);
    drop(b);
    gh.wait_for_events(3);
}

/// Sends and reads the whole answer, so the client keeps its connection
/// (and the gateway its session) for the next request. The client puts a
/// connection back in its pool on a task of its own after the body ends; a
/// request sent at once could race it and open a second connection (a
/// second session), so give it a moment.
async fn send(req: reqwest::RequestBuilder) -> u16 {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    status
}

async fn get(gh: &Gatehouse, token: &str, path: &str) -> (u16, Value) {
    let resp = gatehouse_tests::http_client()
        .get(gh.admin_url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

fn ids(page: &Value, key: &str) -> Vec<String> {
    page[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_searched_replayed_and_exported_by_auditors() {
    let (_upstream, gh) = start().await;
    let auditor = gh.create_key("audit-bot", &["auditors"]);
    let admin = gh.create_key("root-ops", &["gatehouse-admins"]);
    let dev = gh.create_key("dev-bot", &["dev"]);
    let searcher = gh.create_key("search-bot", &["dev"]);
    traffic(&gh, &dev, &searcher).await;
    let c = gatehouse_tests::http_client();

    // Who may read.
    let resp = c.get(gh.admin_url("/v1/sessions")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(get(&gh, "ghk_nope", "/v1/sessions").await.0, 401);
    let (status, body) = get(&gh, &dev, "/v1/events").await;
    assert_eq!(status, 403);
    assert!(
        message(&body).contains("gatehouse-admins, auditors")
            && message(&body).contains("admin.auditor_groups"),
        "{body}"
    );
    assert_eq!(get(&gh, &admin, "/v1/sessions").await.0, 200);

    // All sessions, newest first; then each filter.
    let (status, all) = get(&gh, &auditor, "/v1/sessions").await;
    assert_eq!(status, 200, "{all}");
    let all_ids = ids(&all, "sessions");
    assert_eq!(all_ids.len(), 2, "{all}");
    assert_eq!(all["sessions"][0]["principal_subject"], "search-bot");
    assert_eq!(all["next_cursor"], Value::Null);
    let (search_session, dev_session) = (all_ids[0].clone(), all_ids[1].clone());
    let only = |q: &'static str| {
        let gh = &gh;
        let auditor = &auditor;
        async move {
            let (status, page) = get(gh, auditor, &format!("/v1/sessions?{q}")).await;
            assert_eq!(status, 200, "{q}: {page}");
            ids(&page, "sessions")
        }
    };
    assert_eq!(only("principal=dev-bot").await, [dev_session.as_str()]);
    assert_eq!(only("verdict=deny").await, [dev_session.as_str()]);
    assert_eq!(only("q=NEEDLE-42").await, [search_session.as_str()]);
    assert_eq!(only("connection=api&protocol=http").await.len(), 2);
    assert!(only("protocol=postgres").await.is_empty());
    // A session still open matches any `from`; its end lands with the
    // writer's next batch, up to its linger after the traffic.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, page) = get(&gh, &auditor, "/v1/sessions").await;
        let open = page["sessions"]
            .as_array()
            .is_none_or(|a| a.iter().any(|s| s["ended_at_ms"].is_null()));
        if !open || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(only("from=2999-01-01").await.is_empty());
    assert_eq!(only("from=1h&kind=http.exchange").await.len(), 2);

    // Pages of one: each session once, then no cursor.
    let (_, first) = get(&gh, &auditor, "/v1/sessions?limit=1").await;
    assert_eq!(ids(&first, "sessions"), [search_session.as_str()]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = get(
        &gh,
        &auditor,
        &format!("/v1/sessions?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second, "sessions"), [dev_session.as_str()]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Bad filters are a 400 that names the parameter.
    for (query, says) in [
        ("limit=0", "limit:"),
        ("from=yesterday", "from: \"yesterday\" is not a time"),
        ("verdict=maybe", "unknown verdict"),
        ("cursor=garbage", "cursor:"),
        ("user=bob", "user: unknown parameter"),
        ("from=2h&to=3h", "must be before"),
    ] {
        let (status, body) = get(&gh, &auditor, &format!("/v1/sessions?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(message(&body).contains(says), "{query}: {body}");
    }
    let (status, body) = get(&gh, &auditor, &format!("/v1/events?cursor={cursor}")).await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("session listing"), "{body}");

    // One session: its events in order, decisions included.
    let (status, shown) = get(&gh, &auditor, &format!("/v1/sessions/{dev_session}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["session"]["id"], dev_session.as_str());
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[1]["verdict"], "deny");
    assert_eq!(events[1]["connection"], "api");
    assert_eq!(
        events[1]["detail"]["decisions"]["request"]["decisions"][0]["policy"],
        "http-guard"
    );
    let (status, body) = get(&gh, &auditor, "/v1/sessions/0000-no-such-session").await;
    assert_eq!(status, 404);
    assert!(message(&body).contains("no session 0000-no-such-session"));

    // Replay: the transcript `gatehouse audit replay` prints, as text or JSON steps.
    let text = c
        .get(gh.admin_url(&format!("/v1/sessions/{dev_session}/replay")))
        .bearer_auth(&auditor)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    assert!(
        text.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = text.text().await.unwrap();
    let cli = gh.cli(&["audit", "replay", &dev_session]);
    assert!(cli.status.success());
    assert_eq!(text, String::from_utf8_lossy(&cli.stdout));
    assert!(
        text.contains("DELETE /items/7 -> 403")
            && text.contains("request DENIED by http-guard: no deletes"),
        "{text}"
    );
    let (_, steps) = get(&gh, &auditor, &format!("/v1/sessions/{dev_session}/replay")).await;
    assert_eq!(steps["steps"][1]["verdict"], "deny");
    assert_eq!(
        steps["caller"].as_str().unwrap(),
        "dev-bot (agent) [dev] acting for alice@example.com"
    );

    // Exports: JSON lines, the session first.
    let export = c
        .get(gh.admin_url(&format!("/v1/sessions/{dev_session}/export")))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = export
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["type"], "session");
    assert_eq!(lines[2]["event"]["seq"], 2);
    let export = c
        .get(gh.admin_url("/v1/events/export?verdict=allow"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let summaries: Vec<String> = export
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["event"]["summary"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        summaries,
        ["GET /items -> 200", "GET /find?what=needle-42 -> 200"]
    );

    // Events across sessions.
    let (_, denied) = get(&gh, &auditor, "/v1/events?verdict=deny").await;
    assert_eq!(denied["events"].as_array().unwrap().len(), 1);
    assert_eq!(denied["events"][0]["session_id"], dev_session.as_str());
    let (_, oldest) = get(&gh, &auditor, "/v1/events?order=asc&limit=2").await;
    assert_eq!(oldest["events"][0]["summary"], "GET /items -> 200");
    assert!(oldest["next_cursor"].is_string());

    // Wrong methods.
    let resp = c
        .post(gh.admin_url("/v1/sessions"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(gh.log().contains("audit trail read"));
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_show_upstreams_without_secrets_and_live_sessions() {
    let (upstream, gh) = start().await;
    let auditor = gh.create_key("audit-bot", &["auditors"]);
    let dev = gh.create_key("dev-bot", &["dev"]);
    let (status, body) = get(&gh, &dev, "/v1/connections").await;
    assert_eq!(status, 403, "{body}");

    // A client that keeps its connection open is a live session.
    let client = gatehouse_tests::http_client();
    assert_eq!(
        send(client.get(gh.url("api", "/x")).bearer_auth(&dev)).await,
        200
    );
    let (status, body) = get(&gh, &auditor, "/v1/connections").await;
    assert_eq!(status, 200, "{body}");
    let api = &body["connections"][0];
    assert_eq!(api["name"], "api");
    assert_eq!(api["protocol"], "http");
    assert_eq!(api["listen"], gh.addrs["api"].to_string());
    assert_eq!(api["upstream"], upstream.url());
    assert_eq!(api["policies"], json!(["http-guard"]));
    assert_eq!(api["live_sessions"], 1);
    drop(client);
    let mut live = 1;
    for _ in 0..100 {
        live = get(&gh, &auditor, "/v1/connections").await.1["connections"][0]["live_sessions"]
            .as_i64()
            .unwrap();
        if live == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live, 0);
    assert!(!body.to_string().contains(gatehouse_tests::UPSTREAM_TOKEN));

    let metrics = gatehouse_tests::http_client()
        .get(gh.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "gatehouse_requests_total{connection=\"api\",verdict=\"allow\"} 1",
        "gatehouse_policy_decisions_total{policy=\"http-guard\",outcome=\"allow\"}",
        "gatehouse_policy_latency_seconds_bucket{",
        "# TYPE gatehouse_policy_load_errors counter",
        "gatehouse_sessions_open{connection=\"api\"} 0",
        "# TYPE gatehouse_approvals_waiting gauge",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
}

/// Calls every operation in the document and checks each answer against it.
struct Conformance {
    api: OpenApi,
    client: reqwest::Client,
    covered: BTreeSet<(String, String)>,
}

impl Conformance {
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        gh: &Gatehouse,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        accept: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let mut req = self
            .client
            .request(method.parse().unwrap(), gh.admin_url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        let text = resp.text().await.unwrap();
        let media = content_type.split(';').next().unwrap().trim();
        let bodies: Vec<Value> = match media {
            "application/json" => vec![serde_json::from_str(&text).unwrap()],
            "application/x-ndjson" => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            _ => vec![Value::String(text)],
        };
        for b in &bodies {
            self.api.check(method, template, status, &content_type, b);
        }
        self.covered
            .insert((method.to_string(), template.to_string()));
        bodies.into_iter().next().unwrap_or(Value::Null)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_answer_matches_the_openapi_document() {
    let (_upstream, gh) = start().await;
    let auditor = gh.create_key("audit-bot", &["auditors"]);
    let admin = gh.create_key("root-ops", &["gatehouse-admins"]);
    let dev = gh.create_key("dev-bot", &["dev"]);
    traffic(&gh, &dev, &dev).await;
    let mut t = Conformance {
        api: OpenApi::load(),
        client: gatehouse_tests::http_client(),
        covered: BTreeSet::new(),
    };
    t.api.check_refs();
    let (a, au, d) = (
        Some(admin.as_str()),
        Some(auditor.as_str()),
        Some(dev.as_str()),
    );

    // Open endpoints.
    t.call(&gh, "GET", "/healthz", "/healthz", None, None, None, 200)
        .await;
    t.call(&gh, "GET", "/metrics", "/metrics", None, None, None, 200)
        .await;
    let served = t
        .call(
            &gh,
            "GET",
            "/v1/openapi.json",
            "/v1/openapi.json",
            None,
            None,
            None,
            200,
        )
        .await;
    assert_eq!(
        &served,
        t.api.doc(),
        "the served document is host/openapi.json"
    );
    t.call(&gh, "GET", "/v1/login", "/v1/login", None, None, None, 200)
        .await;
    t.call(
        &gh,
        "GET",
        "/v1/policies",
        "/v1/policies",
        None,
        None,
        None,
        200,
    )
    .await;

    // The audit trail, and its refusals.
    t.call(
        &gh,
        "GET",
        "/v1/connections",
        "/v1/connections",
        au,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/connections",
        "/v1/connections",
        d,
        None,
        None,
        403,
    )
    .await;
    let page = t
        .call(
            &gh,
            "GET",
            "/v1/sessions",
            "/v1/sessions?limit=1",
            au,
            None,
            None,
            200,
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let page = t
        .call(
            &gh,
            "GET",
            "/v1/sessions",
            &format!("/v1/sessions?limit=1&cursor={cursor}"),
            au,
            None,
            None,
            200,
        )
        .await;
    let id = page["sessions"][0]["id"].as_str().unwrap().to_string();
    t.call(
        &gh,
        "GET",
        "/v1/sessions",
        "/v1/sessions",
        None,
        None,
        None,
        401,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions",
        "/v1/sessions",
        d,
        None,
        None,
        403,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions",
        "/v1/sessions?to=soon",
        au,
        None,
        None,
        400,
    )
    .await;
    let sid = format!("/v1/sessions/{id}");
    t.call(&gh, "GET", "/v1/sessions/{id}", &sid, au, None, None, 200)
        .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}",
        &format!("{sid}?limit=1"),
        a,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}",
        "/v1/sessions/nope",
        au,
        None,
        None,
        404,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}/replay",
        &format!("{sid}/replay"),
        au,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}/replay",
        &format!("{sid}/replay"),
        au,
        Some("text/plain"),
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}/replay",
        "/v1/sessions/nope/replay",
        au,
        None,
        None,
        404,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}/export",
        &format!("{sid}/export"),
        au,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/sessions/{id}/export",
        "/v1/sessions/nope/export",
        au,
        None,
        None,
        404,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/events",
        "/v1/events?kind=http.exchange&limit=2",
        au,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/events",
        "/v1/events?order=up",
        au,
        None,
        None,
        400,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/events/export",
        "/v1/events/export",
        au,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/events/export",
        "/v1/events/export?limit=5",
        au,
        None,
        None,
        400,
    )
    .await;

    // Keys.
    t.call(&gh, "GET", "/v1/keys", "/v1/keys", a, None, None, 200)
        .await;
    t.call(&gh, "GET", "/v1/keys", "/v1/keys", au, None, None, 403)
        .await;
    let new_key = json!({"name": "made-by-api", "owner": "alice@example.com", "groups": ["dev"]});
    let created = t
        .call(
            &gh,
            "POST",
            "/v1/keys",
            "/v1/keys",
            a,
            None,
            Some(new_key),
            201,
        )
        .await;
    t.call(
        &gh,
        "POST",
        "/v1/keys",
        "/v1/keys",
        a,
        None,
        Some(json!({"name": "x"})),
        400,
    )
    .await;
    let key_id = created["info"]["id"].as_str().unwrap();
    t.call(
        &gh,
        "DELETE",
        "/v1/keys/{id}",
        &format!("/v1/keys/{key_id}"),
        a,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "DELETE",
        "/v1/keys/{id}",
        &format!("/v1/keys/{key_id}"),
        a,
        None,
        None,
        404,
    )
    .await;

    // Approvals (none wait on an HTTP-only gateway; their shapes are
    // checked with real ones in cli.rs).
    t.call(
        &gh,
        "GET",
        "/v1/approvals",
        "/v1/approvals",
        d,
        None,
        None,
        200,
    )
    .await;
    t.call(
        &gh,
        "GET",
        "/v1/approvals",
        "/v1/approvals",
        None,
        None,
        None,
        401,
    )
    .await;
    let missing = "0190a0a0-0000-7000-8000-000000000000";
    t.call(
        &gh,
        "GET",
        "/v1/approvals/{id}",
        &format!("/v1/approvals/{missing}"),
        d,
        None,
        None,
        404,
    )
    .await;
    for action in ["approve", "deny"] {
        let template = format!("/v1/approvals/{{id}}/{action}");
        let path = format!("/v1/approvals/{missing}/{action}");
        let body = Some(json!({"reason": "checking"}));
        t.call(&gh, "POST", &template, &path, d, None, body, 404)
            .await;
    }

    let documented: BTreeSet<(String, String)> = t.api.operations().into_iter().collect();
    let missed: Vec<_> = documented.difference(&t.covered).collect();
    assert!(missed.is_empty(), "operations never called: {missed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_reads_a_postgresql_store_the_same_way() {
    let db = gatehouse_tests::postgres::TempDatabase::create("gatehouse_api");
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .database(&db.url())
        .auditor_groups(&["auditors"])
        .policy("http-guard", "http-guard", Some(guard()))
        .http_connection("api", &upstream.url(), &["http-guard"], "")
        .start();
    let auditor = gh.create_key("audit-bot", &["auditors"]);
    let dev = gh.create_key("dev-bot", &["dev"]);
    let searcher = gh.create_key("search-bot", &["dev"]);
    let c = gatehouse_tests::http_client();
    assert_eq!(
        send(c.get(gh.url("api", "/items")).bearer_auth(&dev)).await,
        200
    );
    assert_eq!(
        send(c.delete(gh.url("api", "/items/7")).bearer_auth(&dev)).await,
        403
    );
    drop(c);
    let c = gatehouse_tests::http_client();
    let found = c
        .get(gh.url("api", "/find?what=needle-42"))
        .bearer_auth(&searcher);
    assert_eq!(send(found).await, 200);
    drop(c);
    let mut events = Value::Null;
    for _ in 0..100 {
        events = get(&gh, &auditor, "/v1/events?order=asc").await.1;
        if events["events"].as_array().is_some_and(|e| e.len() == 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summaries: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "GET /items -> 200",
            "DELETE /items/7 -> 403",
            "GET /find?what=needle-42 -> 200"
        ]
    );
    let (_, page) = get(&gh, &auditor, "/v1/sessions?q=Needle&verdict=allow").await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["sessions"][0]["principal_subject"], "search-bot");
    let (_, page) = get(&gh, &auditor, "/v1/sessions?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(&gh, &auditor, &format!("/v1/sessions?cursor={cursor}")).await;
    assert_eq!(rest["sessions"][0]["principal_subject"], "dev-bot");
    let id = rest["sessions"][0]["id"].as_str().unwrap();
    let export = gatehouse_tests::http_client()
        .get(gh.admin_url(&format!("/v1/sessions/{id}/export")))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 3, "{export}");
    let (_, steps) = get(&gh, &auditor, &format!("/v1/sessions/{id}/replay")).await;
    assert_eq!(
        steps["steps"][1]["notes"][0],
        "request DENIED by http-guard: no deletes"
    );
}
