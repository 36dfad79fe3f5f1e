//! Masks resolved to result columns once per result set, then applied to
//! each `DataRow` as it streams past. A column rule names a column
//! (`email`), a table column (`users.email`, `public.users.email`) or a
//! type (`type:bytea`); pattern and detector rules scan the values of every
//! column that carries text.

use std::sync::Arc;

use bytes::Bytes;

use super::catalog::is_textual;
use super::codec::{self, Frame, WireError};
use super::event::ResolvedColumn;
use crate::mask::{CompiledMasks, MaskMethod};

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Pass,
    Replace {
        method: MaskMethod,
        json: bool,
    },
    /// A binary value of a type that cannot hold a marker: sent as NULL.
    Null,
    Scan,
}

pub struct MaskPlan {
    actions: Vec<Action>,
    labels: Vec<String>,
    /// Binary `jsonb` values carry a version byte before the text.
    binary_jsonb: Vec<bool>,
    masks: Arc<CompiledMasks>,
    /// Column names with a column rule, for the audit record.
    pub masked_columns: Vec<String>,
    /// Column names scanned by pattern or detector rules.
    pub scanned_columns: Vec<String>,
}

const JSON_TYPES: [u32; 2] = [114, 3802];

impl MaskPlan {
    /// `None` when nothing in this result needs masking.
    pub fn build(columns: &[ResolvedColumn], masks: Arc<CompiledMasks>) -> Option<MaskPlan> {
        if masks.columns.is_empty() && masks.text.is_none() {
            return None;
        }
        let mut actions = Vec::with_capacity(columns.len());
        let mut labels = Vec::with_capacity(columns.len());
        let mut binary_jsonb = Vec::with_capacity(columns.len());
        let mut masked_columns = vec![];
        let mut scanned_columns = vec![];
        for c in columns {
            let f = &c.field;
            let binary = f.format == 1;
            let rule = masks
                .columns
                .iter()
                .find(|(target, _)| column_matches(target, c))
                .map(|(_, m)| *m);
            let action = match rule {
                Some(_) if binary && !is_textual(f.type_oid) && f.type_oid != 3802 => Action::Null,
                Some(method) => Action::Replace {
                    method,
                    json: JSON_TYPES.contains(&f.type_oid),
                },
                None if masks.text.is_some()
                    && (!binary || is_textual(f.type_oid) || f.type_oid == 3802) =>
                {
                    Action::Scan
                }
                None => Action::Pass,
            };
            match action {
                Action::Replace { .. } | Action::Null => masked_columns.push(f.name.clone()),
                Action::Scan => scanned_columns.push(f.name.clone()),
                Action::Pass => {}
            }
            actions.push(action);
            labels.push(f.name.clone());
            binary_jsonb.push(binary && f.type_oid == 3802);
        }
        if actions.iter().all(|a| *a == Action::Pass) {
            return None;
        }
        Some(MaskPlan {
            actions,
            labels,
            binary_jsonb,
            masks,
            masked_columns,
            scanned_columns,
        })
    }

    /// Masks one `DataRow` body. Returns the new frame, or `None` when no
    /// value changed (the original bytes go out untouched).
    pub fn apply(&self, body: &Bytes) -> Result<Option<Frame>, WireError> {
        let values = codec::decode_data_row(body)?;
        if values.len() != self.actions.len() {
            return Err(WireError::Malformed(format!(
                "DataRow has {} values for {} columns",
                values.len(),
                self.actions.len()
            )));
        }
        let mut changed = false;
        let mut out: Vec<Option<Vec<u8>>> = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let new = match (&self.actions[i], v) {
                (_, None) | (Action::Pass, _) => None,
                (Action::Null, Some(_)) => Some(None),
                (Action::Replace { method, json }, Some(v)) => {
                    let jsonb = self.binary_jsonb[i];
                    let text = if jsonb { &v[1.min(v.len())..] } else { v };
                    let mut masked = Vec::new();
                    crate::mask::method::apply(
                        *method,
                        text,
                        &self.labels[i],
                        &self.masks.hash_key,
                        &mut masked,
                    );
                    if *json {
                        masked = serde_json::to_vec(&String::from_utf8_lossy(&masked))
                            .unwrap_or_else(|_| b"null".to_vec());
                    }
                    if jsonb {
                        masked.insert(0, 1);
                    }
                    Some(Some(masked))
                }
                (Action::Scan, Some(v)) => match &self.masks.text {
                    Some(t) => {
                        let skip = usize::from(self.binary_jsonb[i]).min(v.len());
                        let masked =
                            crate::mask::stream::mask_all(t, &self.masks.hash_key, &v[skip..]);
                        (masked.as_slice() != &v[skip..]).then(|| {
                            let mut m = v[..skip].to_vec();
                            m.extend_from_slice(&masked);
                            Some(m)
                        })
                    }
                    None => None,
                },
            };
            changed |= new.is_some();
            out.push(match new {
                Some(replacement) => replacement,
                None => v.map(<[u8]>::to_vec),
            });
        }
        if !changed {
            return Ok(None);
        }
        Ok(Some(codec::encode_data_row(
            out.iter().map(|v| v.as_deref()),
        )))
    }
}

/// `email`, `users.email`, `public.users.email` or `type:NAME`.
fn column_matches(target: &str, c: &ResolvedColumn) -> bool {
    if let Some(t) = target.strip_prefix("type:") {
        return t.eq_ignore_ascii_case(&c.type_name);
    }
    let name = &c.field.name;
    match target.rsplit_once('.') {
        None => target.eq_ignore_ascii_case(name),
        Some((table, col)) => {
            if !col.eq_ignore_ascii_case(name) {
                return false;
            }
            let Some(full) = c.table.as_deref() else {
                return false;
            };
            full.eq_ignore_ascii_case(table)
                || full
                    .split_once('.')
                    .is_some_and(|(_, t)| t.eq_ignore_ascii_case(table))
        }
    }
}
