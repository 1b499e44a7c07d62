//! Journeys on PostgreSQL: drafts, published versions, status, test mode and held entries
//! (written by partition commits, read and dropped here).

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, Row};

use super::{PgStore, time};
use crate::store::{
    HeldEntry, JourneyRecord, JourneyStatus, JourneyStore, Pause, Publication, Result, TestMode,
    VersionInfo, VersionRecord,
};

const VERSION_COLUMNS: &str = "journey_id, version, definition, published_at, split_hash";

fn version_record(row: &Row) -> Result<VersionRecord> {
    let version: i32 = row.try_get(1)?;
    let scheme: Option<String> = row.try_get(4)?;
    Ok(VersionRecord {
        journey_id: row.try_get(0)?,
        version: u32::try_from(version)?,
        definition: row.try_get(2)?,
        published_at: time(row, 3)?,
        split_hash: crate::ids::SplitHash::from_stored(scheme.as_deref())
            .map_err(anyhow::Error::msg)?,
    })
}

/// A read-only transaction that sees one snapshot: a journey and its versions read
/// together agree, whatever is published meanwhile.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// One journey with its versions, read in the caller's snapshot.
async fn journey_record(client: &impl GenericClient, id: &str) -> Result<Option<JourneyRecord>> {
    let Some(row) = client
        .query_opt(
            "SELECT id, draft, status, created_at, updated_at, pause, test \
             FROM journeys WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let versions = client
        .query(
            "SELECT version, published_at, published_by, note FROM journey_versions \
             WHERE journey_id = $1 ORDER BY version",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| -> Result<VersionInfo> {
            let version: i32 = r.try_get(0)?;
            Ok(VersionInfo {
                version: u32::try_from(version)?,
                published_at: time(r, 1)?,
                published_by: r.try_get(2)?,
                note: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let status: String = row.try_get(2)?;
    // A pause or test mode that no longer parses is dropped, as the SQLite backend does.
    let pause: Option<Value> = row.try_get(5)?;
    let test: Option<Value> = row.try_get(6)?;
    Ok(Some(JourneyRecord {
        id: row.try_get(0)?,
        draft: row.try_get(1)?,
        status: JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Draft),
        created_at: time(&row, 3)?,
        updated_at: time(&row, 4)?,
        pause: pause.and_then(|p| serde_json::from_value::<Pause>(p).ok()),
        test: test.and_then(|t| serde_json::from_value(t).ok()),
        versions,
    }))
}

#[async_trait]
impl JourneyStore for PgStore {
    async fn put_draft(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        self.execute(
            "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
             VALUES ($1, $2, 'draft', $3, $3) ON CONFLICT (id) DO UPDATE SET \
             draft = excluded.draft, updated_at = excluded.updated_at",
            &[&id, &definition, &now.as_microsecond()],
        )
        .await?;
        Ok(())
    }

    async fn get_journey(&self, id: &str) -> Result<Option<JourneyRecord>> {
        let mut client = self.client().await?;
        journey_record(&*snapshot(&mut client).await?, id).await
    }

    async fn list_journeys(&self) -> Result<Vec<JourneyRecord>> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let ids: Vec<String> = tx
            .query("SELECT id FROM journeys ORDER BY id", &[])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(j) = journey_record(&*tx, &id).await? {
                out.push(j);
            }
        }
        Ok(out)
    }

    async fn publish(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
        publication: Publication,
    ) -> Result<u32> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The journey's row is locked by its upsert until the commit, so two nodes
        // publishing the same journey number their versions one after the other.
        tx.execute(
            "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
             VALUES ($1, $2, 'live', $3, $3) ON CONFLICT (id) DO UPDATE SET \
             draft = excluded.draft, status = 'live', pause = NULL, \
             updated_at = excluded.updated_at",
            &[&id, &definition, &now.as_microsecond()],
        )
        .await?;
        let version: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM journey_versions WHERE journey_id = $1",
                &[&id],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "INSERT INTO journey_versions \
             (journey_id, version, definition, published_at, published_by, note, split_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &version,
                &definition,
                &now.as_microsecond(),
                &publication.by,
                &publication.note,
                &crate::ids::SplitHash::CURRENT.as_str(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(u32::try_from(version)?)
    }

    async fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        pause: Option<Pause>,
        now: Timestamp,
    ) -> Result<()> {
        self.execute(
            "UPDATE journeys SET status = $2, pause = $3, updated_at = $4 WHERE id = $1",
            &[
                &id,
                &status.as_str(),
                &pause.as_ref().map(Json),
                &now.as_microsecond(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn versions(&self) -> Result<Vec<VersionRecord>> {
        self.rows(
            &format!("SELECT {VERSION_COLUMNS} FROM journey_versions ORDER BY journey_id, version"),
            &[],
            version_record,
        )
        .await
    }

    async fn version(&self, id: &str, version: u32) -> Result<Option<VersionRecord>> {
        let version = i32::try_from(version)?;
        self.row(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM journey_versions \
                 WHERE journey_id = $1 AND version = $2"
            ),
            &[&id, &version],
            version_record,
        )
        .await
    }

    async fn set_test_mode(&self, id: &str, test: Option<TestMode>) -> Result<()> {
        self.execute(
            "UPDATE journeys SET test = $2 WHERE id = $1",
            &[&id, &test.as_ref().map(Json)],
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
        let limit = i64::try_from(limit)?;
        self.rows(
            "SELECT seq, entry FROM held_entries WHERE journey_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
            &[&journey_id, &after, &limit],
            |r| {
                let Json(mut entry): Json<HeldEntry> = r.try_get(1)?;
                entry.seq = r.try_get(0)?;
                Ok(entry)
            },
        )
        .await
    }

    async fn journeys_with_held_entries(&self) -> Result<Vec<String>> {
        self.rows(
            "SELECT DISTINCT journey_id FROM held_entries ORDER BY journey_id",
            &[],
            |r| Ok(r.try_get(0)?),
        )
        .await
    }

    async fn drop_held_entries(&self, journey_id: &str) -> Result<u64> {
        self.execute(
            "DELETE FROM held_entries WHERE journey_id = $1",
            &[&journey_id],
        )
        .await
    }
}
