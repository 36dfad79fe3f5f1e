//! One guest call: a fresh store and instance from the cached
//! pre-instantiation, an epoch deadline, a memory cap, and a classification
//! of whatever went wrong.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap};

use super::engine::{EPOCH_TICK, PolicyEngine};
use super::store::StoreState;
use crate::config::EffectiveLimits;

/// Why a guest call produced no usable answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallFailure {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {0} MiB")]
    OutOfMemory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("returned an invalid decision: {0}")]
    BadOutput(String),
    #[error("is not loaded")]
    NotLoaded,
}

impl CallFailure {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CallFailure::Timeout(_) => "timeout",
            CallFailure::OutOfMemory(_) => "memory",
            CallFailure::Trap(_) => "trap",
            CallFailure::Instantiate(_) => "instantiate",
            CallFailure::BadOutput(_) => "bad_output",
            CallFailure::NotLoaded => "not_loaded",
        }
    }
}

pub fn call_guest<R>(
    engine: &PolicyEngine,
    pre: &InstancePre<StoreState>,
    policy: &std::sync::Arc<str>,
    settings: &std::sync::Arc<str>,
    limits: &EffectiveLimits,
    request_id: &str,
    f: impl FnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<R>,
) -> Result<R, CallFailure> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let state = StoreState::new(
        policy.clone(),
        settings.clone(),
        limits.memory_bytes,
        now_ms,
        request_id.to_string(),
    );
    let _running = engine.running();
    let mut store = Store::new(engine.engine(), state);
    store.limiter(|s| &mut s.limits);
    let ticks = limits
        .timeout
        .as_micros()
        .div_ceil(EPOCH_TICK.as_micros())
        .max(1) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();

    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| classify(&store, limits, e, true))?;
    f(&mut store, &instance).map_err(|e| classify(&store, limits, e, false))
}

fn classify(
    store: &Store<StoreState>,
    limits: &EffectiveLimits,
    e: wasmtime::Error,
    instantiating: bool,
) -> CallFailure {
    if store.data().limits.refused {
        return CallFailure::OutOfMemory(limits.memory_bytes / (1024 * 1024));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Timeout(limits.timeout),
        Some(trap) => CallFailure::Trap(trap.to_string()),
        None if instantiating => CallFailure::Instantiate(format!("{e:#}")),
        None => CallFailure::Trap(first_line(&format!("{e:#}"))),
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    line.chars().take(300).collect()
}
