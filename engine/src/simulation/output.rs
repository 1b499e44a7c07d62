//! What a simulation reports: each profile's path (every step with its time, the
//! branch taken and why), per-node totals, and the calls a dry run did not make; as
//! JSON or as text. The same input always renders to the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::actions::DryRunCall;
use crate::journal::{Instance, Step};

/// The outcome of a simulation.
#[derive(Debug, Serialize)]
pub struct Simulation {
    pub journey: String,
    pub start: Timestamp,
    /// The virtual time when the simulation stopped.
    pub end: Timestamp,
    pub profiles: Vec<ProfilePath>,
    /// Per node, in definition order: how many steps of each status.
    pub totals: Vec<NodeTotal>,
    /// Action calls the dry run recorded instead of making, in order.
    pub actions: Vec<DryRunCall>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ProfilePath {
    pub profile_id: String,
    /// Every step of the profile in this journey: entries refused and each instance's.
    pub steps: Vec<PathStep>,
    /// How each instance stands at the end (`completed`, `waiting`, ...).
    pub instances: Vec<InstanceEnd>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct InstanceEnd {
    pub entered_at: Timestamp,
    pub status: String,
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct PathStep {
    pub at: Timestamp,
    pub node: String,
    pub kind: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The branch a condition, split or reaction took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Why: the condition that matched, the event that came, the parameters an action
    /// would have sent, the failure's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct NodeTotal {
    pub node: String,
    pub entered: u64,
    pub passed: u64,
    pub waiting: u64,
    pub failed: u64,
    /// Messages not sent on purpose (unsubscribed, suppressed).
    pub skipped: u64,
    pub ended: u64,
    pub discarded: u64,
    pub held: u64,
}

/// Why a step went the way it did, from its detail (times of actions left out: they
/// are not part of the journey's logic and would differ between runs).
fn why(step: &Step) -> Option<String> {
    if let Some(m) = &step.message {
        return Some(m.clone());
    }
    let d = step.detail.as_ref()?;
    if let Some(when) = d.get("when").and_then(Value::as_str) {
        return Some(format!("matched {when}"));
    }
    if d.get("branch").and_then(Value::as_str) == Some("otherwise") {
        return Some("no branch matched".into());
    }
    if let (Some(action), Some(params)) = (d.get("action").and_then(Value::as_str), d.get("params"))
    {
        return Some(format!("would call {action} with {params}"));
    }
    if let Some(event) = d.get("event").and_then(Value::as_str) {
        return Some(format!("{event} came"));
    }
    if d.get("timeout") == Some(&Value::Bool(true)) {
        return Some("timed out".into());
    }
    if let Some(until) = d.get("until").and_then(Value::as_str) {
        return Some(format!("until {until}"));
    }
    if d.get("label").is_some() && d.get("when").is_none() {
        return Some("assigned by the split".into());
    }
    None
}

pub fn path_step(step: &Step) -> PathStep {
    PathStep {
        at: step.at,
        node: step.node.clone(),
        kind: step.kind.clone(),
        status: step.status.as_str().to_string(),
        code: step.code.clone(),
        branch: step.branch(),
        why: why(step),
    }
}

pub fn instance_end(i: &Instance) -> InstanceEnd {
    InstanceEnd {
        entered_at: i.entered_at,
        status: i.status.as_str().to_string(),
        node: i.node.clone(),
        end_reason: i.end_reason.clone(),
    }
}

/// Per-node totals over every path, nodes in `order` first.
pub fn totals(profiles: &[ProfilePath], order: &[String]) -> Vec<NodeTotal> {
    let mut by_node: BTreeMap<String, NodeTotal> = BTreeMap::new();
    for s in profiles.iter().flat_map(|p| &p.steps) {
        let t = by_node.entry(s.node.clone()).or_insert_with(|| NodeTotal {
            node: s.node.clone(),
            ..Default::default()
        });
        match s.status.as_str() {
            "entered" => t.entered += 1,
            "passed" => t.passed += 1,
            "waiting" => t.waiting += 1,
            "failed" => t.failed += 1,
            "skipped" => t.skipped += 1,
            "ended" => t.ended += 1,
            "discarded" => t.discarded += 1,
            "held" => t.held += 1,
            _ => {}
        }
    }
    let mut out: Vec<NodeTotal> = std::iter::once("entry".to_string())
        .chain(order.iter().cloned())
        .filter_map(|n| by_node.remove(&n))
        .collect();
    out.extend(by_node.into_values());
    out
}

impl Simulation {
    /// The report as text: each profile's path, then the totals.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "journey {} simulated from {} to {}",
            self.journey, self.start, self.end
        );
        for p in &self.profiles {
            let _ = writeln!(out, "\nprofile {}", p.profile_id);
            for s in &p.steps {
                let mut line = format!("  {}  {:<16} {:<9}", s.at, s.node, s.status);
                if let Some(code) = &s.code {
                    let _ = write!(line, " {code}");
                }
                if let Some(branch) = &s.branch {
                    let _ = write!(line, " -> {branch}");
                }
                if let Some(why) = &s.why {
                    let _ = write!(line, "  ({why})");
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
            for i in &p.instances {
                let _ = writeln!(
                    out,
                    "  = {} at {}{}",
                    i.status,
                    i.node.as_deref().unwrap_or("-"),
                    i.end_reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "node", "entered", "passed", "waiting", "failed", "skipped", "ended", "discarded"
        );
        for t in &self.totals {
            let _ = writeln!(
                out,
                "{:<16} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
                t.node, t.entered, t.passed, t.waiting, t.failed, t.skipped, t.ended, t.discarded
            );
        }
        let _ = writeln!(
            out,
            "\n{} action call(s) not made (dry run)",
            self.actions.len()
        );
        out
    }
}
