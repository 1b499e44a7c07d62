//! Subscription groups, consent changes (written by a partition's commit), the
//! suppression list and the secret that signs the links of messages.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::SqliteStore;
use super::rows::{from_ts, ts};
use crate::store::{ConsentChange, ConsentStore, Result, Suppression};

/// Appends a commit's consent changes (inside the partition's transaction).
pub fn insert_changes(conn: &Connection, changes: &[ConsentChange]) -> rusqlite::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO consent_changes (profile_id, grp, subscribed, source, message_id, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in changes {
        insert.execute(params![
            c.profile_id,
            c.group,
            c.subscribed,
            c.source,
            c.message_id,
            ts(c.at)
        ])?;
    }
    Ok(())
}

fn suppression(r: &rusqlite::Row<'_>) -> rusqlite::Result<Suppression> {
    Ok(Suppression {
        address: r.get(0)?,
        reason: r.get(1)?,
        source: r.get(2)?,
        at: from_ts(r.get(3)?)?,
    })
}

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn put_subscription_group(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO subscription_groups (id, definition, updated_at) VALUES (?1, ?2, ?3) \
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

    async fn subscription_groups(&self) -> Result<Vec<(String, Value)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, definition FROM subscription_groups ORDER BY id")?
                .query_map([], |r| {
                    let text: String = r.get(1)?;
                    Ok((
                        r.get(0)?,
                        serde_json::from_str(&text).unwrap_or(Value::Null),
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn consent_changes(
        &self,
        profile_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, ConsentChange)>> {
        let profile_id = profile_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT seq, profile_id, grp, subscribed, source, message_id, at \
                 FROM consent_changes WHERE profile_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(params![profile_id, after.unwrap_or(0), limit as i64], |r| {
                Ok((
                    r.get(0)?,
                    ConsentChange {
                        profile_id: r.get(1)?,
                        group: r.get(2)?,
                        subscribed: r.get(3)?,
                        source: r.get(4)?,
                        message_id: r.get(5)?,
                        at: from_ts(r.get(6)?)?,
                    },
                ))
            })?
            .collect()
        })
        .await
    }

    async fn put_suppression(&self, s: Suppression) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let existed: bool = conn
                    .prepare_cached("SELECT 1 FROM suppressions WHERE address = ?1")?
                    .query_row([&s.address], |_| Ok(()))
                    .optional()?
                    .is_some();
                conn.prepare_cached(
                    "INSERT INTO suppressions (address, reason, source, at) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT(address) DO UPDATE SET reason = excluded.reason, \
                     source = excluded.source, at = excluded.at",
                )?
                .execute(params![s.address, s.reason, s.source, ts(s.at)])?;
                Ok(!existed)
            })
            .await
    }

    async fn suppression(&self, address: &str) -> Result<Option<Suppression>> {
        let address = address.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT address, reason, source, at FROM suppressions WHERE address = ?1",
            )?
            .query_row([&address], suppression)
            .optional()
        })
        .await
    }

    async fn delete_suppression(&self, address: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM suppressions WHERE address = ?1",
                vec![address.to_string().into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn suppressions(&self, after: Option<String>, limit: usize) -> Result<Vec<Suppression>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT address, reason, source, at FROM suppressions \
                 WHERE address > ?1 ORDER BY address LIMIT ?2",
            )?
            .query_map(
                params![after.unwrap_or_default(), limit as i64],
                suppression,
            )?
            .collect()
        })
        .await
    }

    async fn link_secret(&self) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
            .map_err(|_| anyhow::anyhow!("no random bytes for the link secret"))?;
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO secrets (name, value) VALUES ('links', ?1) \
                     ON CONFLICT(name) DO NOTHING",
                )?
                .execute([&fresh[..]])?;
                Ok(conn
                    .prepare_cached("SELECT value FROM secrets WHERE name = 'links'")?
                    .query_row([], |r| r.get(0))?)
            })
            .await
    }
}
