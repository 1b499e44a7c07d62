//! The single writer thread: group commit.
//!
//! Every write is a job sent to one thread that owns the write connection. The thread
//! takes all jobs waiting (up to a limit), runs each inside its own savepoint, commits
//! them in one transaction (one fsync for all), and only then answers each job. A job that
//! fails is rolled back alone; the others commit.
//!
//! Between two group commits, when the WAL file has grown past `store_wal_limit_bytes`,
//! the writer checkpoints it completely and truncates it (see [`WalRestart`]): under
//! sustained load the checkpointer's passive checkpoints never catch up with the writer,
//! and SQLite only starts a WAL over after one that did.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::schema;

/// Tells a job's caller how the commit went.
type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write job: runs on the writer's connection, says whether it succeeded, and returns
/// what to do once the transaction is committed (or failed).
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread on `conn`; it stops when every handle is dropped. The WAL is
    /// started over once it is larger than `wal_limit` bytes.
    pub fn start(conn: Connection, max_batch: usize, wal_limit: usize) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("parcours-store-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1), wal_limit as u64))?;
        Ok(Writer { tx })
    }

    /// Runs `f` in the next group commit; resolves once it is durable.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<anyhow::Result<T>>();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let outcome = match (result, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(anyhow::anyhow!("commit failed: {e}")),
                };
                let _ = reply.send(outcome);
            });
            (ok, completion)
        });
        self.tx
            .send(job)
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the store writer stopped before answering"))?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>, max_batch: usize, wal_limit: u64) {
    let mut restart = WalRestart::new(&conn, wal_limit);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut completions = Vec::with_capacity(jobs.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // The jobs never ran; dropping them drops their reply channels, so each
            // caller gets an error.
            tracing::error!(error = %e, "store: cannot begin a transaction");
            drop(jobs);
            continue;
        }
        for job in jobs {
            let _ = conn.execute_batch("SAVEPOINT job");
            let (ok, done) = job(&conn);
            if ok {
                let _ = conn.execute_batch("RELEASE job");
            } else {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            }
            completions.push(done);
        }
        let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in completions {
            done(commit.clone());
        }
        restart.after_commit(&conn);
    }
}

/// How long the writer waits, at most, for readers still on older frames when it
/// restarts the WAL; every commit waits meanwhile.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// Time before the writer tries again after a restart that readers prevented, doubled
/// after each failure in a row (a long reader), up to [`RESTART_RETRY_MAX`].
const RESTART_RETRY: Duration = Duration::from_millis(50);
const RESTART_RETRY_MAX: Duration = Duration::from_secs(2);

/// Starting the WAL over once it is larger than the limit: every committed frame is
/// copied into the database file and the WAL truncated, and the next commit writes it
/// from its start. A WAL left to grow costs more than disk: every page a reader or the
/// writer looks up is searched in the WAL's index, which grows with it, and opening the
/// database reads the whole WAL.
///
/// A reader that keeps an older snapshot (a long report query), or readers that keep
/// taking the same read slot, prevent it: the writer then gives up after
/// [`RESTART_WAIT`] and tries again later, sooner after one failure than after several
/// in a row, so a long read costs commits a few percent of their time rather than the
/// whole busy timeout each time.
struct WalRestart {
    /// The WAL file (none for an in-memory database).
    wal: Option<PathBuf>,
    limit: u64,
    /// No attempt before this time (after one that readers prevented).
    not_before: Option<Instant>,
    /// Attempts that failed in a row.
    failures: u32,
}

impl WalRestart {
    fn new(conn: &Connection, limit: u64) -> WalRestart {
        WalRestart {
            wal: conn
                .path()
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(format!("{p}-wal"))),
            limit,
            not_before: None,
            failures: 0,
        }
    }

    /// Restarts the WAL when it is over the limit and no recent attempt failed.
    fn after_commit(&mut self, conn: &Connection) {
        let Some(wal) = &self.wal else { return };
        if self.not_before.is_some_and(|t| Instant::now() < t)
            || !std::fs::metadata(wal).is_ok_and(|m| m.len() > self.limit)
        {
            return;
        }
        let _ = conn.busy_timeout(RESTART_WAIT);
        let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        let _ = conn.busy_timeout(schema::BUSY_TIMEOUT);
        match done {
            Ok(0) => {
                self.failures = 0;
                self.not_before = None;
                return;
            }
            Ok(_) => tracing::debug!("store: readers kept the WAL from being started over"),
            Err(e) => tracing::warn!(error = %e, "store: checkpoint failed"),
        }
        let wait = RESTART_RETRY
            .saturating_mul(1 << self.failures.min(10))
            .min(RESTART_RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(Instant::now() + wait);
    }
}
