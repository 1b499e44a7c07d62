//! Runs of read-audience journeys and business-event fan-outs.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::rows::ts;
use crate::model::Event;
use crate::store::{Result, RunRecord, RunStatus, RunStore};

pub(super) fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Finished => "finished",
    }
}

pub(super) fn run_json(run: &RunRecord) -> String {
    serde_json::to_string(run).unwrap_or_else(|_| "{}".into())
}

pub(super) fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let text: String = r.get(0)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn insert_run(conn: &Connection, run: &RunRecord) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO runs (id, journey_id, kind, status, scheduled_at, record) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![
            run.id,
            run.journey_id,
            run.kind,
            run_status(run.status),
            ts(run.scheduled_at),
            run_json(run)
        ])?;
    Ok(n == 1)
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn ingest_business_event(&self, event: Event, runs: Vec<RunRecord>) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "INSERT INTO business_events (id, type, ts, received_at, data) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
                    )?
                    .execute(params![
                        event.id,
                        event.event_type,
                        ts(event.timestamp),
                        ts(event.received_at),
                        event.data.to_string()
                    ])?;
                if n == 0 {
                    return Ok(false);
                }
                for run in &runs {
                    insert_run(conn, run)?;
                }
                Ok(true)
            })
            .await
    }

    async fn create_run(&self, run: RunRecord) -> Result<bool> {
        self.writer
            .write(move |conn| Ok(insert_run(conn, &run)?))
            .await
    }

    async fn update_run(&self, run: RunRecord) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE runs SET status = ?2, record = ?3 WHERE id = ?1")?
                    .execute(params![run.id, run_status(run.status), run_json(&run)])?;
                Ok(())
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT record FROM runs WHERE id = ?1")?
                .query_row([id], run_row)
                .optional()
        })
        .await
    }

    async fn runs_of_journey(&self, journey_id: &str) -> Result<Vec<RunRecord>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE journey_id = ?1 ORDER BY scheduled_at DESC, rowid DESC",
            )?
            .query_map([id], run_row)?
            .collect()
        })
        .await
    }

    async fn open_runs(&self) -> Result<Vec<RunRecord>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE status = 'running' ORDER BY scheduled_at, id",
            )?
            .query_map([], run_row)?
            .collect()
        })
        .await
    }

    async fn last_scheduled_run(&self, journey_id: &str) -> Result<Option<RunRecord>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE journey_id = ?1 AND kind = 'schedule'                  ORDER BY scheduled_at DESC LIMIT 1",
            )?
            .query_row([id], run_row)
            .optional()
        })
        .await
    }
}
