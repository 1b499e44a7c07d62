//! The messages providers accepted, by message id, on PostgreSQL: what delivery feedback
//! is matched to.

use async_trait::async_trait;

use super::{PgStore, time};
use crate::store::{DeliveryStore, Result, SentMessage};

#[async_trait]
impl DeliveryStore for PgStore {
    async fn put_sent(&self, m: SentMessage) -> Result<()> {
        self.execute(
            "INSERT INTO sent_messages (message_id, profile_id, journey_id, instance_id, \
             node_id, channel, provider, to_address, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (message_id) DO NOTHING",
            &[
                &m.message_id,
                &m.profile_id,
                &m.journey_id,
                &m.instance_id,
                &m.node_id,
                &m.channel,
                &m.provider,
                &m.to,
                &m.at.as_microsecond(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn sent_message(&self, message_id: &str) -> Result<Option<SentMessage>> {
        self.row(
            "SELECT message_id, profile_id, journey_id, instance_id, node_id, channel, \
             provider, to_address, at FROM sent_messages WHERE message_id = $1",
            &[&message_id],
            |r| {
                Ok(SentMessage {
                    message_id: r.try_get(0)?,
                    profile_id: r.try_get(1)?,
                    journey_id: r.try_get(2)?,
                    instance_id: r.try_get(3)?,
                    node_id: r.try_get(4)?,
                    channel: r.try_get(5)?,
                    provider: r.try_get(6)?,
                    to: r.try_get(7)?,
                    at: time(r, 8)?,
                })
            },
        )
        .await
    }
}
