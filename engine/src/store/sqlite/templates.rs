//! Message templates (every version kept, the latest found by the primary key's order)
//! and the outbox provider's messages.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use super::rows::{from_ts, ts};
use crate::store::{OutboxRecord, OutboxStore, Result, TemplateRecord, TemplateStore};

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

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn put_outbox(&self, m: OutboxRecord) -> Result<bool> {
        let n = self
            .execute(
                "INSERT INTO outbox (message_id, profile_id, channel, to_address, journey_id, \
                 node_id, template, template_version, locale, message, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT(message_id) DO NOTHING",
                vec![
                    m.message_id.into(),
                    m.profile_id.into(),
                    m.channel.into(),
                    m.to.into(),
                    m.journey_id.into(),
                    m.node_id.into(),
                    m.template.into(),
                    i64::from(m.template_version).into(),
                    m.locale.into(),
                    m.message.to_string().into(),
                    ts(m.at).into(),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn outbox_page(
        &self,
        profile_id: Option<String>,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, OutboxRecord)>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT seq, message_id, profile_id, channel, to_address, journey_id, node_id, \
                 template, template_version, locale, message, at FROM outbox \
                 WHERE seq > ?1 AND (?2 IS NULL OR profile_id = ?2) ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![after.unwrap_or(0), profile_id, limit as i64], |r| {
                let message: String = r.get(10)?;
                Ok((
                    r.get(0)?,
                    OutboxRecord {
                        message_id: r.get(1)?,
                        profile_id: r.get(2)?,
                        channel: r.get(3)?,
                        to: r.get(4)?,
                        journey_id: r.get(5)?,
                        node_id: r.get(6)?,
                        template: r.get(7)?,
                        template_version: r.get(8)?,
                        locale: r.get(9)?,
                        message: serde_json::from_str(&message).unwrap_or(Value::Null),
                        at: from_ts(r.get(11)?)?,
                    },
                ))
            })?
            .collect()
        })
        .await
    }
}
