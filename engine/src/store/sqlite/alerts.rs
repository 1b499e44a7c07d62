//! Alert rules and their state.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

use super::SqliteStore;
use super::rows::ts;
use crate::store::{AlertStore, Result};

#[async_trait]
impl AlertStore for SqliteStore {
    async fn put_alert(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        self.execute(
            "INSERT INTO alerts (id, definition, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(id) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at",
            vec![
                id.to_string().into(),
                definition.to_string().into(),
                ts(now).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_alert(&self, id: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM alerts WHERE id = ?1",
                vec![id.to_string().into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn alerts(&self) -> Result<Vec<(String, Value, Option<Value>)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, definition, state FROM alerts ORDER BY id")?
                .query_map([], |r| {
                    let def: String = r.get(1)?;
                    let state: Option<String> = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        serde_json::from_str(&def).unwrap_or(Value::Null),
                        state.and_then(|s| serde_json::from_str(&s).ok()),
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn set_alert_state(&self, id: &str, state: Value) -> Result<()> {
        self.execute(
            "UPDATE alerts SET state = ?2 WHERE id = ?1",
            vec![id.to_string().into(), state.to_string().into()],
        )
        .await?;
        Ok(())
    }
}
