//! Accepted events: ingest (once per id), the unprocessed backlog, reads. Which events
//! are processed is `marks.rs`'s.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::rows::{self, ts};
use super::{SqliteStore, marks};
use crate::model::Event;
use crate::store::{EventRecord, EventStore, Result};

#[async_trait]
impl EventStore for SqliteStore {
    async fn ingest(&self, events: &[Event]) -> Result<Vec<Option<i64>>> {
        // Rows are built here, on the caller's thread: the one writer thread only runs SQL.
        let rows: Vec<(String, String, String, i64, i64, String)> = events
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.event_type.clone(),
                    e.profile_id.clone(),
                    ts(e.timestamp),
                    ts(e.received_at),
                    e.data.to_string(),
                )
            })
            .collect();
        self.writer
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "INSERT INTO events (id, type, profile_id, ts, received_at, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
                )?;
                let mut fresh = Vec::with_capacity(rows.len());
                for (id, event_type, profile_id, at, received_at, data) in &rows {
                    let n =
                        stmt.execute(params![id, event_type, profile_id, at, received_at, data])?;
                    // `seq` is the rowid: the row just inserted's.
                    fresh.push((n == 1).then(|| conn.last_insert_rowid()));
                }
                Ok(fresh)
            })
            .await
    }

    async fn unprocessed_events(&self, after: i64, limit: usize) -> Result<Vec<(i64, Event)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE seq = ?1",
                rows::EVENT_COLUMNS
            ))?;
            marks::unprocessed(conn, after, limit)?
                .into_iter()
                .map(|seq| stmt.query_row([seq], rows::event))
                .collect()
        })
        .await
    }

    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE id = ?1",
                rows::EVENT_COLUMNS
            ))?
            .query_row([id], rows::event)
            .optional()?
            .map(|(seq, event)| {
                let processed = marks::is_processed(conn, seq)?;
                Ok(EventRecord { event, processed })
            })
            .transpose()
        })
        .await
    }

    async fn events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        types: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE received_at >= ?1 AND received_at < ?2 ORDER BY seq",
                rows::EVENT_COLUMNS
            ))?;
            let mut out = Vec::new();
            for row in stmt.query_map(params![ts(from), ts(to)], rows::event)? {
                let (_, event) = row?;
                if types.as_ref().is_none_or(|t| t.contains(&event.event_type)) {
                    out.push(event);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}
