//! What journey reports read: live instances by node, step counters, conversions.

use async_trait::async_trait;

use super::{SqliteStore, counts};
use crate::store::{Conversion, NodeCount, ReportStore, Result};

#[async_trait]
impl ReportStore for SqliteStore {
    async fn live_by_node(&self, journey_id: &str) -> Result<Vec<(u32, String, u64)>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT version, COALESCE(node, ''), COUNT(*) FROM instances \
                 WHERE journey_id = ?1 AND status IN ('active', 'waiting') \
                 GROUP BY version, node ORDER BY version, node",
            )?
            .query_map([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?
            .collect()
        })
        .await
    }

    async fn node_counts(&self, journey_id: &str) -> Result<Vec<NodeCount>> {
        let id = journey_id.to_string();
        self.read(move |conn| counts::select(conn, &id)).await
    }

    async fn conversions(&self, journey_id: &str, success: &str) -> Result<Vec<Conversion>> {
        let (id, success) = (journey_id.to_string(), success.to_string());
        self.read(move |conn| counts::conversions(conn, &id, &success))
            .await
    }
}
