//! Subscription groups, consent changes (written by a partition's commit, read here), the
//! suppression list and the secret that signs the links of messages, on PostgreSQL.

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

use super::{PgStore, time};
use crate::store::{ConsentChange, ConsentStore, Result, Suppression};

fn suppression(row: &Row) -> Result<Suppression> {
    Ok(Suppression {
        address: row.try_get(0)?,
        reason: row.try_get(1)?,
        source: row.try_get(2)?,
        at: time(row, 3)?,
    })
}

#[async_trait]
impl ConsentStore for PgStore {
    async fn put_subscription_group(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO subscription_groups (id, definition, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at",
            &[&id, &definition, &now.as_microsecond()],
        )
        .await?;
        Ok(())
    }

    async fn subscription_groups(&self) -> Result<Vec<(String, Value)>> {
        self.rows(
            "SELECT id, definition FROM subscription_groups ORDER BY id",
            &[],
            |r| Ok((r.try_get(0)?, r.try_get(1)?)),
        )
        .await
    }

    async fn consent_changes(
        &self,
        profile_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, ConsentChange)>> {
        let limit = i64::try_from(limit)?;
        self.rows(
            "SELECT seq, profile_id, grp, subscribed, source, message_id, at \
             FROM consent_changes WHERE profile_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&profile_id, &after.unwrap_or(0), &limit],
            |r| {
                Ok((
                    r.try_get(0)?,
                    ConsentChange {
                        profile_id: r.try_get(1)?,
                        group: r.try_get(2)?,
                        subscribed: r.try_get(3)?,
                        source: r.try_get(4)?,
                        message_id: r.try_get(5)?,
                        at: time(r, 6)?,
                    },
                ))
            },
        )
        .await
    }

    async fn put_suppression(&self, s: Suppression) -> Result<bool> {
        // `xmax = 0` only on a row the statement inserted (an updated row carries the
        // updating transaction's id).
        let inserted: bool = self
            .client()
            .await?
            .query_one(
                "INSERT INTO suppressions (address, reason, source, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, \
                 source = excluded.source, at = excluded.at \
                 RETURNING xmax = 0",
                &[&s.address, &s.reason, &s.source, &s.at.as_microsecond()],
            )
            .await?
            .try_get(0)?;
        Ok(inserted)
    }

    async fn suppression(&self, address: &str) -> Result<Option<Suppression>> {
        self.row(
            "SELECT address, reason, source, at FROM suppressions WHERE address = $1",
            &[&address],
            suppression,
        )
        .await
    }

    async fn delete_suppression(&self, address: &str) -> Result<bool> {
        Ok(self
            .execute("DELETE FROM suppressions WHERE address = $1", &[&address])
            .await?
            > 0)
    }

    async fn suppressions(&self, after: Option<String>, limit: usize) -> Result<Vec<Suppression>> {
        let limit = i64::try_from(limit)?;
        self.rows(
            "SELECT address, reason, source, at FROM suppressions \
             WHERE address > $1 ORDER BY address LIMIT $2",
            &[&after.unwrap_or_default(), &limit],
            suppression,
        )
        .await
    }

    async fn link_secret(&self) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
            .map_err(|_| anyhow::anyhow!("no random bytes for the link secret"))?;
        let client = self.client().await?;
        // Every node asking at once keeps the first secret stored.
        client
            .execute(
                "INSERT INTO secrets (name, value) VALUES ('links', $1) \
                 ON CONFLICT (name) DO NOTHING",
                &[&&fresh[..]],
            )
            .await?;
        Ok(client
            .query_one("SELECT value FROM secrets WHERE name = 'links'", &[])
            .await?
            .try_get(0)?)
    }
}
