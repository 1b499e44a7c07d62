//! The messages providers accepted, by message id: what delivery feedback is matched to.

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use super::SqliteStore;
use super::rows::{from_ts, ts};
use crate::store::{DeliveryStore, Result, SentMessage};

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn put_sent(&self, m: SentMessage) -> Result<()> {
        self.execute(
            "INSERT INTO sent_messages (message_id, profile_id, journey_id, instance_id, \
             node_id, channel, provider, to_address, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(message_id) DO NOTHING",
            vec![
                m.message_id.into(),
                m.profile_id.into(),
                m.journey_id.into(),
                m.instance_id.into(),
                m.node_id.into(),
                m.channel.into(),
                m.provider.into(),
                m.to.into(),
                ts(m.at).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn sent_message(&self, message_id: &str) -> Result<Option<SentMessage>> {
        let id = message_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT message_id, profile_id, journey_id, instance_id, node_id, channel, \
                 provider, to_address, at FROM sent_messages WHERE message_id = ?1",
            )?
            .query_row([&id], |r| {
                Ok(SentMessage {
                    message_id: r.get(0)?,
                    profile_id: r.get(1)?,
                    journey_id: r.get(2)?,
                    instance_id: r.get(3)?,
                    node_id: r.get(4)?,
                    channel: r.get(5)?,
                    provider: r.get(6)?,
                    to: r.get(7)?,
                    at: from_ts(r.get(8)?)?,
                })
            })
            .optional()
        })
        .await
    }
}
