//! Per-node step counters, by hour: what reports read.
//!
//! A commit folds its steps into one counter row per (journey, version, node, hour,
//! status, code, branch) and adds them with an upsert, so a report reads a few rows per
//! node and hour instead of scanning step events. Counters are only ever added to.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};

use super::rows::{from_ts, ts};
use crate::journal::Step;
use crate::store::{Conversion, FeedbackCount, NodeCount};

const HOUR_US: i64 = 3_600_000_000;

/// A split assignment: journey, version, node, branch, profile, time (µs).
pub type Assignment = (String, u32, String, String, String, i64);

/// The branches splits assigned profiles to, for experiment reports.
pub fn assignments(steps: &[Step]) -> Vec<Assignment> {
    steps
        .iter()
        .filter(|s| s.kind == "split")
        .filter_map(|s| {
            Some((
                s.journey_id.clone(),
                s.version,
                s.node.clone(),
                s.branch()?,
                s.profile_id.clone(),
                ts(s.at),
            ))
        })
        .collect()
}

/// Records split assignments (inside the caller's transaction).
pub fn assign(conn: &Connection, rows: &[Assignment]) -> rusqlite::Result<()> {
    for (journey, version, node, branch, profile, at) in rows {
        conn.prepare_cached(
            "INSERT INTO split_assignments (journey_id, version, node, branch, profile_id, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![journey, version, node, branch, profile, at])?;
    }
    Ok(())
}

/// Per split branch: profiles assigned, and how many of them had an event of type
/// `success` at or after their assignment.
pub fn conversions(
    conn: &Connection,
    journey_id: &str,
    success: &str,
) -> rusqlite::Result<Vec<Conversion>> {
    let rows: Vec<Assignment> = conn
        .prepare_cached(
            "SELECT journey_id, version, node, branch, profile_id, at FROM split_assignments \
             WHERE journey_id = ?1",
        )?
        .query_map([journey_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let Some(since) = rows.iter().map(|r| r.5).min() else {
        return Ok(Vec::new());
    };
    // Latest success time of each profile since the first assignment (one pass).
    let mut latest: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT profile_id, received_at FROM events WHERE type = ?1 AND received_at >= ?2",
    )?;
    for row in stmt.query_map(params![success, since], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (profile, at) = row?;
        let slot = latest.entry(profile).or_insert(at);
        *slot = (*slot).max(at);
    }
    let mut out: BTreeMap<(u32, String, String), (u64, u64)> = BTreeMap::new();
    for (_, version, node, branch, profile, at) in rows {
        let slot = out.entry((version, node, branch)).or_default();
        slot.0 += 1;
        if latest.get(&profile).is_some_and(|t| *t >= at) {
            slot.1 += 1;
        }
    }
    Ok(out
        .into_iter()
        .map(
            |((version, node, branch), (assigned, converted))| Conversion {
                version,
                node,
                branch,
                assigned,
                converted,
            },
        )
        .collect())
}

/// A counter key: journey, version, node, kind, hour (µs), status, code, branch.
pub type Key = (
    String,
    u32,
    String,
    String,
    i64,
    &'static str,
    String,
    String,
);

/// Folds steps into counters.
pub fn aggregate(steps: &[Step]) -> BTreeMap<Key, i64> {
    // Folded on borrowed keys first: the strings are copied once per distinct counter of
    // the batch, not once per step.
    type Borrowed<'a> = (&'a str, u32, &'a str, &'a str, i64, &'static str, &'a str);
    let mut folded: BTreeMap<(Borrowed<'_>, String), i64> = BTreeMap::new();
    for s in steps {
        let at = ts(s.at);
        let key = (
            s.journey_id.as_str(),
            s.version,
            s.node.as_str(),
            s.kind.as_str(),
            at - at.rem_euclid(HOUR_US),
            s.status.as_str(),
            s.code.as_deref().unwrap_or_default(),
        );
        *folded
            .entry((key, s.branch().unwrap_or_default()))
            .or_insert(0) += 1;
    }
    folded
        .into_iter()
        .map(|((k, branch), n)| {
            let key = (
                k.0.to_string(),
                k.1,
                k.2.to_string(),
                k.3.to_string(),
                k.4,
                k.5,
                k.6.to_string(),
                branch,
            );
            (key, n)
        })
        .collect()
}

/// Folds delivery feedback into counters of its message node: kind `message`, status
/// `feedback`, the feedback's kind as code, in the hour it happened.
pub fn add_feedback(counts: &mut BTreeMap<Key, i64>, feedback: &[FeedbackCount]) {
    for f in feedback {
        let at = ts(f.at);
        *counts
            .entry((
                f.journey_id.clone(),
                f.version,
                f.node.clone(),
                "message".to_string(),
                at - at.rem_euclid(HOUR_US),
                "feedback",
                f.kind.clone(),
                String::new(),
            ))
            .or_default() += 1;
    }
}

/// Adds counters (inside the caller's transaction).
pub fn add(conn: &Connection, counts: &BTreeMap<Key, i64>) -> rusqlite::Result<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO node_counts (journey_id, version, node, kind, hour, status, code, branch, n) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT DO UPDATE SET n = n + excluded.n",
    )?;
    for ((journey, version, node, kind, hour, status, code, branch), n) in counts {
        stmt.execute(params![
            journey, version, node, kind, hour, status, code, branch, n
        ])?;
    }
    Ok(())
}

/// Every counter of a journey.
pub fn select(conn: &Connection, journey_id: &str) -> rusqlite::Result<Vec<NodeCount>> {
    conn.prepare_cached(
        "SELECT version, node, kind, hour, status, code, branch, n FROM node_counts \
         WHERE journey_id = ?1 ORDER BY version, hour, node, status, code, branch",
    )?
    .query_map([journey_id], |r| {
        Ok(NodeCount {
            version: r.get(0)?,
            node: r.get(1)?,
            kind: r.get(2)?,
            hour: from_ts(r.get(3)?)?,
            status: r.get(4)?,
            code: r.get(5)?,
            branch: r.get(6)?,
            count: r.get::<_, i64>(7)? as u64,
        })
    })?
    .collect()
}
