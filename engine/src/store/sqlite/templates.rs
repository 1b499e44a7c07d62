//! Message templates: every version kept, the latest found by the primary key's order.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use super::rows::{from_ts, ts};
use crate::store::{Result, TemplateRecord, TemplateStore};

const COLUMNS: &str = "id, version, definition, created_at";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<TemplateRecord> {
    let definition: String = r.get(2)?;
    Ok(TemplateRecord {
        id: r.get(0)?,
        version: r.get(1)?,
        definition: serde_json::from_str(&definition).unwrap_or(Value::Null),
        created_at: from_ts(r.get(3)?)?,
    })
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn put_template(&self, id: &str, definition: Value, now: Timestamp) -> Result<u32> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                let latest: Option<(u32, String)> = conn
                    .prepare_cached(
                        "SELECT version, definition FROM templates WHERE id = ?1 \
                         ORDER BY version DESC LIMIT 1",
                    )?
                    .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((version, text)) = &latest
                    && serde_json::from_str::<Value>(text).ok().as_ref() == Some(&definition)
                {
                    return Ok(*version);
                }
                let version = latest.map_or(1, |(v, _)| v + 1);
                conn.prepare_cached(
                    "INSERT INTO templates (id, version, definition, created_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, version, definition.to_string(), ts(now)])?;
                Ok(version)
            })
            .await
    }

    async fn get_template(&self, id: &str, version: Option<u32>) -> Result<Option<TemplateRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            let sql = match version {
                Some(_) => {
                    format!("SELECT {COLUMNS} FROM templates WHERE id = ?1 AND version = ?2")
                }
                None => format!(
                    "SELECT {COLUMNS} FROM templates WHERE id = ?1 AND ?2 IS NULL \
                     ORDER BY version DESC LIMIT 1"
                ),
            };
            conn.prepare_cached(&sql)?
                .query_row(params![id, version], record)
                .optional()
        })
        .await
    }

    async fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM templates t WHERE version = \
                   (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id"
            ))?
            .query_map([], record)?
            .collect()
        })
        .await
    }

    async fn template_versions(&self, id: &str) -> Result<Vec<TemplateRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM templates WHERE id = ?1 ORDER BY version"
            ))?
            .query_map([&id], record)?
            .collect()
        })
        .await
    }
}
