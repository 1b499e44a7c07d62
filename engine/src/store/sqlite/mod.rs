//! The embedded store: one SQLite file in WAL mode, one writer thread with group commit,
//! a checkpointer thread, a few reader connections.
//!
//! This file owns the connections; each concern's trait is implemented in its own file
//! (`events`, `states` for partitions, `instances`, `profiles`, `audiences`, `journeys`,
//! `runs`, `alerts`, `reports`), beside the SQL helpers it uses; the file itself is
//! locked by one engine at a time (`lock`) and copied by backups and restores (`backup`).
//! Nothing here interprets a journey.

mod alerts;
mod audiences;
mod backup;
mod checkpoint;
mod consent;
mod counts;
mod deliveries;
mod erasure;
mod events;
mod group_rows;
mod instances;
mod journeys;
mod lock;
mod marks;
mod profiles;
mod reports;
mod rows;
mod runs;
mod schema;
mod states;
mod steps;
mod templates;
mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;
use tokio::sync::Semaphore;

use self::writer::Writer;
use super::Result;

pub use backup::{Copied, backup, restore};
pub use lock::DbLock;

/// The SQLite store.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
    _checkpointer: checkpoint::Checkpointer,
    /// Partition commits and state reads to fail on purpose (`fail_next`).
    faults: Faults,
}

/// Failures injected on purpose, to test what the runtime does when the store fails.
#[derive(Default)]
struct Faults {
    commits: std::sync::atomic::AtomicUsize,
    reads: std::sync::atomic::AtomicUsize,
}

impl Faults {
    /// Takes one injected failure of `counter`, if any is left.
    fn take(counter: &std::sync::atomic::AtomicUsize, what: &str) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        match counter.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(anyhow::anyhow!(
                "injected {what} failure (SqliteStore::fail_next)"
            )),
            Err(_) => Ok(()),
        }
    }
}

/// How the store uses its connections (from [`Settings`](crate::Settings)).
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Read connections (`store_readers`).
    pub readers: usize,
    /// Most jobs in one group commit (`store_commit_batch`).
    pub commit_batch: usize,
    /// Page cache of the writer connection (`store_cache_bytes`).
    pub cache_bytes: usize,
    /// WAL size that makes the writer restart the WAL (`store_wal_limit_bytes`).
    pub wal_limit_bytes: usize,
}

impl From<&crate::Settings> for StoreOptions {
    fn from(s: &crate::Settings) -> Self {
        StoreOptions {
            readers: s.store_readers,
            commit_batch: s.store_commit_batch,
            cache_bytes: s.store_cache_bytes,
            wal_limit_bytes: s.store_wal_limit_bytes,
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<SqliteStore> {
        Self::open_with(path, options, true)
    }

    /// Opens a throw-away database (simulations): commits are not synced to disk.
    pub fn open_scratch(path: &Path) -> Result<SqliteStore> {
        let options = StoreOptions {
            readers: 2,
            ..StoreOptions::from(&crate::Settings::default())
        };
        Self::open_with(path, options, false)
    }

    fn open_with(path: &Path, options: StoreOptions, durable: bool) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        schema::configure(&conn)?;
        if !durable {
            conn.pragma_update(None, "synchronous", "OFF")?;
        }
        schema::migrate(&conn)?;
        // A negative cache size is in KiB.
        let cache_kib = i64::try_from(options.cache_bytes / 1024).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", -cache_kib.max(1))?;
        // When a job of a group commit fails, the group runs again with each job in a
        // savepoint, whose journal of the pages it changes is kept in memory rather
        // than in a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Checkpoints run on their own thread (see `checkpoint`), not in a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let wal_limit = i64::try_from(options.wal_limit_bytes).unwrap_or(i64::MAX);
        conn.pragma_update(None, "journal_size_limit", wal_limit)?;
        let checkpointer = checkpoint::Checkpointer::start(path, wal_limit)?;
        let readers = options.readers.max(1);
        let mut pool = Vec::with_capacity(readers);
        for _ in 0..readers {
            let r = Connection::open(path)?;
            schema::configure(&r)?;
            pool.push(r);
        }
        Ok(SqliteStore {
            writer: Writer::start(conn, options.commit_batch, options.wal_limit_bytes)?,
            readers: Arc::new(Mutex::new(pool)),
            permits: Arc::new(Semaphore::new(readers)),
            _checkpointer: checkpointer,
            faults: Faults::default(),
        })
    }

    /// Makes the next `commits` partition commits and `reads` profile-state reads fail,
    /// as a full disk or a broken file would: for tests of the runtime's failure policy.
    /// Nothing is written by a failed commit.
    pub fn fail_next(&self, commits: usize, reads: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.faults.commits.store(commits, SeqCst);
        self.faults.reads.store(reads, SeqCst);
    }

    /// Runs one statement in the next group commit; returns the rows it changed.
    async fn execute(&self, sql: &'static str, values: Vec<SqlValue>) -> Result<usize> {
        self.writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(values.iter()))?)
            })
            .await
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no reader connection free"))?;
            let result = in_snapshot(&conn, f);
            pool.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop(permit);
            Ok(result?)
        })
        .await?
    }
}

/// Runs `f`'s statements in one read transaction: they all see the same snapshot, and
/// the connection's page cache is emptied once for them rather than once per statement
/// (SQLite empties it when a read transaction starts after another connection has
/// committed, which the writer does many times a second).
fn in_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn);
    // A read has nothing to commit: ending it only lets the snapshot go.
    let end = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]));
    if end.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let value = result?;
    end?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JourneyStore, Publication};
    use jiff::Timestamp;

    /// Every store conformance case, each on a new database file.
    #[tokio::test]
    async fn the_sqlite_store_passes_the_conformance_cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = std::sync::atomic::AtomicUsize::new(0);
        crate::store::conformance::run_all(|| {
            let n = made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = dir.path().join(format!("case-{n}.db"));
            async move {
                let options = StoreOptions::from(&crate::Settings::default());
                Arc::new(SqliteStore::open(&path, options).expect("open"))
            }
        })
        .await;
    }

    /// A version published by an engine that did not record split hash schemes keeps
    /// FNV-1a (its profiles keep their branches); versions published now get SipHash.
    #[tokio::test]
    async fn versions_published_before_split_schemes_were_recorded_keep_fnv1a() {
        use crate::ids::SplitHash;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("upgrade.db");
        let options = StoreOptions::from(&crate::Settings::default());
        let now: Timestamp = "2026-03-02T08:00:00Z".parse().expect("time");
        let def = serde_json::json!({"entry": {"type": "event", "event": "e"}, "start": "a",
            "nodes": {"a": {"type": "end"}}});
        {
            let store = SqliteStore::open(&path, options).expect("open");
            store
                .publish("j", def.clone(), now, Publication::default())
                .await
                .expect("publish");
        }
        // The database as the previous release left it: no `split_hash` column.
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch("ALTER TABLE journey_versions DROP COLUMN split_hash")
                .expect("drop the column");
        }
        let store = SqliteStore::open(&path, options).expect("reopen");
        store
            .publish("j", def, now, Publication::default())
            .await
            .expect("publish again");
        let schemes: Vec<(u32, SplitHash)> = store
            .versions()
            .await
            .expect("versions")
            .into_iter()
            .map(|v| (v.version, v.split_hash))
            .collect();
        assert_eq!(schemes, [(1, SplitHash::Fnv1a), (2, SplitHash::Sip13)]);
        let one = store.version("j", 1).await.expect("read").expect("v1");
        assert_eq!(one.split_hash, SplitHash::Fnv1a);
    }

    #[test]
    fn a_read_sees_one_snapshot_and_ends_its_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("snapshot.db");
        let writer = Connection::open(&path).expect("open");
        schema::configure(&writer).expect("configure");
        writer
            .execute_batch("CREATE TABLE t (v INTEGER NOT NULL); INSERT INTO t VALUES (1);")
            .expect("create");
        let reader = Connection::open(&path).expect("open");
        schema::configure(&reader).expect("configure");

        // Another connection commits between the read's two statements: the second one
        // still sees what the first one saw.
        let seen = in_snapshot(&reader, |conn| {
            let first: i64 = conn.query_row("SELECT SUM(v) FROM t", [], |r| r.get(0))?;
            writer
                .execute("INSERT INTO t VALUES (10)", [])
                .expect("a commit meanwhile");
            let second: i64 = conn.query_row("SELECT SUM(v) FROM t", [], |r| r.get(0))?;
            Ok((first, second))
        })
        .expect("read");
        assert_eq!(seen, (1, 1));
        assert!(reader.is_autocommit(), "the read transaction is over");
        // The next read sees the commit.
        let next: i64 = in_snapshot(&reader, |conn| {
            conn.query_row("SELECT SUM(v) FROM t", [], |r| r.get(0))
        })
        .expect("read");
        assert_eq!(next, 11);

        // A failed read ends its transaction too, and reports its own error.
        let failed = in_snapshot(&reader, |conn| {
            conn.query_row("SELECT v FROM missing", [], |r| r.get::<_, i64>(0))
        });
        assert!(failed.is_err_and(|e| e.to_string().contains("missing")));
        assert!(reader.is_autocommit());
    }
}
