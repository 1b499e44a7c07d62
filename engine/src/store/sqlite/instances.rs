//! Instances, their timers and their step events: the reads.

use std::collections::BTreeMap;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{self, from_ts, ts};
use super::{SqliteStore, steps};
use crate::journal::{Instance, Step};
use crate::store::{DueTimer, InstanceStore, Result};

pub(super) fn upsert_instance(conn: &Connection, i: &Instance, data: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO instances (id, journey_id, version, profile_id, status, node, entered_at, \
         updated_at, ended_at, wake_at, deadline, end_reason, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT(id) DO UPDATE SET status = excluded.status, node = excluded.node, \
         updated_at = excluded.updated_at, ended_at = excluded.ended_at, \
         wake_at = excluded.wake_at, end_reason = excluded.end_reason, data = excluded.data",
    )?;
    stmt.execute(params![
        i.id,
        i.journey_id,
        i.version,
        i.profile_id,
        i.status.as_str(),
        i.node,
        ts(i.entered_at),
        ts(i.updated_at),
        i.ended_at.map(ts),
        i.wake_at.map(ts),
        ts(i.deadline),
        i.end_reason,
        data,
    ])?;
    Ok(())
}

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn due_timers(
        &self,
        now: Timestamp,
        after: Option<DueTimer>,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let (after_at, after_id) = after.map_or((i64::MIN, String::new()), |t| {
            (ts(t.wake_at), t.instance_id)
        });
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, profile_id, wake_at FROM instances \
                 WHERE wake_at IS NOT NULL AND wake_at <= ?1 \
                 AND (wake_at > ?2 OR (wake_at = ?2 AND id > ?3)) \
                 ORDER BY wake_at, id LIMIT ?4",
            )?
            .query_map(params![ts(now), after_at, after_id, limit as i64], |r| {
                Ok(DueTimer {
                    instance_id: r.get(0)?,
                    profile_id: r.get(1)?,
                    wake_at: from_ts(r.get(2)?)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            let v: Option<i64> = conn
                .prepare_cached("SELECT MIN(wake_at) FROM instances WHERE wake_at IS NOT NULL")?
                .query_row([], |r| r.get(0))?;
            v.map(from_ts).transpose()
        })
        .await
    }

    async fn instance_gauges(&self) -> Result<(u64, u64)> {
        self.read(|conn| {
            let pending: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM instances WHERE wake_at IS NOT NULL")?
                .query_row([], |r| r.get(0))?;
            let live: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM instances WHERE status IN ('active', 'waiting')",
                )?
                .query_row([], |r| r.get(0))?;
            Ok((pending as u64, live as u64))
        })
        .await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM instances WHERE id = ?1",
                rows::INSTANCE_COLUMNS
            ))?
            .query_row([id], rows::instance)
            .optional()
        })
        .await
    }

    async fn live_at_node(
        &self,
        journey_id: &str,
        node: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Instance>>> {
        let (journey, node, after) = (
            journey_id.to_string(),
            node.to_string(),
            after.map(str::to_string),
        );
        self.read(move |conn| {
            // The partial index `instances_live` holds (journey_id, rowid): the page is
            // read in its order, creation order, without sorting the journey's instances.
            let from: i64 = match after {
                None => 0,
                Some(id) => match conn
                    .prepare_cached("SELECT rowid FROM instances WHERE id = ?1")?
                    .query_row([id], |r| r.get(0))
                    .optional()?
                {
                    Some(rowid) => rowid,
                    None => return Ok(None),
                },
            };
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            conn.prepare_cached(&format!(
                "SELECT {} FROM instances INDEXED BY instances_live \
                 WHERE journey_id = ?1 AND status IN ('active', 'waiting') AND node = ?2 \
                 AND rowid > ?3 ORDER BY rowid LIMIT ?4",
                rows::INSTANCE_COLUMNS
            ))?
            .query_map(params![journey, node, from, limit], rows::instance)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(Some)
        })
        .await
    }

    async fn count_instances(&self, journey_id: &str) -> Result<BTreeMap<String, u64>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT status, COUNT(*) FROM instances WHERE journey_id = ?1 GROUP BY status",
            )?
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
        .await
    }

    async fn instances_of_profile(&self, profile_id: &str) -> Result<Vec<Instance>> {
        let id = profile_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM instances WHERE profile_id = ?1 ORDER BY entered_at, id",
                rows::INSTANCE_COLUMNS
            ))?
            .query_map([id], rows::instance)?
            .collect()
        })
        .await
    }

    async fn steps_of_instance(&self, instance_id: &str) -> Result<Vec<Step>> {
        let id = instance_id.to_string();
        self.read(move |conn| steps::select(conn, steps::Of::Instance, &id))
            .await
    }

    async fn steps_of_event(&self, event_id: &str) -> Result<Vec<Step>> {
        let id = event_id.to_string();
        self.read(move |conn| steps::select(conn, steps::Of::Event, &id))
            .await
    }

    async fn profiles_in_journey(
        &self,
        journey_id: &str,
        version: Option<u32>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (journey_id, after) = (journey_id.to_string(), after.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT DISTINCT profile_id FROM instances \
                 WHERE journey_id = ?1 AND status IN ('active', 'waiting') \
                 AND (?2 IS NULL OR version = ?2) AND profile_id > ?3 \
                 ORDER BY profile_id LIMIT ?4",
            )?
            .query_map(params![journey_id, version, after, limit as i64], |r| {
                r.get(0)
            })?
            .collect()
        })
        .await
    }

    async fn held_instances(&self, journey_id: &str) -> Result<Vec<DueTimer>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, profile_id, wake_at FROM instances WHERE journey_id = ?1 \
                 AND status = 'waiting' AND json_extract(data, '$.held') = 1 ORDER BY wake_at, id",
            )?
            .query_map([id], |r| {
                Ok(DueTimer {
                    instance_id: r.get(0)?,
                    profile_id: r.get(1)?,
                    wake_at: from_ts(r.get(2)?)?,
                })
            })?
            .collect()
        })
        .await
    }
}
