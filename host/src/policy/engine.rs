//! The wasmtime engine: component model, pooling allocator, epoch-based
//! deadlines, and a precompile cache keyed by each component's sha256.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PolicyError;
use super::bindings::Policy;
use super::store::StoreState;
use crate::config::MAX_MEMORY_MB;

/// One epoch tick. Deadlines are counted in ticks, so they are honoured to
/// within a tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long the idle ticker sleeps before looking again on its own.
const IDLE_PARK: Duration = Duration::from_millis(250);

/// The shared engine, its linker, and the thread that advances the epoch.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<StoreState>,
    cache_dir: PathBuf,
    ticker: Arc<EpochTicker>,
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while a guest call is
/// running, and sleeps otherwise: most decisions come from the decision
/// cache, and an idle gateway should not wake a thousand times a second.
/// A call's deadline counts ticks from when it starts, so ticking only
/// while calls run bounds them the same way.
struct EpochTicker {
    running: AtomicUsize,
    stop: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

/// Held for the duration of one guest call (see [`PolicyEngine::running`]).
pub struct RunningCall<'a>(&'a EpochTicker);

impl Drop for RunningCall<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PolicyEngine {
    pub fn new(cache_dir: &Path) -> Result<Arc<Self>, PolicyError> {
        let mut pooling = PoolingAllocationConfig::default();
        // Every concurrent decision holds one instance; the pool bounds them.
        pooling
            .total_component_instances(512)
            .total_core_instances(1024)
            .total_memories(1024)
            .total_tables(1024)
            .total_stacks(512)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(16)
            .max_memory_size((MAX_MEMORY_MB * 1024 * 1024) as usize)
            .max_unused_warm_slots(64)
            // A fresh instance per decision means a slot is reset on every call.
            // Keeping the low pages resident (reset with memset) avoids the
            // madvise + TLB shootdown + page faults that dominate otherwise.
            .linear_memory_keep_resident(2 * 1024 * 1024)
            .table_keep_resident(64 * 1024)
            .decommit_batch_size(32)
            // Where the kernel has PAGEMAP_SCAN, only touched pages are reset.
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .memory_reservation(MAX_MEMORY_MB * 1024 * 1024)
            .memory_guard_size(64 * 1024 * 1024)
            .memory_reservation_for_growth(0)
            .max_wasm_stack(1024 * 1024);
        let engine = Engine::new(&config).map_err(PolicyError::engine)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(PolicyError::engine)?;
        Policy::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(PolicyError::engine)?;

        std::fs::create_dir_all(cache_dir).map_err(|e| PolicyError::Io {
            path: cache_dir.to_path_buf(),
            source: e,
        })?;

        let ticker = Arc::new(EpochTicker {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        spawn_epoch_ticker(engine.weak(), ticker.clone());
        Ok(Arc::new(Self {
            engine,
            linker,
            cache_dir: cache_dir.to_path_buf(),
            ticker,
        }))
    }

    /// Marks a guest call as running until the guard drops, so the epoch
    /// advances (and its deadline can fire) while it runs.
    pub fn running(&self) -> RunningCall<'_> {
        if self.ticker.running.fetch_add(1, Ordering::AcqRel) == 0
            && let Some(t) = self.ticker.thread.get()
        {
            t.unpark();
        }
        RunningCall(&self.ticker)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn linker(&self) -> &Linker<StoreState> {
        &self.linker
    }

    /// Compiles a component, or loads it from the cache when the same bytes
    /// were compiled before by this engine configuration.
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, String), PolicyError> {
        let digest = hex::encode(Sha256::digest(bytes));
        let cached = self.cache_dir.join(format!("{digest}.cwasm"));
        if cached.exists() {
            // SAFETY: the cache folder holds only files this function wrote from
            // `precompile_component`; wasmtime checks the engine configuration
            // and version in the header and refuses a mismatch.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok((component, digest)),
                Err(e) => {
                    tracing::warn!(path = %cached.display(), error = %e, "stale precompiled policy; recompiling");
                }
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| PolicyError::Invalid(format!("not a valid component: {e:#}")))?;
        let tmp = self
            .cache_dir
            .join(format!("{digest}.cwasm.tmp{}", std::process::id()));
        if std::fs::write(&tmp, &compiled)
            .and_then(|_| std::fs::rename(&tmp, &cached))
            .is_err()
        {
            tracing::warn!(path = %cached.display(), "cannot write the precompile cache");
        }
        // SAFETY: `compiled` was produced just above by this engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }
            .map_err(|e| PolicyError::Invalid(format!("{e:#}")))?;
        Ok((component, digest))
    }
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.ticker.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.thread.get() {
            t.unpark();
        }
    }
}

fn spawn_epoch_ticker(engine: wasmtime::EngineWeak, ticker: Arc<EpochTicker>) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-epoch".into())
        .spawn({
            let ticker = ticker.clone();
            move || {
                while !ticker.stop.load(Ordering::Relaxed) {
                    if ticker.running.load(Ordering::Acquire) == 0 {
                        // Woken by the next call (or the engine's drop); the
                        // timeout only bounds a missed wake-up.
                        std::thread::park_timeout(IDLE_PARK);
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            }
        });
    match spawned {
        Ok(handle) => {
            let _ = ticker.thread.set(handle.thread().clone());
        }
        // Without the ticker no deadline fires: say so loudly.
        Err(e) => {
            tracing::error!(error = %e, "cannot start the epoch ticker; policy timeouts will not fire")
        }
    }
}
