//! Which events are processed, without a write per event.
//!
//! A group commit that processes events adds one row to `event_marks` listing their
//! `seq`s (a JSON array; every partition commit of the group contributes its seqs, see
//! [`super::group_rows`]). The row's key grows by one, plus one for every
//! [`SEQS_PER_KEY`] seqs it lists; when a key crosses a multiple of [`FOLD_EVERY`], the
//! commit that adds it also folds the marks: it walks the events from the scan position
//! (`event_scan.upto`) to the largest seq marked, files each event no mark lists as a
//! hole (`event_holes`: accepted, not yet processed, behind the scan), removes from the
//! holes the events the marks list, moves the scan position and deletes the marks. So an
//! event is processed when it is at or before the scan position and not a hole, or
//! listed by a mark not yet folded; what the folds cost is one walk over each event's
//! seq, a fold walks at most about `FOLD_EVERY × SEQS_PER_KEY` marked events, and the
//! holes are only the events still in flight (or set aside) behind later ones.
//!
//! Until schema 10 each event carried a `processed` column, set by the commit that
//! processed it: one row rewritten and two index entries changed per event.
//!
//! This file must never decide what is processed: the commits say so; it only records
//! and answers.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, params};

/// Keys between two folds: a fold happens at least every this many mark rows, so a read
/// of the backlog or of one event's mark reads at most this many rows.
pub const FOLD_EVERY: i64 = 64;

/// A mark row listing this many seqs takes one more key: a fold walks at most about
/// `FOLD_EVERY × SEQS_PER_KEY` (32,768) marked events, however large the group commits
/// (a few milliseconds of the writer). Folding sooner costs rows: an event still in
/// flight when a fold walks past it becomes a hole, written and later deleted; with
/// 64 here, the throughput benchmark's folds came every 4,000 events and left 0.4
/// holes per event, with 512 every 20,000 events and 0.05.
pub const SEQS_PER_KEY: usize = 512;

/// Processed seqs as a JSON array, built on the caller's thread (the writer thread only
/// runs SQL), and how many.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mark {
    json: String,
    count: usize,
}

impl Mark {
    /// The mark of `seqs` (empty when there are none).
    pub fn of(seqs: impl IntoIterator<Item = i64>) -> Mark {
        use std::fmt::Write;
        let mut mark = Mark::default();
        for seq in seqs {
            mark.json.push(if mark.count == 0 { '[' } else { ',' });
            // Writing to a String cannot fail.
            let _ = write!(mark.json, "{seq}");
            mark.count += 1;
        }
        if mark.count > 0 {
            mark.json.push(']');
        }
        mark
    }

    /// Adds `other`'s seqs to this list (two JSON arrays joined, no parsing).
    pub fn extend(&mut self, other: &Mark) {
        if self.count == 0 {
            self.json.clone_from(&other.json);
        } else if other.count > 0 {
            self.json.pop();
            self.json.push(',');
            self.json.push_str(&other.json[1..]);
        }
        self.count += other.count;
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Records, in the open transaction, the mark `m`, and folds the marks when its key
/// crosses a multiple of [`FOLD_EVERY`].
pub fn mark(conn: &Connection, m: &Mark) -> rusqlite::Result<()> {
    if m.is_empty() {
        return Ok(());
    }
    // The last key ever committed (AUTOINCREMENT keeps it after the marks are folded
    // away); a rolled-back group reads the same one again when it reruns.
    let last: i64 = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'event_marks'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let key = last + 1 + (m.count / SEQS_PER_KEY) as i64;
    conn.prepare_cached("INSERT INTO event_marks (seq, seqs) VALUES (?1, ?2)")?
        .execute(params![key, m.json])?;
    if key / FOLD_EVERY != last / FOLD_EVERY {
        fold(conn)?;
    }
    Ok(())
}

/// The seqs every unfolded mark lists.
fn marked(conn: &Connection) -> rusqlite::Result<BTreeSet<i64>> {
    let mut out = BTreeSet::new();
    let mut stmt =
        conn.prepare_cached("SELECT value FROM event_marks, json_each(event_marks.seqs)")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out.insert(r.get::<_, i64>(0)?);
    }
    Ok(out)
}

/// The scan position: every event at or before it is processed unless it is a hole.
pub fn scan_position(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached("SELECT upto FROM event_scan WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Folds every mark into the scan position and the holes (inside the open transaction).
pub fn fold(conn: &Connection) -> rusqlite::Result<()> {
    let marked = marked(conn)?;
    let Some(&last) = marked.last() else {
        return Ok(());
    };
    let upto = scan_position(conn)?;
    // Events processed late, behind the scan: no longer holes.
    let mut filled = conn.prepare_cached("DELETE FROM event_holes WHERE seq = ?1")?;
    for &seq in marked.range(..=upto) {
        filled.execute([seq])?;
    }
    if last > upto {
        let mut walk =
            conn.prepare_cached("SELECT seq FROM events WHERE seq > ?1 AND seq <= ?2")?;
        let mut hole =
            conn.prepare_cached("INSERT OR IGNORE INTO event_holes (seq) VALUES (?1)")?;
        let mut rows = walk.query(params![upto, last])?;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            if !marked.contains(&seq) {
                hole.execute([seq])?;
            }
        }
        conn.prepare_cached("INSERT OR REPLACE INTO event_scan (id, upto) VALUES (1, ?1)")?
            .execute([last])?;
    }
    conn.prepare_cached("DELETE FROM event_marks")?
        .execute([])?;
    Ok(())
}

/// Whether the event `seq` is processed (inside a read's snapshot).
pub fn is_processed(conn: &Connection, seq: i64) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT (?1 <= COALESCE((SELECT upto FROM event_scan WHERE id = 1), 0) \
                 AND NOT EXISTS (SELECT 1 FROM event_holes WHERE seq = ?1)) \
             OR EXISTS (SELECT 1 FROM event_marks, json_each(event_marks.seqs) WHERE value = ?1)",
    )?
    .query_row([seq], |r| r.get(0))
}

/// The seqs of the events not yet processed after `after`, oldest first, at most
/// `limit` (inside a read's snapshot): the holes, then the events after the scan
/// position that no mark lists.
pub fn unprocessed(conn: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let marked = marked(conn)?;
    let mut out = Vec::new();
    // Unmarked seqs of `sql`'s rows (after `from`, in order) until `limit` are found.
    let mut collect = |sql: &str, from: i64| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([from])?;
        while out.len() < limit {
            let Some(r) = rows.next()? else { break };
            let seq: i64 = r.get(0)?;
            if !marked.contains(&seq) {
                out.push(seq);
            }
        }
        Ok(())
    };
    // The holes are all at or before the scan position, the rest after it.
    collect(
        "SELECT seq FROM event_holes WHERE seq > ?1 ORDER BY seq",
        after,
    )?;
    collect(
        "SELECT seq FROM events WHERE seq > ?1 ORDER BY seq",
        after.max(scan_position(conn)?),
    )?;
    Ok(out)
}

/// Schema 10: the `processed` column of an older database becomes the scan position
/// (its last event) and the holes (its unprocessed events); the column and its index go.
pub fn migrate_column(conn: &Connection) -> rusqlite::Result<()> {
    let has_column: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'processed'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_column {
        return Ok(());
    }
    conn.execute_batch(
        "INSERT OR IGNORE INTO event_holes (seq) SELECT seq FROM events WHERE processed = 0;
         INSERT OR REPLACE INTO event_scan (id, upto)
           VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM events));
         DROP INDEX IF EXISTS events_unprocessed;
         ALTER TABLE events DROP COLUMN processed;",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("db");
        super::super::schema::migrate(&conn).expect("schema");
        conn
    }

    /// Ingests `n` events; their seqs are 1..=n.
    fn ingest(conn: &Connection, n: i64) {
        for i in 1..=n {
            conn.execute(
                "INSERT INTO events (id, type, profile_id, ts, received_at, data)
                 VALUES (?1, 't', 'p', 0, 0, '{}')",
                [format!("e{i}")],
            )
            .expect("insert");
        }
    }

    fn mark(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
        super::mark(conn, &Mark::of(seqs.iter().copied()))
    }

    fn state(conn: &Connection, n: i64) -> Vec<bool> {
        (1..=n)
            .map(|s| is_processed(conn, s).expect("read"))
            .collect()
    }

    #[test]
    fn an_event_is_processed_once_a_mark_lists_it_before_and_after_a_fold() {
        let conn = db();
        ingest(&conn, 6);
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [1, 2, 3, 4, 5, 6]);
        mark(&conn, &[2, 5]).expect("mark");
        mark(&conn, &[1]).expect("mark");
        assert_eq!(state(&conn, 6), [true, true, false, false, true, false]);
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [3, 4, 6]);
        fold(&conn).expect("fold");
        // 3 and 4 are holes behind the scan (5); 6 is after it.
        assert_eq!(scan_position(&conn).expect("read"), 5);
        assert_eq!(state(&conn, 6), [true, true, false, false, true, false]);
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [3, 4, 6]);
        assert_eq!(unprocessed(&conn, 3, 10).expect("read"), [4, 6]);
        assert_eq!(unprocessed(&conn, 0, 2).expect("read"), [3, 4]);
        mark(&conn, &[4, 6]).expect("mark");
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [3]);
        fold(&conn).expect("fold");
        assert_eq!(state(&conn, 6), [true, true, false, true, true, true]);
        let marks: i64 = conn
            .query_row("SELECT COUNT(*) FROM event_marks", [], |r| r.get(0))
            .expect("count");
        assert_eq!(marks, 0);
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [3]);
        mark(&conn, &[3]).expect("mark");
        fold(&conn).expect("fold");
        assert_eq!(state(&conn, 6), [true; 6]);
        assert!(unprocessed(&conn, 0, 10).expect("read").is_empty());
    }

    #[test]
    fn every_fold_every_th_mark_folds_them_all() {
        let conn = db();
        ingest(&conn, FOLD_EVERY + 1);
        for seq in 1..FOLD_EVERY {
            mark(&conn, &[seq]).expect("mark");
        }
        assert_eq!(scan_position(&conn).expect("read"), 0);
        mark(&conn, &[FOLD_EVERY + 1]).expect("mark");
        assert_eq!(scan_position(&conn).expect("read"), FOLD_EVERY + 1);
        let holes: Vec<i64> = conn
            .prepare("SELECT seq FROM event_holes")
            .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
            .expect("holes");
        assert_eq!(holes, [FOLD_EVERY]);
    }

    #[test]
    fn marks_join_without_parsing() {
        let mut m = Mark::default();
        m.extend(&Mark::of([4, 2]));
        m.extend(&Mark::default());
        m.extend(&Mark::of([9]));
        assert_eq!(m, Mark::of([4, 2, 9]));
    }

    #[test]
    fn a_mark_of_many_events_takes_more_keys_and_folds_sooner() {
        let conn = db();
        let n = FOLD_EVERY * SEQS_PER_KEY as i64;
        ingest(&conn, n + 1);
        mark(&conn, &[n + 1]).expect("mark");
        assert_eq!(scan_position(&conn).expect("read"), 0);
        // One mark of `n` events takes FOLD_EVERY more keys: it crosses a multiple.
        mark(&conn, &(1..=n).collect::<Vec<_>>()).expect("mark");
        assert_eq!(scan_position(&conn).expect("read"), n + 1);
        assert!(unprocessed(&conn, 0, 10).expect("read").is_empty());
    }

    #[test]
    fn a_version_9_database_keeps_which_events_were_processed() {
        let conn = db();
        // As schema 9 left it: a processed column and its index.
        conn.execute_batch(
            "ALTER TABLE events ADD COLUMN processed INTEGER NOT NULL DEFAULT 0;
             CREATE INDEX events_unprocessed ON events(seq) WHERE processed = 0;
             DELETE FROM event_scan;",
        )
        .expect("schema 9");
        ingest(&conn, 4);
        conn.execute_batch("UPDATE events SET processed = 1 WHERE seq IN (1, 3)")
            .expect("mark");
        migrate_column(&conn).expect("migrate");
        assert_eq!(state(&conn, 4), [true, false, true, false]);
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [2, 4]);
        assert!(!super::super::schema::has_index(
            &conn,
            "events_unprocessed"
        ));
        // A second start finds nothing left to migrate.
        migrate_column(&conn).expect("migrate again");
        assert_eq!(unprocessed(&conn, 0, 10).expect("read"), [2, 4]);
    }
}
