//! Backup and restore of the SQLite file.
//!
//! A backup is one consistent snapshot taken while an engine writes (`VACUUM INTO` reads
//! in one transaction; in WAL mode it blocks no writer, and unlike the page-by-page backup
//! API it never starts over when the source changes): every event committed before the
//! backup began is in it. A restore checks the copy (integrity, schema) and replaces a
//! database no engine is using, atomically. Owns the copies; must never run while it
//! could leave a half-written file under the database's name.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::lock::DbLock;
use super::schema::SCHEMA_VERSION;

/// What a backup or a restore holds.
#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    pub path: PathBuf,
    pub bytes: u64,
    pub events: u64,
    pub instances: u64,
    pub profiles: u64,
    pub journeys: u64,
    #[serde(serialize_with = "millis")]
    pub took: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `path` with `suffix` appended to its name.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Makes a rename durable: syncs the folder that holds `path`.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", parent.display()))
}

/// Counts what a Parcours database holds, after checking that it is one this engine can
/// open and that SQLite finds it intact.
fn inspect(path: &Path, started: Instant) -> anyhow::Result<Copied> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if check != "ok" {
        bail!("{} is damaged: {check}", path.display());
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let has_events: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
        [],
        |r| r.get(0),
    )?;
    if !has_events || version == 0 {
        bail!("{} is not a Parcours database", path.display());
    }
    if version > SCHEMA_VERSION {
        bail!(
            "{} has schema version {version}, newer than this engine's {SCHEMA_VERSION}",
            path.display()
        );
    }
    let count = |table: &str| -> anyhow::Result<u64> {
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    Ok(Copied {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path)?.len(),
        events: count("events")?,
        instances: count("instances")?,
        profiles: count("profiles")?,
        journeys: count("journeys")?,
        took: started.elapsed(),
    })
}

/// Writes a consistent snapshot of the database `db` to `dest` (which must not exist),
/// while an engine may be writing to `db`.
pub fn backup(db: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let started = Instant::now();
    if !db.exists() {
        bail!("{} does not exist", db.display());
    }
    if dest.exists() {
        bail!(
            "{} exists: a backup never overwrites a file",
            dest.display()
        );
    }
    // Written beside its final name, synced, then renamed: a crash leaves no file that
    // looks like a finished backup.
    let partial = beside(dest, ".partial");
    let _ = std::fs::remove_file(&partial);
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let target = partial
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", partial.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("copying {} to {}", db.display(), partial.display()))?;
    drop(conn);
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    std::fs::rename(&partial, dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    sync_parent(dest)?;
    inspect(dest, started)
}

/// Replaces the database `db` by the backup `from`, after checking it; refuses while an
/// engine runs on `db`, and, unless `replace`, when `db` exists.
pub fn restore(from: &Path, db: &Path, replace: bool) -> anyhow::Result<Copied> {
    let started = Instant::now();
    inspect(from, started)?;
    let _lock = DbLock::acquire(db)?;
    if db.exists() && !replace {
        bail!(
            "{} exists: pass --force to replace it with {}",
            db.display(),
            from.display()
        );
    }
    let incoming = beside(db, ".restoring");
    std::fs::copy(from, &incoming)
        .with_context(|| format!("copying {} to {}", from.display(), incoming.display()))?;
    std::fs::File::open(&incoming)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", incoming.display()))?;
    // The old file's write-ahead log belongs to the old file: it must not be replayed
    // into the restored one.
    for suffix in ["-wal", "-shm"] {
        let stale = beside(db, suffix);
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", stale.display())),
        }
    }
    std::fs::rename(&incoming, db)
        .with_context(|| format!("renaming {} to {}", incoming.display(), db.display()))?;
    sync_parent(db)?;
    inspect(db, started)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use crate::store::sqlite::{SqliteStore, StoreOptions};

    #[test]
    fn a_backup_restores_and_refuses_what_is_not_a_parcours_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("engine.db");
        let store = SqliteStore::open(&db, StoreOptions::from(&Settings::default())).unwrap();
        let copy = dir.path().join("copy.db");
        let made = backup(&db, &copy).unwrap();
        assert_eq!(made.events, 0);
        assert!(!beside(&copy, ".partial").exists());
        let err = backup(&db, &copy).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        drop(store);

        let other = dir.path().join("restored.db");
        restore(&copy, &other, false).unwrap();
        let err = restore(&copy, &other, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        restore(&copy, &other, true).unwrap();

        let junk = dir.path().join("junk.db");
        std::fs::write(
            &junk,
            b"not a database at all, but long enough to look like one",
        )
        .unwrap();
        let err = restore(&junk, &other, true).unwrap_err().to_string();
        assert!(err.contains("junk.db"), "{err}");

        let _engine = DbLock::acquire(&other).unwrap();
        let err = restore(&copy, &other, true).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
    }
}
