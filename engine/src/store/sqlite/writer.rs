//! The single writer thread: group commit.
//!
//! Every write is a job sent to one thread that owns the write connection. The thread
//! takes all jobs waiting (up to a limit), runs them in one transaction and commits them
//! together (one fsync for all), and only then answers each job. A job that fails is
//! rolled back alone; the others commit: the group is then rolled back and run again
//! with each job inside its own savepoint. Savepoints are kept for that case because
//! they are not free: inside one, the first change to each page copies the page to a
//! sub-journal, and consecutive jobs change the same pages (the right edges of the
//! tables and indexes), so a savepoint per job cost the writer about a sixth of its time.
//! What every job adds to the same rows (node counters, the processed mark:
//! [`GroupRows`]) is added up over the jobs that succeeded and written once, last, in the
//! group's transaction.
//!
//! Between two group commits, when the WAL file has grown past `store_wal_limit_bytes`,
//! the writer checkpoints it completely and starts it over (see [`WalRestart`]): under
//! sustained load the checkpointer's passive checkpoints never catch up with the writer,
//! and SQLite only starts a WAL over after one that did.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::group_rows::GroupRows;
use super::schema;

/// A write job. It may run more than once (after a rollback of its group); only the
/// result of its last run is answered.
trait Job: Send {
    /// Runs on the writer's connection inside the open transaction; says whether it
    /// succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// What the job adds to the group's shared rows, if its last run succeeded.
    fn shared(&self) -> Option<&GroupRows>;
    /// Answers the caller once the transaction is committed (or failed).
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

/// A job's answer, and the job itself (its closure with what it captured) sent back so
/// that the caller's thread, which allocated what the closure holds, frees it: a block
/// freed on another thread than its own costs the allocator more (a write's rows and
/// JSON text, built on the caller's thread, would all be freed on the writer's).
type Answer<T> = (anyhow::Result<T>, Box<dyn Send>);

struct Pending<T, F> {
    f: F,
    shared: Option<GroupRows>,
    result: Option<anyhow::Result<T>>,
    reply: Option<oneshot::Sender<Answer<T>>>,
}

impl<T, F> Pending<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    /// The job that runs `f` and adds `shared` to its group's rows, and where its
    /// answer arrives.
    fn job(f: F, shared: Option<GroupRows>) -> (Box<dyn Job>, oneshot::Receiver<Answer<T>>) {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            f,
            shared,
            result: None,
            reply: Some(reply),
        });
        (job, answer)
    }
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> anyhow::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn shared(&self) -> Option<&GroupRows> {
        self.shared
            .as_ref()
            .filter(|_| matches!(self.result, Some(Ok(_))))
    }

    fn finish(mut self: Box<Self>, commit: Result<(), String>) {
        let Some(reply) = self.reply.take() else {
            return;
        };
        let outcome = match (self.result.take(), commit) {
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) => Err(anyhow::anyhow!("commit failed: {e}")),
            (None, Err(e)) => Err(anyhow::anyhow!("{e}")),
            (None, Ok(())) => Err(anyhow::anyhow!("the store writer did not run the write")),
        };
        let _ = reply.send((outcome, self));
    }
}

/// Handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    /// Rows the writer's connection inserted, updated or deleted since it opened (SQLite's
    /// `total_changes`, index entries not counted), as of its last group commit.
    rows: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the thread on `conn`; it stops when every handle is dropped. The WAL is
    /// started over once it is larger than `wal_limit` bytes.
    pub fn start(conn: Connection, max_batch: usize, wal_limit: usize) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let rows = Arc::new(AtomicU64::new(0));
        let counted = rows.clone();
        std::thread::Builder::new()
            .name("parcours-store-writer".into())
            .spawn(move || run(conn, rx, (max_batch.max(1), wal_limit as u64), &counted))?;
        Ok(Writer { tx, rows })
    }

    /// Rows written since the store opened (inserted, updated or deleted; a row rolled
    /// back counts too): what the benchmarks divide by the events they ran.
    pub fn rows_written(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Runs `f` in the next group commit; resolves once it is durable. `f` runs again
    /// when its group is rolled back because another job failed, so it must not consume
    /// what it captures (hence `FnMut`) and its effects must be the database's alone.
    pub async fn write<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.send(Pending::job(f, None)).await
    }

    /// As [`Writer::write`], and `shared` is added to the rows the group writes once for
    /// all its jobs, in the same transaction, when `f` succeeds.
    pub async fn write_with<T, F>(&self, shared: GroupRows, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> anyhow::Result<T> + Send + 'static,
    {
        self.send(Pending::job(f, Some(shared))).await
    }

    async fn send<T: Send + 'static>(
        &self,
        (job, answer): (Box<dyn Job>, oneshot::Receiver<Answer<T>>),
    ) -> anyhow::Result<T> {
        self.tx
            .send(job)
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))?;
        let (result, job) = answer
            .await
            .map_err(|_| anyhow::anyhow!("the store writer stopped before answering"))?;
        // Freed here, on the thread that built what the job captured.
        drop(job);
        result
    }
}

fn run(
    conn: Connection,
    rx: mpsc::Receiver<Box<dyn Job>>,
    (max_batch, wal_limit): (usize, u64),
    rows: &AtomicU64,
) {
    let mut restart = WalRestart::new(&conn, wal_limit);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit(&conn, jobs);
        rows.store(conn.total_changes(), Ordering::Relaxed);
        restart.after_commit(&conn);
    }
}

/// Commits `jobs` as one group and answers each.
fn commit(conn: &Connection, mut jobs: Vec<Box<dyn Job>>) {
    let outcome = group(conn, &mut jobs);
    for job in jobs {
        job.finish(outcome.clone());
    }
}

/// Runs `jobs` in one transaction, then writes their shared rows, and commits it: all
/// together when every job succeeds, else again, each job in a savepoint of its own so
/// that a failed one is rolled back alone.
fn group(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<(), String> {
    begin(conn)?;
    if !jobs.iter_mut().all(|job| job.run(conn)) {
        let _ = conn.execute_batch("ROLLBACK");
        begin(conn)?;
        for job in jobs.iter_mut() {
            let _ = conn.execute_batch("SAVEPOINT job");
            if job.run(conn) {
                let _ = conn.execute_batch("RELEASE job");
            } else {
                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
    }
    let mut shared = GroupRows::default();
    for job in jobs.iter() {
        if let Some(rows) = job.shared() {
            shared.add(rows);
        }
    }
    if let Err(e) = shared.write(conn) {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %e, "store: cannot write a group's counters and mark");
        return Err(format!("cannot write the group's counters and mark: {e}"));
    }
    let commit = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    commit
}

fn begin(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
        tracing::error!(error = %e, "store: cannot begin a transaction");
        format!("cannot begin a transaction: {e}")
    })
}

/// How long the writer waits, at most, for readers still on older frames when it
/// restarts the WAL; every commit waits meanwhile.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// Time before the writer tries again after a restart that readers prevented, doubled
/// after each failure in a row (a long reader), up to [`RESTART_RETRY_MAX`].
const RESTART_RETRY: Duration = Duration::from_millis(50);
const RESTART_RETRY_MAX: Duration = Duration::from_secs(2);

/// Starting the WAL over once it is larger than the limit: every committed frame is
/// copied into the database file, and the next commit writes the WAL from its start,
/// over the old frames (`wal_checkpoint(RESTART)`). The file is kept rather than cut to
/// zero (`TRUNCATE`), so the commits after a restart write over blocks the file already
/// has instead of growing it again: with `TRUNCATE`, the commits around each restart
/// took 100–400 ms, and at 2,000 events/s over HTTP they made a trigger-to-started p99
/// of 26–45 ms, against 2.5 ms with `RESTART` (docs/performance.md).
/// `journal_size_limit` keeps the file itself at the limit. A WAL left to grow costs
/// more than disk: every page a reader or the writer looks up is searched in the WAL's
/// index, which grows with it, and opening the database reads the whole WAL.
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
        let done = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A job and the receiver of its answer.
    type Queued = (Box<dyn Job>, oneshot::Receiver<Answer<()>>);

    /// A job that inserts `value` and then fails when `fail` is set; counts its runs.
    fn insert(value: &'static str, fail: bool, runs: &Arc<AtomicUsize>) -> Queued {
        insert_sharing(value, fail, runs, None)
    }

    /// As [`insert`], adding `shared` to the group's rows.
    fn insert_sharing(
        value: &'static str,
        fail: bool,
        runs: &Arc<AtomicUsize>,
        shared: Option<GroupRows>,
    ) -> Queued {
        let runs = runs.clone();
        Pending::job(
            move |conn: &Connection| {
                runs.fetch_add(1, Ordering::SeqCst);
                conn.execute("INSERT INTO t (v) VALUES (?1)", [value])?;
                anyhow::ensure!(!fail, "{value} failed");
                Ok(())
            },
            shared,
        )
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .expect("create");
        conn
    }

    fn rows(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").expect("select");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    /// Runs one group as the writer thread does and returns each job's answer.
    fn commit_group(conn: &Connection, jobs: Vec<Queued>) -> Vec<Result<(), String>> {
        let (jobs, mut answers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        commit(conn, jobs);
        answers
            .iter_mut()
            .map(|a| match a.try_recv() {
                Ok((answer, _job)) => answer.map_err(|e| e.to_string()),
                Err(e) => Err(format!("no answer: {e}")),
            })
            .collect()
    }

    #[test]
    fn a_group_whose_jobs_all_succeed_runs_each_once_and_commits_them_together() {
        let conn = table();
        let runs = Arc::new(AtomicUsize::new(0));
        let answers = commit_group(
            &conn,
            vec![insert("a", false, &runs), insert("b", false, &runs)],
        );
        assert_eq!(answers, vec![Ok(()), Ok(())]);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(rows(&conn), ["a", "b"]);
        assert!(conn.is_autocommit(), "the transaction is closed");
    }

    #[test]
    fn a_failed_job_is_rolled_back_alone_and_the_others_commit() {
        let conn = table();
        let runs = Arc::new(AtomicUsize::new(0));
        let answers = commit_group(
            &conn,
            vec![
                insert("a", false, &runs),
                insert("b", true, &runs),
                insert("c", false, &runs),
            ],
        );
        assert_eq!(answers, vec![Ok(()), Err("b failed".into()), Ok(())]);
        // The first pass stops at the failure (a, b); the second runs all three again.
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        // b's row, written before it failed, is gone; a's and c's are there once each.
        assert_eq!(rows(&conn), ["a", "c"]);
        assert!(conn.is_autocommit(), "the transaction is closed");
    }

    #[test]
    fn the_shared_rows_of_the_jobs_that_succeeded_are_written_once_for_the_group() {
        let conn = table();
        schema::migrate(&conn).expect("schema");
        let runs = Arc::new(AtomicUsize::new(0));
        let share = |n: i64, seq: i64| {
            let key = (
                "j".to_string(),
                1,
                "send".to_string(),
                "action".to_string(),
                0,
                "ok",
                String::new(),
                String::new(),
            );
            Some(GroupRows::new(
                [(key, n)].into_iter().collect(),
                super::super::marks::Mark::of([seq]),
            ))
        };
        let answers = commit_group(
            &conn,
            vec![
                insert_sharing("a", false, &runs, share(1, 1)),
                insert_sharing("b", true, &runs, share(5, 2)),
                insert_sharing("c", false, &runs, share(2, 3)),
            ],
        );
        assert_eq!(answers, vec![Ok(()), Err("b failed".into()), Ok(())]);
        let counters: Vec<i64> = conn
            .prepare("SELECT n FROM node_counts")
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .expect("counters");
        assert_eq!(counters, [3], "one counter, a's and c's steps, not b's");
        let marks: Vec<String> = conn
            .prepare("SELECT seqs FROM event_marks")
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .expect("marks");
        assert_eq!(marks, ["[1,3]"], "one mark row, a's and c's events");
    }
}
