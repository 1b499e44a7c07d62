//! Alert rules and their state on PostgreSQL.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

use super::PgStore;
use crate::store::{AlertStore, Result};

#[async_trait]
impl AlertStore for PgStore {
    async fn put_alert(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        self.execute(
            "INSERT INTO alerts (id, definition, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at",
            &[&id, &definition, &now.as_microsecond()],
        )
        .await?;
        Ok(())
    }

    async fn delete_alert(&self, id: &str) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM alerts WHERE id = $1", &[&id])
            .await?
            > 0)
    }

    async fn alerts(&self) -> Result<Vec<(String, Value, Option<Value>)>> {
        self.rows(
            "SELECT id, definition, state FROM alerts ORDER BY id",
            &[],
            |row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)),
        )
        .await
    }

    async fn set_alert_state(&self, id: &str, state: Value) -> Result<()> {
        self.execute("UPDATE alerts SET state = $2 WHERE id = $1", &[&id, &state])
            .await?;
        Ok(())
    }
}
