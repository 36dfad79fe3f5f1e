//! The wasmtime engine: component model, pooling allocator, epoch-based
//! deadlines, and a precompile cache keyed by each component's sha256.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The shared engine, its linker, and the thread that advances the epoch.
pub struct PolicyEngine {
    engine: Engine,
    linker: Linker<StoreState>,
    cache_dir: PathBuf,
    ticker_stop: Arc<AtomicBool>,
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

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.weak(), ticker_stop.clone());
        Ok(Arc::new(Self {
            engine,
            linker,
            cache_dir: cache_dir.to_path_buf(),
            ticker_stop,
        }))
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
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_epoch_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("gatehouse-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })
        .ok();
}
