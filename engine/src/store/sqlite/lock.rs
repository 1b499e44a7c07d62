//! One engine per database file: an exclusive lock on `<db>.lock`, held while an engine
//! runs on the file and while a restore replaces it.
//!
//! Owns the lock file. Must never lock the database file itself: SQLite keeps POSIX locks
//! on it, and closing any other descriptor of that file would drop them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The lock of one database file, released when dropped (or when the process ends, even
/// by SIGKILL).
#[derive(Debug)]
pub struct DbLock {
    _file: File,
    path: PathBuf,
}

impl DbLock {
    /// The lock file of `db`: `<db>.lock`.
    pub fn path_for(db: &Path) -> PathBuf {
        super::backup::beside(db, ".lock")
    }

    /// Takes the lock of `db`, or says that another process holds it.
    pub fn acquire(db: &Path) -> anyhow::Result<DbLock> {
        let path = Self::path_for(db);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DbLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is in use by another engine or restore (it holds {}); stop it first",
                db.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                anyhow::bail!("cannot lock {}: {e}", path.display())
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("engine.db");
        let first = DbLock::acquire(&db).unwrap();
        let err = DbLock::acquire(&db).unwrap_err().to_string();
        assert!(err.contains("is in use by another engine"), "{err}");
        assert!(err.contains("engine.db.lock"), "{err}");
        drop(first);
        DbLock::acquire(&db).unwrap();
    }
}
