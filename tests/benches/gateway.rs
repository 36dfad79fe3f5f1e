//! `make bench`: decision latency, policy load/reload time and HTTP
//! throughput, each next to a baseline measured in the same run. Prints a
//! table; asserts nothing about timing.
//!
//! Needs the policy components (`make plugins`) and a built `gatehouse`
//! binary (`GATEHOUSE_BIN`, else `target/debug/gatehouse`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::config::PoliciesConfig;
use gatehouse::policy::bindings::{http, types};
use gatehouse::policy::engine::{EPOCH_TICK, PolicyEngine};
use gatehouse::policy::loaded::LoadedPolicy;
use gatehouse_tests::{GatehouseBuilder, UPSTREAM_TOKEN, Upstream, policy_wasm};
use serde_json::{Value, json};

/// Decisions per latency measurement.
const DECISIONS: usize = 2000;
/// Cold loads (each in a fresh, empty precompile cache).
const COLD_LOADS: usize = 3;
/// Warm loads (precompiled component in the cache).
const WARM_LOADS: usize = 10;
/// End-to-end reloads through a running gateway.
const RELOADS: usize = 5;
/// How often the reload probe asks the gateway.
const RELOAD_POLL: Duration = Duration::from_millis(5);
/// Give up on a reload after this long.
const RELOAD_GIVE_UP: Duration = Duration::from_secs(10);
/// HTTP requests per target, after warm-up.
const HTTP_REQUESTS: usize = 4000;
const HTTP_WARMUP: usize = 200;
const CONCURRENCY: usize = 8;

/// Deny rules and a mask rule, as a real deployment would have them.
fn guard_settings() -> Value {
    json!({
        "deny": [
            {"methods": ["DELETE"], "path_prefix": "/admin", "unless_groups": ["ops"], "reason": "admin API is read-only for agents"},
            {"path_regex": "^/internal/.*", "reason": "internal endpoints are not exposed"}
        ],
        "mask_response": [{"detector": "aws-access-key-id"}]
    })
}

// ---------------------------------------------------------------- stats

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Summarises samples (any unit); `None` when there are none.
fn stats(samples: &mut [f64]) -> Option<Stats> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)]
    };
    Some(Stats {
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        p50: pick(0.50),
        p99: pick(0.99),
        max: samples[samples.len() - 1],
    })
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rows for the final table: (measurement, value, note).
#[derive(Default)]
struct Report {
    rows: Vec<(String, String, String)>,
}

impl Report {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>, note: impl Into<String>) {
        self.rows.push((what.into(), value.into(), note.into()));
    }

    fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        println!();
        println!("== gatehouse bench: summary ==");
        println!("{:<w0$}  {:>w1$}  note", "measurement", "value");
        println!("{}", "-".repeat(w0 + w1 + 30));
        for (a, b, c) in &self.rows {
            println!("{a:<w0$}  {b:>w1$}  {c}");
        }
    }
}

// ---------------------------------------------------------------- 1. decisions

fn context(request_id: &str) -> types::Context {
    types::Context {
        principal: types::Principal {
            subject: "ci-bot".into(),
            issuer: "gatehouse".into(),
            kind: types::PrincipalKind::Agent,
            groups: vec!["dev".into()],
            acting_for: Some(types::Delegator {
                subject: "alice@example.com".into(),
                issuer: "gatehouse".into(),
            }),
        },
        session: types::Session {
            id: "bench-session".into(),
            connection: "api".into(),
            protocol: types::Protocol::Http,
            client_addr: "127.0.0.1:40000".into(),
        },
        labels: vec![("env".into(), "bench".into())],
        request_id: request_id.into(),
    }
}

fn request() -> http::HttpRequest {
    http::HttpRequest {
        method: "GET".into(),
        scheme: "http".into(),
        authority: "api.internal:8080".into(),
        path: "/v1/orders/1234".into(),
        query: Some("expand=items&limit=20".into()),
        headers: vec![
            ("accept".into(), "application/json".into()),
            ("user-agent".into(), "bench/1.0".into()),
            (
                "x-trace-id".into(),
                "0af7651916cd43dd8448eb211c80319c".into(),
            ),
        ],
        body: Vec::new(),
        body_complete: true,
    }
}

fn verdict_name(d: &types::Decision) -> &'static str {
    match d.verdict {
        types::Verdict::Allow => "allow",
        types::Verdict::Deny(_) => "deny",
        types::Verdict::Mask(_) => "mask",
        types::Verdict::RequireApproval(_) => "require-approval",
    }
}

fn bench_decisions(engine: &Arc<PolicyEngine>, report: &mut Report) {
    println!("== 1. decision latency: http-guard on-request ({DECISIONS} calls) ==");
    let bytes = std::fs::read(policy_wasm("http-guard")).expect("read http-guard component");
    let settings = guard_settings().to_string();
    let limits = PoliciesConfig::default().limits_for("http-guard");
    let policy = LoadedPolicy::load(engine, "http-guard", &bytes, &settings, limits)
        .unwrap_or_else(|e| panic!("loading http-guard failed: {e}"));
    let idx = policy
        .hooks
        .http
        .clone()
        .expect("http-guard exports no http hook");
    let ctx = context("bench-req");
    let req = request();

    // Sanity + warm-up (page in the pool slots, caches).
    let first = policy
        .http_on_request(&ctx, &req)
        .expect("http hook present")
        .unwrap_or_else(|e| panic!("http-guard on-request failed: {e}"));
    let verdict = verdict_name(&first);
    for _ in 0..100 {
        let _ = policy.http_on_request(&ctx, &req);
    }

    // Fresh instance per decision: what the gateway does today.
    let mut fresh = Vec::with_capacity(DECISIONS);
    let mut failures = 0usize;
    let all = Instant::now();
    for _ in 0..DECISIONS {
        let t = Instant::now();
        match policy.http_on_request(&ctx, &req) {
            Some(Ok(_)) => {}
            _ => failures += 1,
        }
        fresh.push(us(t.elapsed()));
    }
    let fresh_total = all.elapsed();
    let f = stats(&mut fresh).expect("samples");

    // One reused instance: N calls inside a single `call`. The epoch deadline
    // is re-armed before each call, as a per-decision timeout would be.
    let ticks = limits
        .timeout
        .as_micros()
        .div_ceil(EPOCH_TICK.as_micros())
        .max(1) as u64;
    let reused = policy
        .call("bench-reuse", |store, instance| {
            let guest = idx.load(&mut *store, instance)?;
            for _ in 0..100 {
                store.set_epoch_deadline(ticks);
                guest.call_on_request(&mut *store, &ctx, &req)?;
            }
            let mut samples = Vec::with_capacity(DECISIONS);
            let all = Instant::now();
            for _ in 0..DECISIONS {
                let t = Instant::now();
                store.set_epoch_deadline(ticks);
                guest.call_on_request(&mut *store, &ctx, &req)?;
                samples.push(us(t.elapsed()));
            }
            Ok((samples, all.elapsed()))
        })
        .unwrap_or_else(|e| panic!("reused-instance calls failed: {e}"));
    let (mut reused_samples, reused_total) = reused;
    let r = stats(&mut reused_samples).expect("samples");

    // Baseline for the fresh-instance cost: a guest that parses no settings.
    let allow_bytes = std::fs::read(policy_wasm("allow-all")).expect("read allow-all component");
    let allow_all = LoadedPolicy::load(engine, "allow-all", &allow_bytes, "{}", limits)
        .unwrap_or_else(|e| panic!("loading allow-all failed: {e}"));
    for _ in 0..100 {
        let _ = allow_all.http_on_request(&ctx, &req);
    }
    let mut minimal = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let t = Instant::now();
        match allow_all.http_on_request(&ctx, &req) {
            Some(Ok(_)) => {}
            _ => failures += 1,
        }
        minimal.push(us(t.elapsed()));
    }
    let a = stats(&mut minimal).expect("samples");

    let ratio = f.mean / r.mean;
    println!(
        "verdict for GET {}: {verdict}; failures: {failures}",
        req.path
    );
    println!(
        "fresh instance : mean {:8.1} µs  p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs  ({:.0} decisions/s on one thread)",
        f.mean,
        f.p50,
        f.p99,
        f.max,
        DECISIONS as f64 / fresh_total.as_secs_f64()
    );
    println!(
        "reused instance: mean {:8.1} µs  p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs  ({:.0} decisions/s on one thread)",
        r.mean,
        r.p50,
        r.p99,
        r.max,
        DECISIONS as f64 / reused_total.as_secs_f64()
    );
    println!(
        "allow-all fresh: mean {:8.1} µs  p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs  (baseline: instantiate + trivial guest)",
        a.mean, a.p50, a.p99, a.max
    );
    println!("fresh / reused : {ratio:.2}x (mean)");
    println!();
    report.row(
        "decision, fresh instance (mean/p50/p99)",
        format!("{:.1}/{:.1}/{:.1} µs", f.mean, f.p50, f.p99),
        format!("http-guard on-request, {verdict}, N={DECISIONS}"),
    );
    report.row(
        "decision, reused instance (mean/p50/p99)",
        format!("{:.1}/{:.1}/{:.1} µs", r.mean, r.p50, r.p99),
        "same hook, one instance",
    );
    report.row(
        "decision, allow-all fresh (mean/p50/p99)",
        format!("{:.1}/{:.1}/{:.1} µs", a.mean, a.p50, a.p99),
        "baseline: instantiate + trivial guest",
    );
    report.row(
        "fresh / reused",
        format!("{ratio:.2}x"),
        "what per-session instance reuse would save",
    );
}

// ---------------------------------------------------------------- 2. load / reload

fn bench_load(report: &mut Report) {
    println!("== 2a. LoadedPolicy::load: cold (compile) vs warm (precompile cache) ==");
    let bytes = std::fs::read(policy_wasm("http-guard")).expect("read http-guard component");
    let settings = guard_settings().to_string();
    let limits = PoliciesConfig::default().limits_for("http-guard");
    let load = |engine: &Arc<PolicyEngine>| {
        let t = Instant::now();
        LoadedPolicy::load(engine, "http-guard", &bytes, &settings, limits)
            .unwrap_or_else(|e| panic!("loading http-guard failed: {e}"));
        ms(t.elapsed())
    };

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..COLD_LOADS {
        let cache = tempfile::tempdir().expect("tempdir for the precompile cache");
        let engine = PolicyEngine::new(cache.path())
            .unwrap_or_else(|e| panic!("creating the policy engine failed: {e}"));
        cold.push(load(&engine));
        // The first engine also measures warm loads from the cache it just filled.
        if i == 0 {
            for _ in 0..WARM_LOADS {
                warm.push(load(&engine));
            }
        }
    }
    let c = stats(&mut cold).expect("samples");
    let w = stats(&mut warm).expect("samples");
    println!(
        "cold (compile) : median {:8.1} ms  max {:8.1} ms  (n={COLD_LOADS}, {} KiB component)",
        c.p50,
        c.max,
        bytes.len() / 1024
    );
    println!(
        "warm (cached)  : median {:8.2} ms  max {:8.2} ms  (n={WARM_LOADS})",
        w.p50, w.max
    );
    println!("cold / warm    : {:.0}x", c.p50 / w.p50);
    println!();
    report.row(
        "load, cold cache (median)",
        format!("{:.1} ms", c.p50),
        format!("compile, n={COLD_LOADS}"),
    );
    report.row(
        "load, warm cache (median)",
        format!("{:.2} ms", w.p50),
        format!("deserialize + describe + validate, n={WARM_LOADS}"),
    );
}

async fn denial_reason(c: &reqwest::Client, url: &str, key: &str) -> Result<String, String> {
    let resp = c
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Ok(body["error"]["reason"].as_str().unwrap_or("").to_string())
}

/// Milliseconds from `install` until the gateway first answers with `want`.
async fn time_reload(
    gh: &gatehouse_tests::Gatehouse,
    c: &reqwest::Client,
    url: &str,
    key: &str,
    want: &str,
) -> f64 {
    let started = Instant::now();
    gh.install_policy("guard", "deny-marker", Some(json!({"reason": want})));
    loop {
        let got = denial_reason(c, url, key).await;
        if got.as_deref() == Ok(want) {
            return ms(started.elapsed());
        }
        if started.elapsed() > RELOAD_GIVE_UP {
            panic!(
                "reload to {want:?} not seen after {RELOAD_GIVE_UP:?} (last answer {got:?}); gateway log:\n{}",
                gh.log()
            );
        }
        tokio::time::sleep(RELOAD_POLL).await;
    }
}

async fn bench_reload(c: &reqwest::Client, report: &mut Report) {
    println!("== 2b. hot reload through a running gateway (deny-marker settings change) ==");
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy("guard", "deny-marker", Some(json!({"reason": "v1"})))
        .http_connection("api", &upstream.url(), &["guard"], "")
        .start();
    let key = gh.create_key("bench-reload", &[]);
    let url = gh.url("api", "/ok");
    // Make sure v1 is what it serves before timing anything.
    let first = denial_reason(c, &url, &key).await;
    if first.as_deref() != Ok("v1") {
        panic!(
            "gateway does not answer with v1 at start (got {first:?}); log:\n{}",
            gh.log()
        );
    }
    let mut samples = Vec::with_capacity(RELOADS);
    for i in 0..RELOADS {
        // Alternate v2, v1, v2, ... so each round is a real change.
        let want = if i % 2 == 0 { "v2" } else { "v1" };
        let t = time_reload(&gh, c, &url, &key, want).await;
        println!("reload {} -> {want}: {t:.1} ms", i + 1);
        samples.push(t);
        // Let the watcher settle (debounce, rename events) before the next round.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = stats(&mut samples).expect("samples");
    println!(
        "file written -> first new answer: median {:.1} ms  max {:.1} ms  (n={RELOADS}, poll {} ms)",
        s.p50,
        s.max,
        RELOAD_POLL.as_millis()
    );
    println!();
    report.row(
        "hot reload, end to end (median/max)",
        format!("{:.1}/{:.1} ms", s.p50, s.max),
        format!("file write -> new answer, n={RELOADS}, poll 5 ms"),
    );
    drop(gh);
}

// ---------------------------------------------------------------- 3. HTTP throughput

struct Load {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies_us: Vec<f64>,
}

/// Sends `total` GETs to `url` from `CONCURRENCY` workers, each one request
/// at a time, and records each request's latency.
async fn drive(c: &reqwest::Client, url: &str, bearer: &str, total: usize) -> Load {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for w in 0..CONCURRENCY {
        let n = total / CONCURRENCY + usize::from(w < total % CONCURRENCY);
        let (c, url, bearer) = (c.clone(), url.to_string(), bearer.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let (mut ok, mut errors, mut first_error) = (0usize, 0usize, None);
            for _ in 0..n {
                let t = Instant::now();
                let result = match c.get(&url).bearer_auth(&bearer).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(body) => {
                                Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
                            }
                            Err(e) => Err(format!("reading body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("sending: {e}")),
                };
                lat.push(us(t.elapsed()));
                match result {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (lat, ok, errors, first_error)
        }));
    }
    let mut load = Load {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies_us: Vec::with_capacity(total),
    };
    for t in tasks {
        let (lat, ok, errors, first_error) = t.await.expect("load worker panicked");
        load.latencies_us.extend(lat);
        load.ok += ok;
        load.errors += errors;
        if load.first_error.is_none() {
            load.first_error = first_error;
        }
    }
    load.elapsed = started.elapsed();
    load
}

fn print_load(label: &str, load: &mut Load) -> (f64, Stats) {
    let rps = load.ok as f64 / load.elapsed.as_secs_f64();
    let s = stats(&mut load.latencies_us).expect("samples");
    println!(
        "{label:<8}: {rps:8.0} req/s  p50 {:8.0} µs  p99 {:8.0} µs  ({} ok, {} errors in {:.2} s)",
        s.p50,
        s.p99,
        load.ok,
        load.errors,
        load.elapsed.as_secs_f64()
    );
    if let Some(e) = &load.first_error {
        println!("          first error: {e}");
    }
    (rps, s)
}

async fn bench_http(c: &reqwest::Client, report: &mut Report) {
    println!(
        "== 3. HTTP throughput: GET /ok, {HTTP_REQUESTS} requests, concurrency {CONCURRENCY} =="
    );
    let upstream = Upstream::start().await;
    let gh = GatehouseBuilder::new()
        .policy("http-guard", "http-guard", Some(guard_settings()))
        .http_connection("api", &upstream.url(), &["http-guard"], "")
        .start();
    let key = gh.create_key("bench-http", &["dev"]);
    let direct_url = format!("{}/ok", upstream.url());
    let gateway_url = gh.url("api", "/ok");

    // Warm-up both paths (connections, pool slots); also fails fast on setup errors.
    for (label, url, bearer) in [
        ("direct", &direct_url, UPSTREAM_TOKEN),
        ("gateway", &gateway_url, key.as_str()),
    ] {
        let w = drive(c, url, bearer, HTTP_WARMUP).await;
        if w.ok == 0 {
            panic!(
                "{label} warm-up: every request failed (first error: {:?}); gateway log:\n{}",
                w.first_error,
                gh.log()
            );
        }
    }

    let mut direct = drive(c, &direct_url, UPSTREAM_TOKEN, HTTP_REQUESTS).await;
    let mut through = drive(c, &gateway_url, &key, HTTP_REQUESTS).await;
    let (d_rps, d) = print_load("direct", &mut direct);
    let (g_rps, g) = print_load("gateway", &mut through);
    let ratio = g_rps / d_rps;
    println!(
        "gateway / direct: {ratio:.2}x throughput, +{:.0} µs at p50",
        g.p50 - d.p50
    );
    println!("(client, upstream and gateway share this machine's cores)");
    println!();
    report.row(
        "http direct to upstream (req/s, p50/p99)",
        format!("{d_rps:.0}, {:.0}/{:.0} µs", d.p50, d.p99),
        format!(
            "c={CONCURRENCY}, n={HTTP_REQUESTS}, {} errors",
            direct.errors
        ),
    );
    report.row(
        "http through gateway (req/s, p50/p99)",
        format!("{g_rps:.0}, {:.0}/{:.0} µs", g.p50, g.p99),
        format!(
            "http-guard + audit, c={CONCURRENCY}, n={HTTP_REQUESTS}, {} errors",
            through.errors
        ),
    );
    report.row(
        "gateway / direct throughput",
        format!("{ratio:.2}x"),
        "same run, loopback",
    );
    drop(gh);
}

// ---------------------------------------------------------------- main

fn main() {
    let started = Instant::now();
    let mut report = Report::default();

    // Sections 1 and 2a run the host library in-process.
    let cache = tempfile::tempdir().expect("tempdir for the precompile cache");
    let engine = PolicyEngine::new(cache.path())
        .unwrap_or_else(|e| panic!("creating the policy engine failed: {e}"));
    bench_decisions(&engine, &mut report);
    drop(engine);
    bench_load(&mut report);

    // Sections 2b and 3 run the real gateway binary.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(CONCURRENCY * 2)
            .build()
            .expect("http client");
        bench_reload(&c, &mut report).await;
        bench_http(&c, &mut report).await;
    });

    report.print();
    println!(
        "(binary: {}; total bench time {:.1} s)",
        gatehouse_tests::gatehouse_bin().display(),
        started.elapsed().as_secs_f64()
    );
}
