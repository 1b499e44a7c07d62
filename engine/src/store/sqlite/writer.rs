//! The single writer thread: group commit.
//!
//! Every write is a job sent to one thread that owns the write connection. The thread
//! takes all jobs waiting (up to a limit), runs each inside its own savepoint, commits
//! them in one transaction (one fsync for all), and only then answers each job. A job that
//! fails is rolled back alone; the others commit.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

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
    /// Starts the thread on `conn`; it stops when every handle is dropped.
    pub fn start(conn: Connection, max_batch: usize) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("parcours-store-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1)))?;
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

fn run(conn: Connection, rx: mpsc::Receiver<Job>, max_batch: usize) {
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
    }
}
