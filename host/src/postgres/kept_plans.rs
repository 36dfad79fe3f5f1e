//! Mask plans a session has already resolved, reused for the next result
//! of the same statement shape with the same columns.
//!
//! Resolving a plan means naming the columns (catalog), asking
//! `on-result-columns` and compiling the mask rules. When both decisions
//! behind a plan came from the decision cache, the same statement shape
//! and the same `RowDescription` give the same plan, so the session keeps
//! it. The statement decision's address is part of the key: a decision-cache
//! entry is one shape, one caller and one policy generation, and the entry
//! holds that decision so the address is never reused while it is kept.
//! Names from the catalog are trusted for [`super::catalog::TTL`]; so is a
//! kept plan.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use super::codec::{FieldDescription, Frame};
use super::masking::MaskPlan;
use super::pipeline::StatementRun;
use crate::policy::ChainOutcome;

/// Plans kept per session; a session rarely runs more shapes than this.
const CAPACITY: usize = 256;

/// What a kept plan gives a result.
#[derive(Clone)]
pub struct KeptPlan {
    pub result_outcome: Arc<ChainOutcome>,
    pub plan: Option<Arc<MaskPlan>>,
    pub notice: Option<Frame>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlanKey {
    statement: usize,
    columns: u64,
}

struct Entry {
    _statement: Arc<ChainOutcome>,
    fields: Vec<FieldDescription>,
    kept: KeptPlan,
    at: Instant,
}

#[derive(Default)]
pub struct KeptPlans {
    entries: HashMap<PlanKey, Entry>,
}

impl KeptPlans {
    /// The key for a result of `run`, when its statement decision was reused.
    pub fn key(&self, run: &StatementRun, fields: &[FieldDescription]) -> Option<PlanKey> {
        if !run.outcome.cached {
            return None;
        }
        let mut h = DefaultHasher::new();
        for f in fields {
            (
                &f.name,
                f.table_oid,
                f.column,
                f.type_oid,
                f.type_modifier,
                f.format,
            )
                .hash(&mut h);
        }
        Some(PlanKey {
            statement: Arc::as_ptr(&run.outcome) as usize,
            columns: h.finish(),
        })
    }

    pub fn get(&self, key: PlanKey, fields: &[FieldDescription]) -> Option<KeptPlan> {
        let e = self.entries.get(&key)?;
        (e.fields == fields && e.at.elapsed() < super::catalog::TTL).then(|| e.kept.clone())
    }

    pub fn put(
        &mut self,
        key: PlanKey,
        fields: &[FieldDescription],
        run: &StatementRun,
        kept: KeptPlan,
    ) {
        if self.entries.len() >= CAPACITY {
            self.entries.clear();
        }
        self.entries.insert(
            key,
            Entry {
                _statement: run.outcome.clone(),
                fields: fields.to_vec(),
                kept,
                at: Instant::now(),
            },
        );
    }
}
