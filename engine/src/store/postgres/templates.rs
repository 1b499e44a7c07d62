//! Message templates on PostgreSQL: every version kept, the latest found by the primary
//! key's order, as in the SQLite backend.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PgStore, time};
use crate::store::{Result, TemplateRecord, TemplateStore};

const COLUMNS: &str = "id, version, definition, created_at";

/// The advisory lock namespace of a template's versions (the first key of the two-key
/// form; the second is the hash of the template's id).
const TEMPLATE_LOCKS: i32 = 1;

fn record(row: &Row) -> Result<TemplateRecord> {
    let version: i32 = row.try_get(1)?;
    Ok(TemplateRecord {
        id: row.try_get(0)?,
        version: u32::try_from(version)?,
        definition: row.try_get(2)?,
        created_at: time(row, 3)?,
    })
}

#[async_trait]
impl TemplateStore for PgStore {
    async fn put_template(&self, id: &str, definition: Value, now: Timestamp) -> Result<u32> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Two nodes saving the same template at once number their versions one after
        // the other instead of colliding on the key.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&TEMPLATE_LOCKS, &id],
        )
        .await?;
        let latest = tx
            .query_opt(
                "SELECT version, definition FROM templates WHERE id = $1 \
                 ORDER BY version DESC LIMIT 1",
                &[&id],
            )
            .await?
            .map(|row| -> Result<(i32, Value)> { Ok((row.try_get(0)?, row.try_get(1)?)) })
            .transpose()?;
        if let Some((version, stored)) = &latest
            && *stored == definition
        {
            return Ok(u32::try_from(*version)?);
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        tx.execute(
            "INSERT INTO templates (id, version, definition, created_at) VALUES ($1, $2, $3, $4)",
            &[&id, &version, &definition, &now.as_microsecond()],
        )
        .await?;
        tx.commit().await?;
        Ok(u32::try_from(version)?)
    }

    async fn get_template(&self, id: &str, version: Option<u32>) -> Result<Option<TemplateRecord>> {
        let version = version.map(i32::try_from).transpose()?;
        self.row(
            &format!(
                "SELECT {COLUMNS} FROM templates WHERE id = $1 \
                 AND ($2::integer IS NULL OR version = $2) ORDER BY version DESC LIMIT 1"
            ),
            &[&id, &version],
            record,
        )
        .await
    }

    async fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        self.rows(
            &format!("SELECT DISTINCT ON (id) {COLUMNS} FROM templates ORDER BY id, version DESC"),
            &[],
            record,
        )
        .await
    }

    async fn template_versions(&self, id: &str) -> Result<Vec<TemplateRecord>> {
        self.rows(
            &format!("SELECT {COLUMNS} FROM templates WHERE id = $1 ORDER BY version"),
            &[&id],
            record,
        )
        .await
    }
}
