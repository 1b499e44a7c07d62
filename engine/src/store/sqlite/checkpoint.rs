//! The checkpointer: a thread with its own connection that copies committed WAL frames
//! into the database file, so the writer thread never does.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on
//! the writer thread, and stalls every job of that group commit while it reads the WAL,
//! writes the database pages and syncs them. Here the writer's automatic checkpoint is
//! off and this thread runs a `PASSIVE` checkpoint every [`INTERVAL`] (it waits for no
//! reader and no writer). Durability does not depend on it: a commit is durable once its
//! WAL frames are synced, before any checkpoint. The writer starts the WAL over after a
//! complete checkpoint, and `journal_size_limit` (on both connections) truncates a WAL
//! file left larger than [`WAL_SIZE_LIMIT`].
//!
//! It never writes rows; it stops when the store is dropped.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// Time between two checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// WAL file size kept after a checkpoint, in bytes.
pub const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Stops the checkpointer when dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Opens a connection on `path` and starts checkpointing; the writer connection must
    /// have `wal_autocheckpoint` set to 0.
    pub fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        super::schema::configure(&conn)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("parcours-store-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "store: checkpoint failed");
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use crate::Settings;
    use crate::model::Event;
    use crate::store::Store;
    use crate::store::sqlite::{SqliteStore, StoreOptions};

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let store =
            SqliteStore::open(&path, StoreOptions::from(&Settings::default())).expect("store");
        let before = std::fs::metadata(&path).expect("db file").len();
        let now = jiff::Timestamp::now();
        let events: Vec<Event> = (0..2_000)
            .map(|i| Event {
                id: format!("e{i}"),
                event_type: "order".into(),
                profile_id: format!("p{i}"),
                timestamp: now,
                received_at: now,
                data: json!({"pad": "x".repeat(200)}),
            })
            .collect();
        store.ingest(&events).await.expect("ingest");
        // The writer never checkpoints (wal_autocheckpoint is 0): only the checkpointer
        // moves the committed pages from the WAL into the database file.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).expect("db file").len() <= before {
            assert!(Instant::now() < deadline, "no checkpoint in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(store);
        // Every connection closed (the checkpointer's too): SQLite removed the WAL.
        let wal = dir.path().join("c.db-wal");
        let deadline = Instant::now() + Duration::from_secs(20);
        while wal.exists() {
            assert!(
                Instant::now() < deadline,
                "the WAL stayed: a connection is still open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
