//! Step events, stored as groups: the consecutive steps of one activation of one instance
//! (or one refused entry) are one row holding a JSON array. An activation writes one row
//! and two index entries instead of a row and two index entries per step, which is what
//! bounds the single writer. Steps read back with `seq = row seq × 1000 + position`.
//!
//! A group's row names the event of its first step; the steps of the same activation
//! that name no event (an instance's `ended` step) join it, marked `no_event`, so that
//! an event's activation is one row and its event still lists exactly the steps that
//! name it. A step's time is kept only when it differs from the row's (the steps of
//! an activation share one).

use std::borrow::Cow;
use std::collections::HashMap;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rows::{from_ts, ts};
use crate::journal::{Step, StepStatus};
use crate::store::ProcessedEvent;

/// Most steps in one group (their `seq` must stay below the next row's).
const MAX_GROUP: usize = 999;

/// A group ready to insert: its key columns and its steps as JSON text (serialized
/// before the write reaches the writer thread).
pub struct GroupRow {
    instance_id: Option<String>,
    journey_id: String,
    version: u32,
    profile_id: String,
    event_id: Option<String>,
    /// The event's `seq` when the batch processed that event; otherwise (a call's
    /// answer, a released entry: the event was processed before) the insert looks it up.
    event_seq: Option<i64>,
    at: i64,
    steps: String,
}

/// What a step keeps in its group (the key columns live on the row). Written from the
/// batch's steps by reference (nothing is copied to serialize them), read back owned.
#[derive(Serialize, Deserialize)]
struct Item<'a> {
    node: Cow<'a, str>,
    kind: Cow<'a, str>,
    status: StepStatus,
    /// Microseconds since the Unix epoch; absent when the same as the row's `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    /// The step names no event, although its row does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_event: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<Cow<'a, Value>>,
}

/// Groups consecutive steps with the same instance, event, journey version and profile;
/// `processed` are the batch's events, whose `seq` the groups naming them take.
pub fn group(steps: &[Step], processed: &[ProcessedEvent]) -> Vec<GroupRow> {
    let seqs: HashMap<&str, i64> = processed.iter().map(|e| (e.id.as_str(), e.seq)).collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < steps.len() {
        let first = &steps[start];
        let mut end = start + 1;
        while end < steps.len() && end - start < MAX_GROUP && same_group(first, &steps[end]) {
            end += 1;
        }
        let at = ts(first.at);
        let items: Vec<Item> = steps[start..end]
            .iter()
            .map(|s| Item {
                node: Cow::Borrowed(&s.node),
                kind: Cow::Borrowed(&s.kind),
                status: s.status,
                at: Some(ts(s.at)).filter(|t| *t != at),
                no_event: first.event_id.is_some() && s.event_id.is_none(),
                code: s.code.as_deref().map(Cow::Borrowed),
                message: s.message.as_deref().map(Cow::Borrowed),
                detail: s.detail.as_ref().map(Cow::Borrowed),
            })
            .collect();
        out.push(GroupRow {
            instance_id: first.instance_id.clone(),
            journey_id: first.journey_id.clone(),
            version: first.version,
            profile_id: first.profile_id.clone(),
            event_id: first.event_id.clone(),
            event_seq: first
                .event_id
                .as_deref()
                .and_then(|id| seqs.get(id).copied()),
            at,
            steps: serde_json::to_string(&items).unwrap_or_else(|_| "[]".into()),
        });
        start = end;
    }
    out
}

/// Whether `b` joins the group that `a` starts: the same instance, journey version and
/// profile, and `a`'s event or none.
fn same_group(a: &Step, b: &Step) -> bool {
    a.instance_id == b.instance_id
        && (a.event_id == b.event_id || b.event_id.is_none())
        && a.journey_id == b.journey_id
        && a.version == b.version
        && a.profile_id == b.profile_id
        // Refused entries (no instance) stay one per row, so each keeps its own seq.
        && a.instance_id.is_some()
}

pub fn insert(conn: &Connection, g: &GroupRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_groups (instance_id, journey_id, version, profile_id, event_id, at, steps, \
         event_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
         COALESCE(?8, (SELECT seq FROM events WHERE id = ?5)))",
    )?
    .execute(params![
        g.instance_id,
        g.journey_id,
        g.version,
        g.profile_id,
        g.event_id,
        g.at,
        g.steps,
        g.event_seq
    ])?;
    Ok(())
}

/// Which step groups to read: an instance's, or an event's.
#[derive(Clone, Copy)]
pub enum Of {
    Instance,
    Event,
}

/// The steps of the groups of instance or event `key`, in order.
pub fn select(conn: &Connection, of: Of, key: &str) -> rusqlite::Result<Vec<Step>> {
    let filter = match of {
        Of::Instance => "instance_id = ?1",
        Of::Event => "event_seq = (SELECT seq FROM events WHERE id = ?1)",
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, instance_id, journey_id, version, profile_id, event_id, steps, at \
         FROM step_groups WHERE {filter} ORDER BY seq"
    ))?;
    let mut rows = stmt.query([key])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let text: String = r.get(6)?;
        let row_at: i64 = r.get(7)?;
        let items: Vec<Item> = serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
        })?;
        for (i, item) in items.into_iter().enumerate() {
            // An event lists only the steps that name it.
            if item.no_event && matches!(of, Of::Event) {
                continue;
            }
            out.push(Step {
                seq: seq * 1000 + i as i64,
                instance_id: r.get(1)?,
                journey_id: r.get(2)?,
                version: r.get(3)?,
                profile_id: r.get(4)?,
                event_id: if item.no_event { None } else { r.get(5)? },
                node: item.node.into_owned(),
                kind: item.kind.into_owned(),
                status: item.status,
                at: from_ts(item.at.unwrap_or(row_at))?,
                code: item.code.map(Cow::into_owned),
                message: item.message.map(Cow::into_owned),
                detail: item.detail.map(Cow::into_owned),
            });
        }
    }
    Ok(out)
}

/// Moves the steps of a version-2 database (one row per step) into groups of one.
pub fn migrate_rows(conn: &Connection) -> rusqlite::Result<()> {
    let old: bool = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'steps'")?
        .exists([])?;
    if !old {
        return Ok(());
    }
    conn.execute_batch(
        "BEGIN;
         INSERT INTO step_groups (instance_id, journey_id, version, profile_id, event_id, at, steps)
         SELECT instance_id, journey_id, version, profile_id, event_id, at,
                json_array(json_object('node', node, 'kind', kind, 'status', status, 'at', at,
                    'code', code, 'message', message, 'detail', json(detail)))
         FROM steps ORDER BY seq;
         DROP TABLE steps;
         COMMIT;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(instance: Option<&str>, node: &str) -> Step {
        Step {
            seq: 0,
            instance_id: instance.map(str::to_string),
            journey_id: "j".into(),
            version: 1,
            profile_id: "p".into(),
            event_id: Some("e".into()),
            node: node.into(),
            kind: "end".into(),
            status: StepStatus::Passed,
            at: "2026-03-02T08:00:00Z".parse().unwrap(),
            code: None,
            message: None,
            detail: None,
        }
    }

    /// A fresh database holding event `e`.
    fn with_event_e() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&conn).unwrap();
        conn.execute(
            "INSERT INTO events (id, type, profile_id, ts, received_at, data) \
             VALUES ('e', 't', 'p', 0, 0, '{}')",
            [],
        )
        .unwrap();
        conn
    }

    #[test]
    fn consecutive_steps_of_an_instance_share_a_row_and_read_back_in_order() {
        let conn = with_event_e();
        let steps = vec![
            step(Some("i1"), "a"),
            step(Some("i1"), "b"),
            step(None, "entry"),
            step(None, "entry"),
            step(Some("i2"), "a"),
            step(Some("i1"), "c"),
        ];
        let groups = group(&steps, &[]);
        assert_eq!(groups.len(), 5);
        for g in &groups {
            insert(&conn, g).unwrap();
        }
        let back = select(&conn, Of::Instance, "i1").unwrap();
        let nodes: Vec<&str> = back.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(nodes, ["a", "b", "c"]);
        assert!(back.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(select(&conn, Of::Event, "e").unwrap().len(), 6);
    }

    #[test]
    fn an_activations_steps_without_an_event_join_its_row_and_stay_off_the_events_list() {
        let conn = with_event_e();
        let mut ended = step(Some("i1"), "done");
        ended.event_id = None;
        ended.at = "2026-03-02T08:00:01Z".parse().unwrap();
        // So does a later event-less step of the same instance in the same batch.
        let mut timer = step(Some("i1"), "wait");
        timer.event_id = None;
        let steps = vec![step(Some("i1"), "a"), step(Some("i1"), "b"), ended, timer];
        let groups = group(&steps, &[]);
        assert_eq!(groups.len(), 1, "the event-less steps join the event's row");
        assert_eq!(
            groups[0].steps.matches("\"at\"").count(),
            1,
            "only the step at another time keeps its own: {}",
            groups[0].steps
        );
        insert(&conn, &groups[0]).unwrap();
        let back = select(&conn, Of::Instance, "i1").unwrap();
        let seen: Vec<(&str, Option<&str>, String)> = back
            .iter()
            .map(|s| (s.node.as_str(), s.event_id.as_deref(), s.at.to_string()))
            .collect();
        assert_eq!(
            seen,
            [
                ("a", Some("e"), "2026-03-02T08:00:00Z".to_string()),
                ("b", Some("e"), "2026-03-02T08:00:00Z".to_string()),
                ("done", None, "2026-03-02T08:00:01Z".to_string()),
                ("wait", None, "2026-03-02T08:00:00Z".to_string()),
            ]
        );
        let of_event: Vec<String> = select(&conn, Of::Event, "e")
            .unwrap()
            .into_iter()
            .map(|s| s.node)
            .collect();
        assert_eq!(of_event, ["a", "b"]);
        // A step that names another event starts a row of its own.
        let mut other = step(Some("i1"), "c");
        other.event_id = Some("f".into());
        assert_eq!(group(&[step(Some("i1"), "a"), other], &[]).len(), 2);
    }

    #[test]
    fn a_group_takes_the_seq_of_an_event_its_batch_processed_and_looks_up_the_others() {
        let conn = with_event_e();
        conn.execute(
            "INSERT INTO events (id, type, profile_id, ts, received_at, data) \
             VALUES ('f', 't', 'p', 0, 0, '{}')",
            [],
        )
        .unwrap();
        let seq_of = |id: &str| -> i64 {
            conn.query_row("SELECT seq FROM events WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let (e, f) = (seq_of("e"), seq_of("f"));
        let mut of_f = step(Some("i2"), "b");
        of_f.event_id = Some("f".into());
        // The batch processed `f` (its seq comes with it); `e` was processed before
        // (a call's answer continues its activation).
        let processed = [ProcessedEvent {
            seq: f,
            id: "f".into(),
        }];
        let groups = group(&[step(Some("i1"), "a"), of_f], &processed);
        assert_eq!(groups[0].event_seq, None);
        assert_eq!(groups[1].event_seq, Some(f));
        for g in &groups {
            insert(&conn, g).unwrap();
        }
        let stored: Vec<Option<i64>> = conn
            .prepare("SELECT event_seq FROM step_groups ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(stored, [Some(e), Some(f)]);
        let of_event = |id: &str| -> Vec<String> {
            select(&conn, Of::Event, id)
                .unwrap()
                .into_iter()
                .map(|s| s.node)
                .collect()
        };
        assert_eq!(of_event("e"), ["a"]);
        assert_eq!(of_event("f"), ["b"]);
    }

    #[test]
    fn a_version_4_database_finds_its_events_steps_by_seq() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO events (id, type, profile_id, ts, received_at, data)
                VALUES ('other', 't', 'p', 0, 0, '{}'), ('e', 't', 'p', 0, 0, '{}');",
        )
        .unwrap();
        for g in &group(&[step(Some("i1"), "a"), step(None, "entry")], &[]) {
            insert(&conn, g).unwrap();
        }
        // As schema 4 left it: no seq, the index on the event's id.
        conn.execute_batch(
            "UPDATE step_groups SET event_seq = NULL;
             CREATE INDEX step_groups_event ON step_groups(event_id) WHERE event_id IS NOT NULL;
             PRAGMA user_version = 4;",
        )
        .unwrap();
        assert!(select(&conn, Of::Event, "e").unwrap().is_empty());
        super::super::schema::migrate(&conn).unwrap();
        assert_eq!(select(&conn, Of::Event, "e").unwrap().len(), 2);
        assert!(select(&conn, Of::Event, "other").unwrap().is_empty());
        let index = |name: &str| super::super::schema::has_index(&conn, name);
        assert!(!index("step_groups_event"));
        assert!(index("step_groups_event_seq"));
    }

    #[test]
    fn a_version_2_database_keeps_its_steps() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE steps (seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT,
                journey_id TEXT NOT NULL, version INTEGER NOT NULL, profile_id TEXT NOT NULL,
                event_id TEXT, node TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
                at INTEGER NOT NULL, code TEXT, message TEXT, detail TEXT);
             INSERT INTO steps (instance_id, journey_id, version, profile_id, event_id, node,
                kind, status, at, code, message, detail)
             VALUES ('i1', 'j', 1, 'p', 'e', 'send', 'action', 'passed', 1772438400000000,
                NULL, NULL, '{\"attempt\": 1}');
             PRAGMA user_version = 2;",
        )
        .unwrap();
        super::super::schema::migrate(&conn).unwrap();
        let back = select(&conn, Of::Instance, "i1").unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].node, "send");
        assert_eq!(back[0].status, StepStatus::Passed);
        assert_eq!(back[0].detail, Some(serde_json::json!({"attempt": 1})));
        assert!(
            !conn
                .prepare("SELECT 1 FROM sqlite_master WHERE name = 'steps'")
                .unwrap()
                .exists([])
                .unwrap()
        );
    }
}
