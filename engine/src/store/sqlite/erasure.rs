//! Erasure of a deleted profile's personal data from what the store keeps after it: the
//! data of its events, the details and messages of its steps, the data of its instances;
//! its held entries, the messages the outbox kept for it, its consent changes and the
//! record of its sent messages are deleted.
//!
//! What stays is what reports and audits need and what says nothing of the person: ids,
//! event types, node ids and kinds, statuses, codes, branch labels, timings. Runs in the
//! commit that deletes the profile, after that commit's own instances and steps are
//! written. Must never touch another profile's rows, nor run for a merge (the merged
//! profile's history moves, it is not erased).

use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};

/// Keys of a step's `detail` that are the journey's own words, not the profile's data.
const KEPT_DETAIL: &[&str] = &["label", "branch"];

/// Erases profile `id`'s personal data (see the module comment).
pub fn erase_profile(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE events SET data = '{}' WHERE profile_id = ?1 AND data != '{}'")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM held_entries WHERE profile_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM outbox WHERE profile_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM consent_changes WHERE profile_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM sent_messages WHERE profile_id = ?1")?
        .execute([id])?;

    // Step groups of its instances, and of its events that started none (entry refusals).
    let groups: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT seq, steps FROM step_groups WHERE instance_id IN \
               (SELECT id FROM instances WHERE profile_id = ?1) \
             UNION \
             SELECT seq, steps FROM step_groups WHERE event_seq IN \
               (SELECT seq FROM events WHERE profile_id = ?1)",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare_cached("UPDATE step_groups SET steps = ?2 WHERE seq = ?1")?;
    for (seq, steps) in groups {
        if let Some(erased) = erased_steps(&steps) {
            update.execute(params![seq, erased])?;
        }
    }

    let instances: Vec<(String, String)> = conn
        .prepare_cached("SELECT id, data FROM instances WHERE profile_id = ?1")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare_cached("UPDATE instances SET data = ?2 WHERE id = ?1")?;
    for (instance, data) in instances {
        update.execute(params![instance, erased_instance_data(&data)])?;
    }
    Ok(())
}

/// A group's steps without messages and without details other than `KEPT_DETAIL`; `None`
/// when nothing changes.
fn erased_steps(text: &str) -> Option<String> {
    let Ok(Value::Array(mut steps)) = serde_json::from_str::<Value>(text) else {
        // Not a group this engine wrote: erase it whole rather than keep it.
        return Some("[]".into());
    };
    let mut changed = false;
    for step in &mut steps {
        let Some(step) = step.as_object_mut() else {
            continue;
        };
        changed |= step.remove("message").is_some();
        if let Some(detail) = step.remove("detail") {
            let kept: Map<String, Value> = detail
                .as_object()
                .map(|d| {
                    d.iter()
                        .filter(|(k, _)| KEPT_DETAIL.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            changed |= detail.as_object() != Some(&kept);
            if !kept.is_empty() {
                step.insert("detail".into(), Value::Object(kept));
            }
        }
    }
    changed.then(|| Value::Array(steps).to_string())
}

/// An instance's data with only its counters and entry time: the entry event, collected
/// events, action results and lookups go.
fn erased_instance_data(text: &str) -> String {
    let old: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut data = json!({"event": {}});
    for key in ["step", "attempt", "entry_at"] {
        if let Some(v) = old.get(key) {
            data[key] = v.clone();
        }
    }
    data.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_keep_their_shape_and_branch_labels_only() {
        let steps = json!([
            {"node": "hello", "kind": "action", "status": "passed", "at": 1,
             "detail": {"params": {"name": "Ada"}, "outcome": {"result": "Ada"}}},
            {"node": "vip", "kind": "condition", "status": "passed", "at": 2,
             "detail": {"label": "gold", "branch": 0}},
            {"node": "x", "kind": "action", "status": "failed", "at": 3,
             "code": "EXPR_EVAL", "message": "bad value \"Ada\""}
        ]);
        let erased: Value =
            serde_json::from_str(&erased_steps(&steps.to_string()).unwrap()).unwrap();
        assert_eq!(
            erased,
            json!([
                {"node": "hello", "kind": "action", "status": "passed", "at": 1},
                {"node": "vip", "kind": "condition", "status": "passed", "at": 2,
                 "detail": {"label": "gold", "branch": 0}},
                {"node": "x", "kind": "action", "status": "failed", "at": 3, "code": "EXPR_EVAL"}
            ])
        );
        assert_eq!(
            erased_steps(&erased.to_string()),
            None,
            "nothing left to erase"
        );
    }

    #[test]
    fn instance_data_keeps_its_counters() {
        let data = json!({"event": {"data": {"name": "Ada"}}, "actions": {"a": "Ada"},
            "step": 4, "attempt": 1, "entry_at": "2026-03-02T08:00:00Z"});
        assert_eq!(
            serde_json::from_str::<Value>(&erased_instance_data(&data.to_string())).unwrap(),
            json!({"event": {}, "step": 4, "attempt": 1, "entry_at": "2026-03-02T08:00:00Z"})
        );
    }
}
