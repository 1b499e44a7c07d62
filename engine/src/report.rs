//! Journey reports: per version and node, what happened to the profiles that went
//! through, built from the step counters the store keeps.
//!
//! Owns the shape of a report (entries, discards, per-node passes, failures with their
//! codes, ends, waits, holds, branches taken, instances there now, hourly series and the
//! experiment view of splits). It never reads step events one by one and never writes.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::store::{Conversion, NodeCount};

/// A journey's report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub journey: String,
    pub versions: Vec<VersionReport>,
    /// Steps per hour, every version together.
    pub hourly: Vec<Hour>,
    /// Split branches with their conversion, when a success event was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
}

#[derive(Debug, Default, Serialize)]
pub struct VersionReport {
    pub version: u32,
    /// Profiles that entered.
    pub entered: u64,
    /// Entries refused, by code.
    pub discarded: u64,
    pub discard_codes: BTreeMap<String, u64>,
    /// Entries held by a pause (they enter when the journey resumes).
    pub held: u64,
    /// Instances live now (active or waiting).
    pub live: u64,
    pub nodes: Vec<NodeReport>,
}

#[derive(Debug, Default, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub kind: String,
    /// Times an instance ran the node and moved on.
    pub passed: u64,
    /// Times the node failed (the instance took its error path or ended).
    pub failed: u64,
    pub error_codes: BTreeMap<String, u64>,
    /// Times the node did not do its work and the instance moved on (a message not sent:
    /// unsubscribed, suppressed, capped), by code.
    pub skipped: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skip_codes: BTreeMap<String, u64>,
    /// Delivery feedback about the messages the node sent, by kind (`delivered`,
    /// `opened`, `clicked`, `bounced`, `complained`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feedback: BTreeMap<String, u64>,
    /// Times an instance paused on the node (wait, reaction, retry).
    pub waited: u64,
    /// Times an action waited for a paused journey.
    pub held: u64,
    /// Instances that ended on the node, by code (`COMPLETED`, `TIMEOUT`, ...).
    pub ended: u64,
    pub end_codes: BTreeMap<String, u64>,
    /// Branches taken (conditions, splits, reactions), by label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub branches: BTreeMap<String, u64>,
    /// Instances on the node now.
    pub current: u64,
}

/// One hour of steps.
#[derive(Debug, Default, Serialize)]
pub struct Hour {
    pub hour: Timestamp,
    pub entered: u64,
    pub discarded: u64,
    pub passed: u64,
    pub failed: u64,
    pub ended: u64,
}

#[derive(Debug, Serialize)]
pub struct Experiment {
    pub success_event: String,
    pub branches: Vec<BranchConversion>,
}

#[derive(Debug, Serialize)]
pub struct BranchConversion {
    pub version: u32,
    pub node: String,
    pub branch: String,
    pub assigned: u64,
    pub converted: u64,
    /// `converted / assigned`.
    pub rate: f64,
}

/// Builds a report. `order` lists each version's node ids in definition order (nodes
/// without any step yet are shown with zeros); `live` is (version, node, instances).
pub fn build(
    journey: &str,
    counts: &[NodeCount],
    live: &[(u32, String, u64)],
    order: &BTreeMap<u32, Vec<(String, String)>>,
    conversions: Option<(String, Vec<Conversion>)>,
) -> Report {
    let mut versions: BTreeMap<u32, VersionReport> = BTreeMap::new();
    let mut nodes: BTreeMap<(u32, String), NodeReport> = BTreeMap::new();
    let mut hours: BTreeMap<Timestamp, Hour> = BTreeMap::new();
    for (version, ids) in order {
        versions.entry(*version).or_default().version = *version;
        for (node, kind) in ids {
            nodes.insert(
                (*version, node.clone()),
                NodeReport {
                    node: node.clone(),
                    kind: kind.clone(),
                    ..Default::default()
                },
            );
        }
    }
    for c in counts {
        let v = versions.entry(c.version).or_default();
        v.version = c.version;
        let hour = hours.entry(c.hour).or_insert_with(|| Hour {
            hour: c.hour,
            ..Default::default()
        });
        let n = c.count;
        match c.status.as_str() {
            "entered" => {
                v.entered += n;
                hour.entered += n;
                continue;
            }
            "discarded" => {
                v.discarded += n;
                *v.discard_codes.entry(c.code.clone()).or_default() += n;
                hour.discarded += n;
                continue;
            }
            "held" if c.node == "entry" => {
                v.held += n;
                continue;
            }
            _ => {}
        }
        let node = nodes
            .entry((c.version, c.node.clone()))
            .or_insert_with(|| NodeReport {
                node: c.node.clone(),
                kind: c.kind.clone(),
                ..Default::default()
            });
        match c.status.as_str() {
            "passed" => {
                node.passed += n;
                hour.passed += n;
                if !c.branch.is_empty() {
                    *node.branches.entry(c.branch.clone()).or_default() += n;
                }
            }
            "failed" => {
                node.failed += n;
                hour.failed += n;
                *node.error_codes.entry(c.code.clone()).or_default() += n;
            }
            "skipped" => {
                node.skipped += n;
                *node.skip_codes.entry(c.code.clone()).or_default() += n;
            }
            "feedback" => *node.feedback.entry(c.code.clone()).or_default() += n,
            "waiting" => node.waited += n,
            "held" => node.held += n,
            "ended" => {
                node.ended += n;
                hour.ended += n;
                *node.end_codes.entry(c.code.clone()).or_default() += n;
            }
            _ => {}
        }
    }
    for (version, node, n) in live {
        versions.entry(*version).or_default().live += n;
        if let Some(r) = nodes.get_mut(&(*version, node.clone())) {
            r.current += n;
        }
    }
    for ((version, node), report) in nodes {
        let _ = node;
        versions
            .entry(version)
            .or_insert_with(|| VersionReport {
                version,
                ..Default::default()
            })
            .nodes
            .push(report);
    }
    // Definition order within a version (unknown nodes last, by id).
    for (version, v) in versions.iter_mut() {
        let ids = order.get(version);
        let rank = |id: &str| {
            ids.and_then(|ids| ids.iter().position(|(n, _)| n == id))
                .unwrap_or(usize::MAX)
        };
        v.nodes
            .sort_by(|a, b| rank(&a.node).cmp(&rank(&b.node)).then(a.node.cmp(&b.node)));
    }
    Report {
        journey: journey.to_string(),
        versions: versions.into_values().collect(),
        hourly: hours.into_values().collect(),
        experiment: conversions.map(|(success_event, rows)| Experiment {
            success_event,
            branches: rows
                .into_iter()
                .map(|c| BranchConversion {
                    rate: if c.assigned == 0 {
                        0.0
                    } else {
                        c.converted as f64 / c.assigned as f64
                    },
                    version: c.version,
                    node: c.node,
                    branch: c.branch,
                    assigned: c.assigned,
                    converted: c.converted,
                })
                .collect(),
        }),
    }
}
