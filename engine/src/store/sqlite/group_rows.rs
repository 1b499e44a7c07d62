//! Rows every partition commit of a group commit adds to the same place, written once
//! per group: the node counters (added to) and the processed mark (a list of seqs).
//!
//! One group commit of the writer holds the commits of several partitions, and under
//! single-event load many commits of one or two events each. Written per partition
//! commit, these were one counter upsert for each node the commit's steps passed and one
//! mark row, whatever the commit's size; written per group, single-event requests
//! through the 3-node journey write 4.3–4.5 rows per event instead of 6.0
//! (docs/performance.md). Each job hands its share over with its write
//! ([`super::writer::Writer::write_with`]); the writer adds up the shares of the jobs
//! that succeeded and writes them last, in the same transaction, so reports and the
//! processed flag are as exact and as durable as before.
//!
//! Must never keep anything past its group: a share is written in the transaction of
//! the job it belongs to, or not at all.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::counts::{self, Key};
use super::marks::{self, Mark};

/// A job's share, or a whole group's.
#[derive(Debug, Default)]
pub struct GroupRows {
    counts: BTreeMap<Key, i64>,
    mark: Mark,
}

impl GroupRows {
    /// A commit's counters and the mark of the events it processed.
    pub fn new(counts: BTreeMap<Key, i64>, mark: Mark) -> GroupRows {
        GroupRows { counts, mark }
    }

    /// Adds `other`'s share. Read by reference: a job's own rows go back to its caller's
    /// thread with it, to be freed there.
    pub fn add(&mut self, other: &GroupRows) {
        for (key, n) in &other.counts {
            match self.counts.get_mut(key) {
                Some(total) => *total += n,
                None => {
                    self.counts.insert(key.clone(), *n);
                }
            }
        }
        self.mark.extend(&other.mark);
    }

    /// Writes the counters and the mark (inside the open transaction).
    pub fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        counts::add(conn, &self.counts)?;
        marks::mark(conn, &self.mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(node: &str) -> Key {
        (
            "j".into(),
            1,
            node.into(),
            "action".into(),
            0,
            "ok",
            String::new(),
            String::new(),
        )
    }

    fn share(nodes: &[(&str, i64)], seqs: &[i64]) -> GroupRows {
        GroupRows::new(
            nodes.iter().map(|(n, c)| (key(n), *c)).collect(),
            Mark::of(seqs.iter().copied()),
        )
    }

    #[test]
    fn shares_add_up_to_one_counter_per_key_and_one_mark() {
        let mut group = GroupRows::default();
        group.add(&share(&[("a", 1), ("b", 2)], &[3, 1]));
        group.add(&share(&[("b", 5)], &[]));
        group.add(&share(&[("c", 1), ("a", 4)], &[2]));
        let totals: Vec<(String, i64)> = group
            .counts
            .iter()
            .map(|(k, n)| (k.2.clone(), *n))
            .collect();
        assert_eq!(totals, [("a".into(), 5), ("b".into(), 7), ("c".into(), 1)]);
        assert_eq!(group.mark, Mark::of([3, 1, 2]));
    }

    #[test]
    fn an_empty_group_writes_nothing() {
        let conn = Connection::open_in_memory().expect("db");
        super::super::schema::migrate(&conn).expect("schema");
        GroupRows::default().write(&conn).expect("write");
        let rows: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM node_counts) + (SELECT COUNT(*) FROM event_marks)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(rows, 0);
    }
}
