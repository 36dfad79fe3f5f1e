//! Per-call store state: an empty WASI context (no files, network, or
//! environment), a memory limiter, and the host imports a policy may use.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{host, types};
use super::limiter::MemoryCap;

/// Log lines a policy may write per call; more are dropped and counted.
const MAX_LOG_LINES: usize = 32;
const MAX_LOG_BYTES: usize = 4096;

pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: MemoryCap,
    settings: Arc<str>,
    now_ms: u64,
    policy: Arc<str>,
    request_id: String,
    logged: usize,
}

impl StoreState {
    pub fn new(
        policy: Arc<str>,
        settings: Arc<str>,
        memory_bytes: usize,
        now_ms: u64,
        request_id: String,
    ) -> Self {
        // Nothing is inherited: no args, env, preopened dirs, sockets or stdio;
        // WASI's clocks show the same frozen instant as `now-ms`, so a decision
        // cannot depend on time passing while it runs.
        let wasi = WasiCtx::builder()
            .wall_clock(FrozenClock(now_ms))
            .monotonic_clock(FrozenClock(now_ms))
            .build();
        let limits = MemoryCap::new(memory_bytes);
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            settings,
            now_ms,
            policy,
            request_id,
            logged: 0,
        }
    }
}

/// A clock that does not move during one decision.
struct FrozenClock(u64);

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_millis(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        self.0.saturating_mul(1_000_000)
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn log(&mut self, level: host::LogLevel, message: String, fields: Vec<(String, String)>) {
        self.logged += 1;
        if self.logged > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        truncate_utf8(&mut message, MAX_LOG_BYTES);
        let fields = fields
            .into_iter()
            .take(16)
            .map(|(k, mut v)| {
                truncate_utf8(&mut v, 256);
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let policy = &*self.policy;
        let request = &self.request_id;
        match level {
            host::LogLevel::Trace => tracing::trace!(policy, request, fields, "{message}"),
            host::LogLevel::Debug => tracing::debug!(policy, request, fields, "{message}"),
            host::LogLevel::Info => tracing::info!(policy, request, fields, "{message}"),
            host::LogLevel::Warn => tracing::warn!(policy, request, fields, "{message}"),
            host::LogLevel::Error => tracing::error!(policy, request, fields, "{message}"),
        }
    }

    fn settings(&mut self) -> String {
        self.settings.to_string()
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
}

/// Cuts a string to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
