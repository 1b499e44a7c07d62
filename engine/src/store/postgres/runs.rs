//! Runs of read-audience journeys and business-event fan-outs on PostgreSQL: a run is
//! its JSON record plus the columns it is found by.

use async_trait::async_trait;
use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, Row};

use super::PgStore;
use crate::model::Event;
use crate::store::{Result, RunRecord, RunStatus, RunStore};

fn status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Finished => "finished",
    }
}

fn record(row: &Row) -> Result<RunRecord> {
    let Json(run): Json<RunRecord> = row.try_get(0)?;
    Ok(run)
}

/// Stores a run unless one with its id exists; whether it was new.
async fn insert(client: &impl GenericClient, run: &RunRecord) -> Result<bool> {
    let n = client
        .execute(
            "INSERT INTO runs (id, journey_id, kind, status, scheduled_at, record) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                &run.id,
                &run.journey_id,
                &run.kind,
                &status(run.status),
                &run.scheduled_at.as_microsecond(),
                &Json(run),
            ],
        )
        .await?;
    Ok(n == 1)
}

#[async_trait]
impl RunStore for PgStore {
    async fn ingest_business_event(&self, event: Event, runs: Vec<RunRecord>) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx
            .execute(
                "INSERT INTO business_events (id, type, ts, received_at, data) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                &[
                    &event.id,
                    &event.event_type,
                    &event.timestamp.as_microsecond(),
                    &event.received_at.as_microsecond(),
                    &event.data,
                ],
            )
            .await?;
        if n == 0 {
            return Ok(false);
        }
        for run in &runs {
            insert(&*tx, run).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn create_run(&self, run: RunRecord) -> Result<bool> {
        insert(&**self.client().await?, &run).await
    }

    async fn update_run(&self, run: RunRecord) -> Result<()> {
        self.execute(
            "UPDATE runs SET status = $2, record = $3 WHERE id = $1",
            &[&run.id, &status(run.status), &Json(&run)],
        )
        .await?;
        Ok(())
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        self.row("SELECT record FROM runs WHERE id = $1", &[&id], record)
            .await
    }

    async fn runs_of_journey(&self, journey_id: &str) -> Result<Vec<RunRecord>> {
        self.rows(
            "SELECT record FROM runs WHERE journey_id = $1 \
             ORDER BY scheduled_at DESC, seq DESC",
            &[&journey_id],
            record,
        )
        .await
    }

    async fn open_runs(&self) -> Result<Vec<RunRecord>> {
        self.rows(
            "SELECT record FROM runs WHERE status = 'running' ORDER BY scheduled_at, id",
            &[],
            record,
        )
        .await
    }

    async fn last_scheduled_run(&self, journey_id: &str) -> Result<Option<RunRecord>> {
        self.row(
            "SELECT record FROM runs WHERE journey_id = $1 AND kind = 'schedule' \
             ORDER BY scheduled_at DESC, seq DESC LIMIT 1",
            &[&journey_id],
            record,
        )
        .await
    }
}
