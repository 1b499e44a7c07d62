//! The messages the `outbox` provider kept instead of sending them, on PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, time};
use crate::store::{OutboxRecord, OutboxStore, Result};

#[async_trait]
impl OutboxStore for PgStore {
    async fn put_outbox(&self, m: OutboxRecord) -> Result<bool> {
        let version = i32::try_from(m.template_version)?;
        let n = self
            .execute(
                "INSERT INTO outbox (message_id, profile_id, channel, to_address, journey_id, \
                 node_id, template, template_version, locale, message, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (message_id) DO NOTHING",
                &[
                    &m.message_id,
                    &m.profile_id,
                    &m.channel,
                    &m.to,
                    &m.journey_id,
                    &m.node_id,
                    &m.template,
                    &version,
                    &m.locale,
                    &m.message,
                    &m.at.as_microsecond(),
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
        let limit = i64::try_from(limit)?;
        self.rows(
            "SELECT seq, message_id, profile_id, channel, to_address, journey_id, node_id, \
                 template, template_version, locale, message, at FROM outbox \
                 WHERE seq > $1 AND ($2::text IS NULL OR profile_id = $2) ORDER BY seq LIMIT $3",
            &[&after.unwrap_or(0), &profile_id, &limit],
            |r| {
                let version: i32 = r.try_get(8)?;
                Ok((
                    r.try_get(0)?,
                    OutboxRecord {
                        message_id: r.try_get(1)?,
                        profile_id: r.try_get(2)?,
                        channel: r.try_get(3)?,
                        to: r.try_get(4)?,
                        journey_id: r.try_get(5)?,
                        node_id: r.try_get(6)?,
                        template: r.try_get(7)?,
                        template_version: u32::try_from(version)?,
                        locale: r.try_get(9)?,
                        message: r.try_get(10)?,
                        at: time(r, 11)?,
                    },
                ))
            },
        )
        .await
    }
}
