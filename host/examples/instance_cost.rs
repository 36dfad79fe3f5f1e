//! What a fresh instance per decision costs, compared with reusing one.
//!
//!     cargo run --release --example instance_cost -p gatehouse -- POLICY.wasm [N]
//!
//! The host answers every hook call in a fresh store and instance made from
//! the policy's cached pre-instantiation (`LoadedPolicy::call`). This program
//! measures, for one component:
//!
//! - load: compile with an empty precompile cache (cold), then load again
//!   with a new engine over the filled cache (warm, as after a restart);
//! - instantiate only: N fresh instances that run no hook;
//! - fresh: N `http.on-request` decisions, each in a fresh instance (what
//!   the server does today);
//! - reused: N `http.on-request` calls on ONE instance (what per-session
//!   instance reuse would cost per decision).
//!
//! The limits are generous (5 s, 256 MiB) so a heavy guest's instantiation is
//! not cut short by the default 50 ms deadline.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::config::{EffectiveLimits, FailureMode};
use gatehouse::policy::bindings::{http, types};
use gatehouse::policy::{LoadedPolicy, PolicyEngine};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: instance_cost POLICY.wasm [N]"))?,
    );
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("policy")
        .to_string();
    let limits = EffectiveLimits {
        timeout: Duration::from_secs(5),
        memory_bytes: 256 << 20,
        on_failure: FailureMode::Closed,
    };

    // A private, empty precompile cache, so the first load really compiles.
    let cache =
        std::env::temp_dir().join(format!("gatehouse-instance-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);

    let t = Instant::now();
    let engine = PolicyEngine::new(&cache)?;
    let cold_policy = LoadedPolicy::load(&engine, &name, &bytes, "{}", limits)?;
    let cold = t.elapsed();
    drop(cold_policy);
    drop(engine);

    let t = Instant::now();
    let engine: Arc<PolicyEngine> = PolicyEngine::new(&cache)?;
    let policy = LoadedPolicy::load(&engine, &name, &bytes, "{}", limits)?;
    let warm = t.elapsed();
    let idx = policy
        .hooks
        .http
        .clone()
        .ok_or_else(|| anyhow::anyhow!("{} exports no http hook", path.display()))?;

    let ctx = context();
    let req = request();
    let resp = http::HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
    };
    let on_response = policy
        .http_on_response(&ctx, &req, &resp)
        .expect("http hook")
        .map_err(|f| anyhow::anyhow!("on-response: {f}"))?;

    // Warm-up: page in the pool slots and the code.
    for _ in 0..n.clamp(1, 20) {
        policy
            .http_on_request(&ctx, &req)
            .expect("http hook")
            .map_err(|f| anyhow::anyhow!("on-request: {f}"))?;
    }

    // (0) Instantiation alone: a fresh instance that runs no hook.
    let mut inst_only = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        policy
            .call(&ctx.request_id, |_, _| Ok(()))
            .map_err(|f| anyhow::anyhow!("instantiate: {f}"))?;
        inst_only.push(t.elapsed());
    }

    // (b) Fresh instance per decision, the server's path.
    let mut fresh = Vec::with_capacity(n);
    let mut verdict = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let d = policy
            .http_on_request(&ctx, &req)
            .expect("http hook")
            .map_err(|f| anyhow::anyhow!("on-request: {f}"))?;
        fresh.push(t.elapsed());
        if verdict.is_empty() {
            verdict = format!("{:?}", d.verdict);
        }
    }

    // (c) One instance, N decisions. The epoch deadline (5 s) covers the whole loop.
    let mut reused = Vec::with_capacity(n);
    let t_all = Instant::now();
    policy
        .call("bench", |store, instance| {
            let g = idx.load(&mut *store, instance)?;
            for _ in 0..n {
                let t = Instant::now();
                g.call_on_request(&mut *store, &ctx, &req)?;
                reused.push(t.elapsed());
            }
            Ok(())
        })
        .map_err(|f| anyhow::anyhow!("reused instance: {f}"))?;
    let reused_total = t_all.elapsed();

    let inst = Stats::of(&mut inst_only);
    let fr = Stats::of(&mut fresh);
    let re = Stats::of(&mut reused);

    println!("component      {}", path.display());
    println!(
        "size           {} bytes ({:.1} MiB)",
        bytes.len(),
        bytes.len() as f64 / (1024.0 * 1024.0)
    );
    println!(
        "profile        {}",
        if cfg!(debug_assertions) {
            "debug (dev)"
        } else {
            "release"
        }
    );
    println!("N              {n}");
    println!("verdict        {verdict}");
    println!("on-response    {:?}", on_response.verdict);
    println!(
        "load cold      {:>10.3} ms  (compile, empty cache; includes describe + validate-config)",
        ms(cold)
    );
    println!(
        "load warm      {:>10.3} ms  (new engine, precompiled cache hit)",
        ms(warm)
    );
    println!();
    println!(
        "{:<32} {:>12} {:>12} {:>12}",
        "per call", "mean µs", "p50 µs", "p99 µs"
    );
    inst.row("instantiate only (no hook)");
    fr.row("fresh instance + on-request");
    re.row("reused instance, on-request");
    println!();
    println!(
        "reused loop    {:.3} ms total for {n} calls (incl. one instantiation)",
        ms(reused_total)
    );
    println!("ratio fresh/reused (mean)  {:.1}x", fr.mean / re.mean);
    println!("ratio fresh/reused (p50)   {:.1}x", fr.p50 / re.p50);

    drop(policy);
    drop(engine);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Stats {
    /// Microseconds.
    fn of(v: &mut [Duration]) -> Stats {
        v.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = v.iter().map(|d| us(*d)).sum::<f64>() / v.len() as f64;
        let pick = |q: f64| us(v[((v.len() - 1) as f64 * q).round() as usize]);
        Stats {
            mean,
            p50: pick(0.50),
            p99: pick(0.99),
        }
    }

    fn row(&self, label: &str) {
        println!(
            "{:<32} {:>12.1} {:>12.1} {:>12.1}",
            label, self.mean, self.p50, self.p99
        );
    }
}

/// A context as `host/src/http/event.rs` builds it, for an agent.
fn context() -> types::Context {
    types::Context {
        principal: types::Principal {
            subject: "agent:deploy-bot".into(),
            issuer: "https://idp.example".into(),
            kind: types::PrincipalKind::Agent,
            groups: vec!["agents".into(), "staging".into()],
            acting_for: Some(types::Delegator {
                subject: "alice@example.com".into(),
                issuer: "https://idp.example".into(),
            }),
        },
        session: types::Session {
            id: "01J0000000000000000000SESS".into(),
            connection: "api".into(),
            protocol: types::Protocol::Http,
            client_addr: "127.0.0.1:50000".into(),
        },
        labels: vec![("env".into(), "prod".into())],
        request_id: "01J0000000000000000000REQ0".into(),
    }
}

/// A small DELETE from an agent outside `ops` (deny-delete denies it).
fn request() -> http::HttpRequest {
    http::HttpRequest {
        method: "DELETE".into(),
        scheme: "https".into(),
        authority: "api.example".into(),
        path: "/v1/items/42".into(),
        query: Some("force=true".into()),
        headers: vec![
            ("host".into(), "api.example".into()),
            ("user-agent".into(), "agent/1.0".into()),
            ("accept".into(), "application/json".into()),
        ],
        body: Vec::new(),
        body_complete: true,
    }
}
