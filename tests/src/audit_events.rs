//! The audit events a test's gateway stored, read from its SQLite file the
//! way the audit API reads them: reused decisions, stored once in
//! `shared_parts`, are put back in place of their references.

use std::collections::HashMap;

use serde_json::Value;

use crate::Gatehouse;

/// The events of `kind`, oldest first: (verdict, summary, detail).
pub fn events(gh: &Gatehouse, kind: &str) -> Vec<(String, String, Value)> {
    let db = gh.audit_db();
    let parts = shared_parts(&db);
    let mut stmt = db
        .prepare("SELECT verdict, summary, detail FROM events WHERE kind = ?1 ORDER BY at_ms, seq")
        .unwrap();
    stmt.query_map([kind], |r| {
        let mut detail = serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null);
        resolve_shared(&mut detail, &parts);
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, detail))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Reused decisions are stored once, in `shared_parts`, and referred to by
/// digest; readers put them back, as the audit API does.
pub fn shared_parts(db: &rusqlite::Connection) -> HashMap<String, Value> {
    let mut stmt = db.prepare("SELECT digest, body FROM shared_parts").unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or(Value::Null),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

pub fn resolve_shared(v: &mut Value, parts: &HashMap<String, Value>) {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("$shared") => {
            let digest = m["$shared"].as_str().unwrap_or_default().to_string();
            *v = parts
                .get(&digest)
                .cloned()
                .unwrap_or_else(|| panic!("shared part {digest} is missing"));
        }
        Value::Object(m) => m.values_mut().for_each(|x| resolve_shared(x, parts)),
        Value::Array(a) => a.iter_mut().for_each(|x| resolve_shared(x, parts)),
        _ => {}
    }
}

/// Waits until an event of `kind` whose summary contains `needle` is stored.
pub fn wait_for(gh: &Gatehouse, kind: &str, needle: &str) -> (String, String, Value) {
    for _ in 0..100 {
        if let Some(e) = events(gh, kind)
            .into_iter()
            .find(|(_, s, _)| s.contains(needle))
        {
            return e;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "no {kind} event with {needle:?}; have {:#?}",
        events(gh, kind)
    );
}
