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
//! file left larger than `store_wal_limit_bytes`. Under sustained load a passive
//! checkpoint never completes (the writer appends faster than it copies), so the writer
//! itself checkpoints completely between two group commits once the WAL passes
//! `store_wal_limit_bytes` (`writer::restart_wal`).
//!
//! It never writes rows; it stops when the store is dropped.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// Time between two checkpoints.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Stops the checkpointer when dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Opens a connection on `path` and starts checkpointing; the writer connection must
    /// have `wal_autocheckpoint` set to 0. `wal_limit` is the WAL file size kept after a checkpoint, in bytes.
    pub fn start(path: &Path, wal_limit: i64) -> anyhow::Result<Checkpointer> {
        let conn = Connection::open(path)?;
        super::schema::configure(&conn)?;
        conn.pragma_update(None, "journal_size_limit", wal_limit)?;
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
    use crate::store::EventStore;
    use crate::store::sqlite::{SqliteStore, StoreOptions};

    /// Drops the store and waits until no file of the test's directory is open: every
    /// connection closed, the writer's and the checkpointer's threads included. (Whether
    /// SQLite removes the WAL then depends on which connection closes last.)
    async fn close(store: SqliteStore, dir: &std::path::Path) {
        drop(store);
        let open_here = || {
            std::fs::read_dir("/proc/self/fd")
                .map(|fds| {
                    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                        .any(|target| target.starts_with(dir))
                })
                .unwrap_or(false)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while open_here() {
            assert!(
                Instant::now() < deadline,
                "a connection is still open after the store was dropped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The WAL limit of the tests that restart it.
    const LIMIT: usize = 256 << 10;

    /// A store at `path` whose WAL starts over past [`LIMIT`].
    fn small_wal_store(path: &std::path::Path) -> SqliteStore {
        let options = StoreOptions {
            wal_limit_bytes: LIMIT,
            ..StoreOptions::from(&Settings::default())
        };
        SqliteStore::open(path, options).expect("store")
    }

    /// `n` order events with ids `e<batch>-<i>` and `pad` bytes of data each.
    fn events(batch: usize, n: usize, pad: usize) -> Vec<Event> {
        let now = jiff::Timestamp::now();
        (0..n)
            .map(|i| Event {
                id: format!("e{batch}-{i}"),
                event_type: "order".into(),
                profile_id: format!("p{i}"),
                timestamp: now,
                received_at: now,
                data: json!({"pad": "x".repeat(pad)}),
            })
            .collect()
    }

    /// Under sustained commits, with readers always reading, the WAL stays near
    /// `store_wal_limit_bytes` instead of growing with everything ever written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_started_over_under_sustained_writes_and_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(small_wal_store(&dir.path().join("w.db")));
        let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reader = {
            let (store, reading) = (store.clone(), reading.clone());
            tokio::spawn(async move {
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    store.unprocessed_events(0, 50).await.expect("read");
                }
            })
        };
        let wal = dir.path().join("w.db-wal");
        let mut largest = 0;
        for batch in 0..120 {
            store
                .ingest(&events(batch, 200, 1_000))
                .await
                .expect("ingest");
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        reading.store(false, std::sync::atomic::Ordering::Relaxed);
        reader.await.expect("reader");
        let store = std::sync::Arc::into_inner(store).expect("the reader task ended");
        // 24,000 events of 1 KB were written (more than 24 MiB of WAL frames); the WAL
        // held at most the limit and what was committed while readers kept it from
        // starting over (a few short retries).
        assert!(
            largest < 8 << 20,
            "the WAL grew to {largest} bytes with a limit of {LIMIT}"
        );
        close(store, dir.path()).await;
    }

    /// A reader that keeps an old snapshot prevents the WAL from starting over; commits
    /// go on meanwhile, and the WAL starts over once the reader is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_reader_delays_the_wal_restart_without_stopping_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let store = small_wal_store(&path);
        store.ingest(&events(0, 10, 10)).await.expect("ingest");
        // A report-like read: a transaction that keeps its snapshot.
        let reader = rusqlite::Connection::open(&path).expect("reader");
        reader
            .execute_batch("BEGIN; SELECT COUNT(*) FROM events;")
            .expect("snapshot");
        let wal_len = || std::fs::metadata(dir.path().join("r.db-wal")).map_or(0, |m| m.len());
        for batch in 1..20 {
            store
                .ingest(&events(batch, 200, 1_000))
                .await
                .expect("ingest while a reader holds its snapshot");
        }
        assert!(
            wal_len() > 2 << 20,
            "the WAL could not start over under the reader"
        );
        reader.execute_batch("COMMIT").expect("end of the read");
        drop(reader);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut batch = 20;
        while wal_len() > LIMIT as u64 {
            assert!(Instant::now() < deadline, "the WAL never started over");
            store.ingest(&events(batch, 10, 10)).await.expect("ingest");
            batch += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        close(store, dir.path()).await;
    }

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let store =
            SqliteStore::open(&path, StoreOptions::from(&Settings::default())).expect("store");
        let before = std::fs::metadata(&path).expect("db file").len();
        store.ingest(&events(0, 2_000, 200)).await.expect("ingest");
        // The writer never checkpoints (wal_autocheckpoint is 0): only the checkpointer
        // moves the committed pages from the WAL into the database file.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).expect("db file").len() <= before {
            assert!(Instant::now() < deadline, "no checkpoint in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Every connection closes (the checkpointer's too).
        close(store, dir.path()).await;
    }
}
