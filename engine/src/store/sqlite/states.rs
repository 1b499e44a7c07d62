//! What a partition reads and commits: the state of many profiles at once, and the
//! batch of changes it writes atomically ([`PartitionStore`]).
//!
//! Reads are six set-oriented queries per chunk of profiles (`profile_id IN (...)`) instead of six
//! per profile: a partition batch of 500 events for 500 profiles costs a dozen queries.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter};

use super::group_rows::GroupRows;
use super::instances::upsert_instance;
use super::marks::Mark;
use super::rows::{self, from_ts};
use super::{Faults, SqliteStore, audiences, counts, steps};
use crate::store::{LastEntry, ProfileState};
use crate::store::{PartitionStore, ProfileMerge, Result, WriteBatch};
use async_trait::async_trait;
use rusqlite::params;
use std::sync::Arc;

/// Profiles per query (well under SQLite's limit on bound parameters).
const CHUNK: usize = 512;

/// The state of every profile of `ids` (a profile that does not exist gets a default
/// state).
pub fn load(conn: &Connection, ids: &[String]) -> rusqlite::Result<HashMap<String, ProfileState>> {
    let mut out: HashMap<String, ProfileState> = ids
        .iter()
        .map(|id| (id.clone(), ProfileState::default()))
        .collect();
    for chunk in ids.chunks(CHUNK) {
        load_chunk(conn, chunk, &mut out)?;
    }
    Ok(out)
}

fn load_chunk(
    conn: &Connection,
    ids: &[String],
    out: &mut HashMap<String, ProfileState>,
) -> rusqlite::Result<()> {
    // The list is padded to a power of two (repeating the last id, which changes
    // nothing) so that a handful of statement texts stay in the prepared cache.
    let mut padded: Vec<&String> = ids.iter().collect();
    if let Some(last) = ids.last() {
        padded.resize(ids.len().next_power_of_two(), last);
    }
    let ids = padded;
    let list = vec!["?"; ids.len()].join(",");
    // Runs `sql` over the chunk and hands each row to `row`.
    let each = |sql: String, row: &mut dyn FnMut(&rusqlite::Row) -> rusqlite::Result<()>| {
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut q = stmt.query(params_from_iter(&ids))?;
        while let Some(r) = q.next()? {
            row(r)?;
        }
        Ok::<_, rusqlite::Error>(())
    };

    each(
        format!(
            "SELECT {} FROM profiles WHERE id IN ({list})",
            rows::PROFILE_COLUMNS
        ),
        &mut |r| {
            let p = rows::profile(r)?;
            if let Some(state) = out.get_mut(&p.id) {
                state.profile = Some(p);
            }
            Ok(())
        },
    )?;
    each(
        format!("SELECT profile_id, namespace, value FROM identities WHERE profile_id IN ({list})"),
        &mut |r| {
            let id: String = r.get(0)?;
            if let Some(p) = out.get_mut(&id).and_then(|s| s.profile.as_mut()) {
                p.aliases.insert(r.get(1)?, r.get(2)?);
            }
            Ok(())
        },
    )?;
    each(live_sql(&list), &mut |r| {
        let inst = rows::instance(r)?;
        if let Some(state) = out.get_mut(&inst.profile_id) {
            state.live.push(inst);
        }
        Ok(())
    })?;
    // The versions of a journey fold into one key (the draft into its own); the latest
    // entry is chosen as `LastEntry` orders them.
    each(last_entered_sql(&list), &mut |r| {
        let entered: i64 = r.get(3)?;
        // The entry's time (event time); `entered_at` for older instances.
        let entry_at: Option<String> = r.get(5)?;
        let at = match entry_at.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
            Some(t) => t,
            None => from_ts(entered)?,
        };
        let journey: String = r.get(1)?;
        let key = crate::journal::entry_key(&journey, r.get(2)?).into_owned();
        if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
            let entry = LastEntry::new(from_ts(entered)?, at, r.get(4)?);
            LastEntry::record(&mut state.last_entered, key, entry);
        }
        Ok(())
    })?;
    each(
        format!(
            "SELECT profile_id, audience, since FROM audience_members WHERE profile_id IN ({list})"
        ),
        &mut |r| {
            if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
                state.audiences.insert(r.get(1)?, from_ts(r.get(2)?)?);
            }
            Ok(())
        },
    )?;
    each(
        format!(
            "SELECT profile_id, rule, at FROM capping_entries WHERE profile_id IN ({list}) ORDER BY at"
        ),
        &mut |r| {
            if let Some(state) = out.get_mut(&r.get::<_, String>(0)?) {
                state.capping.push((r.get(1)?, from_ts(r.get(2)?)?));
            }
            Ok(())
        },
    )?;
    Ok(())
}

/// A chunk's live instances, through the index of live instances only: ended ones are
/// never visited.
fn live_sql(list: &str) -> String {
    format!(
        "SELECT {} FROM instances INDEXED BY instances_live_profile \
         WHERE profile_id IN ({list}) AND status IN ('active', 'waiting') ORDER BY entered_at",
        rows::INSTANCE_COLUMNS
    )
}

/// A chunk's last entry in each journey version: the grouping reads the index's entries
/// only, then one row is visited per group, for its id and entry time, however many
/// instances the profile had.
fn last_entered_sql(list: &str) -> String {
    format!(
        "SELECT i.profile_id, i.journey_id, i.version, i.entered_at, i.id, \
           json_extract(i.data, '$.entry_at') \
         FROM (SELECT profile_id, journey_id, version, MAX(entered_at) AS at \
               FROM instances INDEXED BY instances_entries WHERE profile_id IN ({list}) \
               GROUP BY profile_id, journey_id, version) AS g \
         JOIN instances AS i INDEXED BY instances_entries \
           ON i.profile_id = g.profile_id AND i.journey_id = g.journey_id \
          AND i.version = g.version AND i.entered_at = g.at"
    )
}

#[async_trait]
impl PartitionStore for SqliteStore {
    async fn profile_states(
        &self,
        profile_ids: Vec<String>,
    ) -> Result<HashMap<String, ProfileState>> {
        Faults::take(&self.faults.reads, "read")?;
        self.read(move |conn| load(conn, &profile_ids)).await
    }

    async fn commit(&self, batch: Arc<WriteBatch>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        Faults::take(&self.faults.commits, "commit")?;
        // Serialize here, on the caller's thread: the one writer thread only runs SQL.
        let instance_data: Vec<String> = batch
            .instances
            .iter()
            .map(|i| serde_json::to_string(&i.data).unwrap_or_else(|_| "{}".into()))
            .collect();
        let attributes: Vec<String> = batch
            .profiles
            .iter()
            .map(|p| p.profile.attributes.to_string())
            .collect();
        let groups = steps::group(&batch.steps, &batch.processed_events);
        let mut counts = counts::aggregate(&batch.steps);
        counts::add_feedback(&mut counts, &batch.feedback);
        // Written once for the whole group commit, with the other jobs' counters and
        // processed events.
        let shared = GroupRows::new(
            counts,
            Mark::of(batch.processed_events.iter().map(|e| e.seq)),
        );
        let assignments = counts::assignments(&batch.steps);
        let held: Vec<String> = batch
            .held
            .iter()
            .map(|h| serde_json::to_string(h).unwrap_or_else(|_| "{}".into()))
            .collect();
        let merges = batch
            .merges
            .iter()
            .map(serde_json::to_string)
            .collect::<serde_json::Result<Vec<String>>>()?;
        self.writer
            .write_with(shared, move |conn| {
                for id in &batch.profile_deletes {
                    audiences::delete_profile(conn, id)?;
                }
                for (p, attributes) in batch.profiles.iter().zip(&attributes) {
                    audiences::upsert_profile(conn, p, attributes)?;
                }
                for m in &batch.memberships {
                    audiences::write_membership(conn, m)?;
                }
                for t in &batch.transitions {
                    audiences::insert_transition(conn, t)?;
                }
                for (profile, rule, before) in &batch.capping_expired {
                    audiences::delete_capping_before(conn, profile, rule, *before)?;
                }
                for (profile, rule, at) in &batch.capping {
                    audiences::insert_capping(conn, profile, rule, *at)?;
                }
                for (i, data) in batch.instances.iter().zip(&instance_data) {
                    upsert_instance(conn, i, data)?;
                }
                for g in &groups {
                    steps::insert(conn, g)?;
                }
                counts::assign(conn, &assignments)?;
                for (h, text) in batch.held.iter().zip(&held) {
                    conn.prepare_cached(
                        "INSERT INTO held_entries (journey_id, profile_id, entry) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![h.journey_id, h.profile_id, text])?;
                }
                for seq in &batch.released {
                    conn.prepare_cached("DELETE FROM held_entries WHERE seq = ?1")?
                        .execute([seq])?;
                }
                for (m, text) in batch.merges.iter().zip(&merges) {
                    conn.prepare_cached("INSERT INTO profile_merges (id, merge) VALUES (?1, ?2)")?
                        .execute(params![m.id, text])?;
                }
                for id in &batch.merges_done {
                    conn.prepare_cached("DELETE FROM profile_merges WHERE id = ?1")?
                        .execute([id])?;
                }
                super::consent::insert_changes(conn, &batch.consent)?;
                // Last: the instances and steps this batch wrote for the profile are
                // erased too.
                for id in &batch.profile_erasures {
                    super::erasure::erase_profile(conn, id)?;
                }
                Ok(())
            })
            .await
    }

    /// As of the writer's last group commit.
    fn rows_written(&self) -> Option<u64> {
        Some(self.writer.rows_written())
    }

    async fn pending_merges(&self) -> Result<Vec<ProfileMerge>> {
        let texts: Vec<String> = self
            .read(|conn| {
                conn.prepare_cached("SELECT merge FROM profile_merges ORDER BY seq")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(anyhow::Error::from))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql` with `?` for the list, one line per step.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let steps = stmt
            .query_map([Some("p1")], |r| r.get::<_, String>(3))
            .expect("plan rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("plan rows");
        steps.join("\n")
    }

    #[test]
    fn the_batch_read_never_walks_a_profiles_ended_instances() {
        let conn = Connection::open_in_memory().expect("db");
        super::super::schema::migrate(&conn).expect("schema");
        let live = plan(&conn, &live_sql("?"));
        assert!(
            live.contains("USING INDEX instances_live_profile"),
            "{live}"
        );
        let last = plan(&conn, &last_entered_sql("?"));
        // The grouping from the index's entries alone; the row of each group's latest
        // entry found by the whole key.
        assert!(
            last.contains("USING COVERING INDEX instances_entries (profile_id=?)"),
            "{last}"
        );
        assert!(
            last.contains(
                "USING INDEX instances_entries (profile_id=? AND journey_id=? AND version=? AND entered_at=?)"
            ),
            "{last}"
        );
        assert!(!last.contains("TEMP B-TREE"), "{last}");
    }

    #[test]
    fn a_version_8_database_gains_the_entries_and_live_indexes() {
        let conn = Connection::open_in_memory().expect("db");
        super::super::schema::migrate(&conn).expect("schema");
        // As schema 8 left it: the history index on (profile, journey, entry time) only.
        conn.execute_batch(
            "INSERT INTO instances (id, journey_id, version, profile_id, status, entered_at,
                updated_at, deadline, data)
             VALUES ('i1', 'j', 1, 'p', 'completed', 1, 1, 9, '{\"event\": {}}'),
                    ('i2', 'j', 1, 'p', 'waiting', 2, 2, 9, '{\"event\": {}}'),
                    ('t1', 'j', 0, 'p', 'completed', 3, 3, 9, '{\"event\": {}}');
             DROP INDEX instances_entries;
             DROP INDEX instances_live_profile;
             CREATE INDEX instances_profile ON instances(profile_id, journey_id, entered_at);
             PRAGMA user_version = 8;",
        )
        .expect("version 8");
        super::super::schema::migrate(&conn).expect("migrate");
        let index = |name: &str| super::super::schema::has_index(&conn, name);
        assert!(!index("instances_profile"));
        assert!(index("instances_entries"));
        assert!(index("instances_live_profile"));
        let states = load(&conn, &["p".to_string()]).expect("load");
        let state = &states["p"];
        let live: Vec<&str> = state.live.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(live, ["i2"]);
        let last = |key: &str| {
            let e = &state.last_entered[key];
            (e.at, e.id.clone())
        };
        assert_eq!(last("j"), (from_ts(2).expect("ts"), "i2".to_string()));
        assert_eq!(
            last("j\u{1f}test"),
            (from_ts(3).expect("ts"), "t1".to_string())
        );
    }
}
