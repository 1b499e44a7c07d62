//! The embedded store: one SQLite file in WAL mode, one writer thread with group commit,
//! a checkpointer thread, a few reader connections.

mod audiences;
mod checkpoint;
mod counts;
mod rows;
mod schema;
mod states;
mod steps;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::Semaphore;

use self::rows::{from_ts, ts};
use self::writer::Writer;
use super::{
    AudienceRecord, DueTimer, EventRecord, HeldEntry, JourneyRecord, JourneyStatus, NodeCount,
    Pause, ProfileState, Publication, Result, RunRecord, RunStatus, Store, Transition, VersionInfo,
    VersionRecord, WriteBatch,
};
use crate::model::{Event, Profile};
use crate::runtime::instance::{Instance, Step};

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

fn upsert_instance(conn: &Connection, i: &Instance, data: &str) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO instances (id, journey_id, version, profile_id, status, node, entered_at, \
         updated_at, ended_at, wake_at, deadline, end_reason, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT(id) DO UPDATE SET status = excluded.status, node = excluded.node, \
         updated_at = excluded.updated_at, ended_at = excluded.ended_at, \
         wake_at = excluded.wake_at, end_reason = excluded.end_reason, data = excluded.data",
    )?;
    stmt.execute(params![
        i.id,
        i.journey_id,
        i.version,
        i.profile_id,
        i.status.as_str(),
        i.node,
        ts(i.entered_at),
        ts(i.updated_at),
        i.ended_at.map(ts),
        i.wake_at.map(ts),
        ts(i.deadline),
        i.end_reason,
        data,
    ])?;
    Ok(())
}

fn load_profile(conn: &Connection, id: &str) -> rusqlite::Result<Option<Profile>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM profiles WHERE id = ?1",
        rows::PROFILE_COLUMNS
    ))?
    .query_row([id], rows::profile)
    .optional()?
    .map(|mut p| {
        p.aliases = audiences::aliases(conn, id)?;
        Ok(p)
    })
    .transpose()
}

fn run_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "running",
        RunStatus::Finished => "finished",
    }
}

fn run_json(run: &RunRecord) -> String {
    serde_json::to_string(run).unwrap_or_else(|_| "{}".into())
}

fn run_row(r: &rusqlite::Row) -> rusqlite::Result<RunRecord> {
    let text: String = r.get(0)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn insert_run(conn: &Connection, run: &RunRecord) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT INTO runs (id, journey_id, kind, status, scheduled_at, record) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
        )?
        .execute(params![
            run.id,
            run.journey_id,
            run.kind,
            run_status(run.status),
            ts(run.scheduled_at),
            run_json(run)
        ])?;
    Ok(n == 1)
}

fn journey_record(conn: &Connection, id: &str) -> rusqlite::Result<Option<JourneyRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT id, draft, status, created_at, updated_at, pause, test FROM journeys WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    let Some((id, draft, status, created, updated, pause, test)) = row else {
        return Ok(None);
    };
    let versions = conn
        .prepare_cached(
            "SELECT version, published_at, published_by, note FROM journey_versions \
             WHERE journey_id = ?1 ORDER BY version",
        )?
        .query_map([&id], |r| {
            Ok(VersionInfo {
                version: r.get(0)?,
                published_at: from_ts(r.get(1)?)?,
                published_by: r.get(2)?,
                note: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(JourneyRecord {
        pause: pause.and_then(|p| serde_json::from_str::<Pause>(&p).ok()),
        test: test.and_then(|t| serde_json::from_str(&t).ok()),
        status: JourneyStatus::parse(&status).unwrap_or(JourneyStatus::Draft),
        draft: draft.and_then(|d| serde_json::from_str(&d).ok()),
        created_at: from_ts(created)?,
        updated_at: from_ts(updated)?,
        versions,
        id,
    }))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ingest(&self, events: &[Event]) -> Result<Vec<bool>> {
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
                    fresh.push(n == 1);
                }
                Ok(fresh)
            })
            .await
    }

    async fn commit(&self, batch: Arc<WriteBatch>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        Faults::take(&self.faults.commits, "commit")?;
        // Serialize here, on the caller's thread: the one writer thread only runs SQL.
        let instance_data: Vec<String> = batch
            .instances
            .iter()
            .map(|i| serde_json::to_string(&i.data).unwrap_or_else(|_| "{}".into()))
            .collect();
        let attributes: Vec<String> = batch
            .profiles
            .iter()
            .map(|p| p.profile.attributes.to_string())
            .collect();
        let groups = steps::group(&batch.steps);
        let counts = counts::aggregate(&batch.steps);
        let assignments = counts::assignments(&batch.steps);
        let held: Vec<String> = batch
            .held
            .iter()
            .map(|h| serde_json::to_string(h).unwrap_or_else(|_| "{}".into()))
            .collect();
        let merges = batch
            .merges
            .iter()
            .map(serde_json::to_string)
            .collect::<serde_json::Result<Vec<String>>>()?;
        self.writer
            .write(move |conn| {
                for id in &batch.profile_deletes {
                    audiences::delete_profile(conn, id)?;
                }
                for (p, attributes) in batch.profiles.iter().zip(&attributes) {
                    audiences::upsert_profile(conn, p, attributes)?;
                }
                for m in &batch.memberships {
                    audiences::write_membership(conn, m)?;
                }
                for t in &batch.transitions {
                    audiences::insert_transition(conn, t)?;
                }
                for (profile, rule, at) in &batch.capping {
                    audiences::insert_capping(conn, profile, rule, *at)?;
                }
                for (i, data) in batch.instances.iter().zip(&instance_data) {
                    upsert_instance(conn, i, data)?;
                }
                for g in &groups {
                    steps::insert(conn, g)?;
                }
                counts::add(conn, &counts)?;
                counts::assign(conn, &assignments)?;
                for (h, text) in batch.held.iter().zip(&held) {
                    conn.prepare_cached(
                        "INSERT INTO held_entries (journey_id, profile_id, entry) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![h.journey_id, h.profile_id, text])?;
                }
                for seq in &batch.released {
                    conn.prepare_cached("DELETE FROM held_entries WHERE seq = ?1")?
                        .execute([seq])?;
                }
                for (m, text) in batch.merges.iter().zip(&merges) {
                    conn.prepare_cached("INSERT INTO profile_merges (id, merge) VALUES (?1, ?2)")?
                        .execute(params![m.id, text])?;
                }
                for id in &batch.merges_done {
                    conn.prepare_cached("DELETE FROM profile_merges WHERE id = ?1")?
                        .execute([id])?;
                }
                let mut done =
                    conn.prepare_cached("UPDATE events SET processed = 1 WHERE id = ?1")?;
                for id in &batch.processed_events {
                    done.execute([id])?;
                }
                Ok(())
            })
            .await
    }

    async fn unprocessed_events(&self, after: i64, limit: usize) -> Result<Vec<(i64, Event)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM events WHERE processed = 0 AND seq > ?1 ORDER BY seq LIMIT ?2",
                rows::EVENT_COLUMNS
            ))?;
            stmt.query_map(params![after, limit as i64], rows::event)?
                .map(|r| r.map(|(seq, e, _)| (seq, e)))
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
            .optional()
            .map(|o| o.map(|(_, event, processed)| EventRecord { event, processed }))
        })
        .await
    }

    async fn profile_states(
        &self,
        profile_ids: Vec<String>,
    ) -> Result<HashMap<String, ProfileState>> {
        Faults::take(&self.faults.reads, "read")?;
        self.read(move |conn| states::load(conn, &profile_ids))
            .await
    }

    async fn due_timers(
        &self,
        now: Timestamp,
        after: Option<DueTimer>,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let (after_at, after_id) = after.map_or((i64::MIN, String::new()), |t| {
            (ts(t.wake_at), t.instance_id)
        });
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, profile_id, wake_at FROM instances \
                 WHERE wake_at IS NOT NULL AND wake_at <= ?1 \
                 AND (wake_at > ?2 OR (wake_at = ?2 AND id > ?3)) \
                 ORDER BY wake_at, id LIMIT ?4",
            )?
            .query_map(params![ts(now), after_at, after_id, limit as i64], |r| {
                Ok(DueTimer {
                    instance_id: r.get(0)?,
                    profile_id: r.get(1)?,
                    wake_at: from_ts(r.get(2)?)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn next_wake(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            let v: Option<i64> = conn
                .prepare_cached("SELECT MIN(wake_at) FROM instances WHERE wake_at IS NOT NULL")?
                .query_row([], |r| r.get(0))?;
            v.map(from_ts).transpose()
        })
        .await
    }

    async fn instance_gauges(&self) -> Result<(u64, u64)> {
        self.read(|conn| {
            let pending: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM instances WHERE wake_at IS NOT NULL")?
                .query_row([], |r| r.get(0))?;
            let live: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM instances WHERE status IN ('active', 'waiting')",
                )?
                .query_row([], |r| r.get(0))?;
            Ok((pending as u64, live as u64))
        })
        .await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM instances WHERE id = ?1",
                rows::INSTANCE_COLUMNS
            ))?
            .query_row([id], rows::instance)
            .optional()
        })
        .await
    }

    async fn count_instances(&self, journey_id: &str) -> Result<BTreeMap<String, u64>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT status, COUNT(*) FROM instances WHERE journey_id = ?1 GROUP BY status",
            )?
            .query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect()
        })
        .await
    }

    async fn instances_of_profile(&self, profile_id: &str) -> Result<Vec<Instance>> {
        let id = profile_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM instances WHERE profile_id = ?1 ORDER BY entered_at, id",
                rows::INSTANCE_COLUMNS
            ))?
            .query_map([id], rows::instance)?
            .collect()
        })
        .await
    }

    async fn steps_of_instance(&self, instance_id: &str) -> Result<Vec<Step>> {
        let id = instance_id.to_string();
        self.read(move |conn| steps::select(conn, "instance_id", &id))
            .await
    }

    async fn steps_of_event(&self, event_id: &str) -> Result<Vec<Step>> {
        let id = event_id.to_string();
        self.read(move |conn| steps::select(conn, "event_id", &id))
            .await
    }

    async fn profiles_in_journey(
        &self,
        journey_id: &str,
        version: Option<u32>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (journey_id, after) = (journey_id.to_string(), after.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT DISTINCT profile_id FROM instances \
                 WHERE journey_id = ?1 AND status IN ('active', 'waiting') \
                 AND (?2 IS NULL OR version = ?2) AND profile_id > ?3 \
                 ORDER BY profile_id LIMIT ?4",
            )?
            .query_map(params![journey_id, version, after, limit as i64], |r| {
                r.get(0)
            })?
            .collect()
        })
        .await
    }

    async fn get_profile(&self, id: &str) -> Result<Option<Profile>> {
        let id = id.to_string();
        self.read(move |conn| load_profile(conn, &id)).await
    }

    async fn resolve_identity(&self, namespace: &str, value: &str) -> Result<Option<String>> {
        let (ns, value) = (namespace.to_string(), value.to_string());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT profile_id FROM identities WHERE namespace = ?1 AND value = ?2",
            )?
            .query_row(params![ns, value], |r| r.get(0))
            .optional()
        })
        .await
    }

    async fn profile_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT id FROM profiles WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![after.unwrap_or_default(), limit as i64], |r| {
                    r.get(0)
                })?
                .collect()
        })
        .await
    }

    async fn put_audience(&self, name: &str, definition: Value, now: Timestamp) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |conn| Ok(audiences::put_audience(conn, &name, &definition, now)?))
            .await
    }

    async fn list_audiences(&self) -> Result<Vec<AudienceRecord>> {
        self.read(audiences::list_audiences).await
    }

    async fn get_audience(&self, name: &str) -> Result<Option<AudienceRecord>> {
        let name = name.to_string();
        self.read(move |conn| audiences::get_audience(conn, &name))
            .await
    }

    async fn audience_members(
        &self,
        name: &str,
        after: Option<String>,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>> {
        let name = name.to_string();
        self.read(move |conn| audiences::members(conn, &name, after.as_deref(), since, limit))
            .await
    }

    async fn profile_audiences(&self, profile_id: &str) -> Result<Vec<(String, Timestamp)>> {
        let id = profile_id.to_string();
        self.read(move |conn| Ok(audiences::memberships_of(conn, &id)?.into_iter().collect()))
            .await
    }

    async fn profile_transitions(&self, profile_id: &str) -> Result<Vec<Transition>> {
        let id = profile_id.to_string();
        self.read(move |conn| audiences::transitions_of(conn, &id))
            .await
    }

    async fn put_capping_rule(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO capping_rules (id, definition, updated_at) VALUES (?1, ?2, ?3)                      ON CONFLICT(id) DO UPDATE SET definition = excluded.definition,                      updated_at = excluded.updated_at",
                )?
                .execute(params![id, definition.to_string(), ts(now)])?;
                Ok(())
            })
            .await
    }

    async fn capping_rules(&self) -> Result<Vec<(String, Value)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, definition FROM capping_rules ORDER BY id")?
                .query_map([], |r| {
                    let text: String = r.get(1)?;
                    Ok((
                        r.get(0)?,
                        serde_json::from_str(&text).unwrap_or(Value::Null),
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn ingest_business_event(&self, event: Event, runs: Vec<RunRecord>) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(
                        "INSERT INTO business_events (id, type, ts, received_at, data)                          VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
                    )?
                    .execute(params![
                        event.id,
                        event.event_type,
                        ts(event.timestamp),
                        ts(event.received_at),
                        event.data.to_string()
                    ])?;
                if n == 0 {
                    return Ok(false);
                }
                for run in &runs {
                    insert_run(conn, run)?;
                }
                Ok(true)
            })
            .await
    }

    async fn create_run(&self, run: RunRecord) -> Result<bool> {
        self.writer
            .write(move |conn| Ok(insert_run(conn, &run)?))
            .await
    }

    async fn update_run(&self, run: RunRecord) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE runs SET status = ?2, record = ?3 WHERE id = ?1")?
                    .execute(params![run.id, run_status(run.status), run_json(&run)])?;
                Ok(())
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT record FROM runs WHERE id = ?1")?
                .query_row([id], run_row)
                .optional()
        })
        .await
    }

    async fn runs_of_journey(&self, journey_id: &str) -> Result<Vec<RunRecord>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE journey_id = ?1 ORDER BY scheduled_at DESC, rowid DESC",
            )?
            .query_map([id], run_row)?
            .collect()
        })
        .await
    }

    async fn open_runs(&self) -> Result<Vec<RunRecord>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE status = 'running' ORDER BY scheduled_at, id",
            )?
            .query_map([], run_row)?
            .collect()
        })
        .await
    }

    async fn last_scheduled_run(&self, journey_id: &str) -> Result<Option<RunRecord>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT record FROM runs WHERE journey_id = ?1 AND kind = 'schedule'                  ORDER BY scheduled_at DESC LIMIT 1",
            )?
            .query_row([id], run_row)
            .optional()
        })
        .await
    }

    async fn put_draft(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
                     VALUES (?1, ?2, 'draft', ?3, ?3) ON CONFLICT(id) DO UPDATE SET \
                     draft = excluded.draft, updated_at = excluded.updated_at",
                )?
                .execute(params![id, definition.to_string(), ts(now)])?;
                Ok(())
            })
            .await
    }

    async fn get_journey(&self, id: &str) -> Result<Option<JourneyRecord>> {
        let id = id.to_string();
        self.read(move |conn| journey_record(conn, &id)).await
    }

    async fn list_journeys(&self) -> Result<Vec<JourneyRecord>> {
        self.read(|conn| {
            let ids = conn
                .prepare_cached("SELECT id FROM journeys ORDER BY id")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(j) = journey_record(conn, &id)? {
                    out.push(j);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn publish(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
        publication: Publication,
    ) -> Result<u32> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                let text = definition.to_string();
                conn.prepare_cached(
                    "INSERT INTO journeys (id, draft, status, created_at, updated_at) \
                     VALUES (?1, ?2, 'live', ?3, ?3) ON CONFLICT(id) DO UPDATE SET \
                     draft = excluded.draft, status = 'live', pause = NULL, \
                     updated_at = excluded.updated_at",
                )?
                .execute(params![id, text, ts(now)])?;
                let version: u32 = conn
                    .prepare_cached(
                        "SELECT COALESCE(MAX(version), 0) + 1 FROM journey_versions WHERE journey_id = ?1",
                    )?
                    .query_row([&id], |r| r.get(0))?;
                conn.prepare_cached(
                    "INSERT INTO journey_versions \
                     (journey_id, version, definition, published_at, published_by, note, split_hash) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    id,
                    version,
                    text,
                    ts(now),
                    publication.by,
                    publication.note,
                    crate::ids::SplitHash::CURRENT.as_str()
                ])?;
                Ok(version)
            })
            .await
    }

    async fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        pause: Option<Pause>,
        now: Timestamp,
    ) -> Result<()> {
        let pause = pause.map(|p| serde_json::to_string(&p)).transpose()?;
        self.execute(
            "UPDATE journeys SET status = ?2, pause = ?3, updated_at = ?4 WHERE id = ?1",
            vec![
                id.to_string().into(),
                status.as_str().to_string().into(),
                pause.into(),
                ts(now).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn versions(&self) -> Result<Vec<VersionRecord>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT journey_id, version, definition, published_at, split_hash \
                 FROM journey_versions ORDER BY journey_id, version",
            )?
            .query_map([], rows::version_record)?
            .collect()
        })
        .await
    }

    async fn put_alert(&self, id: &str, definition: Value, now: Timestamp) -> Result<()> {
        self.execute(
            "INSERT INTO alerts (id, definition, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(id) DO UPDATE SET definition = excluded.definition, \
             updated_at = excluded.updated_at",
            vec![
                id.to_string().into(),
                definition.to_string().into(),
                ts(now).into(),
            ],
        )
        .await?;
        Ok(())
    }

    async fn delete_alert(&self, id: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM alerts WHERE id = ?1",
                vec![id.to_string().into()],
            )
            .await?;
        Ok(n > 0)
    }

    async fn alerts(&self) -> Result<Vec<(String, Value, Option<Value>)>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT id, definition, state FROM alerts ORDER BY id")?
                .query_map([], |r| {
                    let def: String = r.get(1)?;
                    let state: Option<String> = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        serde_json::from_str(&def).unwrap_or(Value::Null),
                        state.and_then(|s| serde_json::from_str(&s).ok()),
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn set_alert_state(&self, id: &str, state: Value) -> Result<()> {
        self.execute(
            "UPDATE alerts SET state = ?2 WHERE id = ?1",
            vec![id.to_string().into(), state.to_string().into()],
        )
        .await?;
        Ok(())
    }

    async fn set_test_mode(&self, id: &str, test: Option<super::TestMode>) -> Result<()> {
        let test = test.map(|t| serde_json::to_string(&t)).transpose()?;
        self.execute(
            "UPDATE journeys SET test = ?2 WHERE id = ?1",
            vec![id.to_string().into(), test.into()],
        )
        .await?;
        Ok(())
    }

    async fn version(&self, id: &str, version: u32) -> Result<Option<VersionRecord>> {
        let id = id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT journey_id, version, definition, published_at, split_hash \
                 FROM journey_versions WHERE journey_id = ?1 AND version = ?2",
            )?
            .query_row(params![id, version], rows::version_record)
            .optional()
        })
        .await
    }

    async fn pending_merges(&self) -> Result<Vec<super::ProfileMerge>> {
        let texts: Vec<String> = self
            .read(|conn| {
                conn.prepare_cached("SELECT merge FROM profile_merges ORDER BY seq")?
                    .query_map([], |r| r.get(0))?
                    .collect()
            })
            .await?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(anyhow::Error::from))
            .collect()
    }

    async fn held_entries(
        &self,
        journey_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<HeldEntry>> {
        let id = journey_id.to_string();
        let rows: Vec<(i64, String)> = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT seq, entry FROM held_entries WHERE journey_id = ?1 AND seq > ?2 \
                     ORDER BY seq LIMIT ?3",
                )?
                .query_map(params![id, after, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect()
            })
            .await?;
        rows.into_iter()
            .map(|(seq, text)| {
                let mut entry: HeldEntry = serde_json::from_str(&text)?;
                entry.seq = seq;
                Ok(entry)
            })
            .collect()
    }

    async fn journeys_with_held_entries(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT DISTINCT journey_id FROM held_entries ORDER BY journey_id")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .await
    }

    async fn drop_held_entries(&self, journey_id: &str) -> Result<u64> {
        let n = self
            .execute(
                "DELETE FROM held_entries WHERE journey_id = ?1",
                vec![journey_id.to_string().into()],
            )
            .await?;
        Ok(n as u64)
    }

    async fn held_instances(&self, journey_id: &str) -> Result<Vec<DueTimer>> {
        let id = journey_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, profile_id, wake_at FROM instances WHERE journey_id = ?1 \
                 AND status = 'waiting' AND json_extract(data, '$.held') = 1 ORDER BY wake_at, id",
            )?
            .query_map([id], |r| {
                Ok(DueTimer {
                    instance_id: r.get(0)?,
                    profile_id: r.get(1)?,
                    wake_at: from_ts(r.get(2)?)?,
                })
            })?
            .collect()
        })
        .await
    }

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

    async fn conversions(&self, journey_id: &str, success: &str) -> Result<Vec<super::Conversion>> {
        let (id, success) = (journey_id.to_string(), success.to_string());
        self.read(move |conn| counts::conversions(conn, &id, &success))
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
                let (_, event, _) = row?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
