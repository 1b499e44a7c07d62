//! Journeys: drafts, published versions, status, test mode and held entries.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use super::rows::{self, from_ts, ts};
use crate::store::{
    HeldEntry, JourneyRecord, JourneyStatus, JourneyStore, Pause, Publication, Result, TestMode,
    VersionInfo, VersionRecord,
};

pub(super) fn journey_record(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<JourneyRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT id, draft, status, created_at, updated_at, pause, test FROM journeys WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    let Some((id, draft, status, created, updated, pause, test)) = row else {
        return Ok(None);
    };
    let versions = conn
        .prepare_cached(
            "SELECT version, published_at, published_by, note FROM journey_versions \
             WHERE journey_id = ?1 ORDER BY version",
        )?
        .query_map([&id], |r| {
            Ok(VersionInfo {
                version: r.get(0)?,
                published_at: from_ts(r.get(1)?)?,
                published_by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(JourneyRecord {
        pause: pause.and_then(|p| serde_json::from_str::<Pause>(&p).ok()),
        test: test.and_then(|t| serde_json::from_str(&t).ok()),
        status: JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Draft),
        draft: draft.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: from_ts(created)?,
        updated_at: from_ts(updated)?,
        versions,
        id,
    }))
}

#[async_trait]
impl JourneyStore for SqliteStore {
    async fn put_draft(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
                     VALUES (?1, ?2, 'draft', ?3, ?3) ON CONFLICT(id) DO UPDATE SET \
                     draft = excluded.draft, updated_at = excluded.updated_at",
                )?
                .execute(params![id, definition.to_string(), ts(now)])?;
                Ok(())
            })
            .await
    }

    async fn get_journey(&self, id: &str) -> Result<Option<JourneyRecord>> {
        let id = id.to_string();
        self.read(move |conn| journey_record(conn, &id)).await
    }

    async fn list_journeys(&self) -> Result<Vec<JourneyRecord>> {
        self.read(|conn| {
            let ids = conn
                .prepare_cached("SELECT id FROM journeys ORDER BY id")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(j) = journey_record(conn, &id)? {
                    out.push(j);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn publish(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
        publication: Publication,
    ) -> Result<u32> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                let text = definition.to_string();
                conn.prepare_cached(
                    "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
                     VALUES (?1, ?2, 'live', ?3, ?3) ON CONFLICT(id) DO UPDATE SET \
                     draft = excluded.draft, status = 'live', pause = NULL, \
                     updated_at = excluded.updated_at",
                )?
                .execute(params![id, text, ts(now)])?;
                let version: u32 = conn
                    .prepare_cached(
                        "SELECT COALESCE(MAX(version), 0) + 1 FROM journey_versions WHERE journey_id = ?1",
                    )?
                    .query_row([&id], |r| r.get(0))?;
                conn.prepare_cached(
                    "INSERT INTO journey_versions \
                     (journey_id, version, definition, published_at, published_by, note, split_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    id,
                    version,
                    text,
                    ts(now),
                    publication.by,
                    publication.note,
                    crate::ids::SplitHash::CURRENT.as_str()
                ])?;
                Ok(version)
            })
            .await
    }

    async fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        pause: Option<Pause>,
        now: Timestamp,
    ) -> Result<()> {
        let pause = pause.map(|p| serde_json::to_string(&p)).transpose()?;
        self.execute(
            "UPDATE journeys SET status = ?2, pause = ?3, updated_at = ?4 WHERE id = ?1",
            vec![
                id.to_string().into(),
                status.as_str().to_string().into(),
                pause.into(),
                ts(now).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn versions(&self) -> Result<Vec<VersionRecord>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT journey_id, version, definition, published_at, split_hash \
                 FROM journey_versions ORDER BY journey_id, version",
            )?
            .query_map([], rows::version_record)?
            .collect()
        })
        .await
    }

    async fn version(&self, id: &str, version: u32) -> Result<Option<VersionRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT journey_id, version, definition, published_at, split_hash \
                 FROM journey_versions WHERE journey_id = ?1 AND version = ?2",
            )?
            .query_row(params![id, version], rows::version_record)
            .optional()
        })
        .await
    }

    async fn set_test_mode(&self, id: &str, test: Option<TestMode>) -> Result<()> {
        let test = test.map(|t| serde_json::to_string(&t)).transpose()?;
        self.execute(
            "UPDATE journeys SET test = ?2 WHERE id = ?1",
            vec![id.to_string().into(), test.into()],
        )
        .await?;
        Ok(())
    }

    async fn held_entries(
        &self,
        journey_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<HeldEntry>> {
        let id = journey_id.to_string();
        let rows: Vec<(i64, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT seq, entry FROM held_entries WHERE journey_id = ?1 AND seq > ?2 \
                     ORDER BY seq LIMIT ?3",
                )?
                .query_map(params![id, after, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .await?;
        rows.into_iter()
            .map(|(seq, text)| {
                let mut entry: HeldEntry = serde_json::from_str(&text)?;
                entry.seq = seq;
                Ok(entry)
            })
            .collect()
    }

    async fn journeys_with_held_entries(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT DISTINCT journey_id FROM held_entries ORDER BY journey_id")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .await
    }

    async fn drop_held_entries(&self, journey_id: &str) -> Result<u64> {
        let n = self
            .execute(
                "DELETE FROM held_entries WHERE journey_id = ?1",
                vec![journey_id.to_string().into()],
            )
            .await?;
        Ok(n as u64)
    }
}
