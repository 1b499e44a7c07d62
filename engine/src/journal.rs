//! The journal of a journey's travellers: instances (one profile's trip through one
//! journey version) and their step events.
//!
//! These are the records the runtime writes and the store keeps, so they stand below
//! both: the store never imports the runtime. This module only describes the records;
//! it must never run a step, read a clock or touch the store.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Moving through nodes (only inside one activation).
    Active,
    /// Paused on a wait, a reaction or an action retry.
    Waiting,
    /// Reached an end.
    Completed,
    /// Stopped by an error without an error path.
    Failed,
    /// Ended by the journey's global timeout.
    TimedOut,
    /// Ended because its journey was stopped.
    Stopped,
    /// Ended by an exit criterion (an event, an audience exit) or the profile's deletion.
    Exited,
}

impl Status {
    pub fn is_live(self) -> bool {
        matches!(self, Status::Active | Status::Waiting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Waiting => "waiting",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::TimedOut => "timed_out",
            Status::Stopped => "stopped",
            Status::Exited => "exited",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "active" => Status::Active,
            "waiting" => Status::Waiting,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "timed_out" => Status::TimedOut,
            "stopped" => Status::Stopped,
            "exited" => Status::Exited,
            _ => return None,
        })
    }
}

/// The data an instance carries from node to node.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct InstanceData {
    /// The entry event, as expressions see it (`event`).
    pub event: Value,
    /// The latest event of each type collected by reactions (`events.purchase`).
    #[serde(default)]
    pub events: Map<String, Value>,
    /// Results of action nodes, by node id (`actions.send_welcome`).
    #[serde(default)]
    pub actions: Map<String, Value>,
    /// Count of nodes entered so far; part of action idempotency keys.
    #[serde(default)]
    pub step: u32,
    /// Attempt number of the action the instance is on (1 for the first call).
    #[serde(default)]
    pub attempt: u32,
    /// Data-source answers, by `source\u{1f}key`: the instance's own cache.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub lookups: Map<String, Value>,
    /// Waiting before its action node for the paused journey to resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
    /// Waiting for the answer of an action call that left its partition's batch: the
    /// attempt's ticket (`<idempotency key>#<attempt>`). The instance's timer is the
    /// call's deadline; if the answer was lost in a crash, the call is made again then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling: Option<String>,
    /// The entry's time for re-entrance and capping: when the entry event happened (its
    /// `timestamp`, at most its arrival), else when the entry was processed. `None` for
    /// instances stored before it was recorded: their `entered_at` counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_at: Option<Timestamp>,
}

/// The key of a journey's entry history (`last_entered`): the journey id, and a key of
/// its own for the draft in test mode (version 0), so that a test profile's entries in
/// the draft and in the live version do not count against each other.
pub fn entry_key(journey_id: &str, version: u32) -> std::borrow::Cow<'_, str> {
    if version == 0 {
        std::borrow::Cow::Owned(format!("{journey_id}\u{1f}test"))
    } else {
        std::borrow::Cow::Borrowed(journey_id)
    }
}

/// One instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub id: String,
    pub journey_id: String,
    pub version: u32,
    pub profile_id: String,
    pub status: Status,
    /// The node it is on (or ended on).
    pub node: Option<String>,
    pub entered_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// When its pending timer fires (a wait, a reaction timeout, a retry, or the deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
    /// The journey's global timeout for this instance.
    pub deadline: Timestamp,
    /// Why it ended, as an error or discard code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    pub data: InstanceData,
}

/// What a step event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// A profile entered the journey.
    Entered,
    /// A node ran and the instance moved on.
    Passed,
    /// A node paused the instance (wait, reaction, retry).
    Waiting,
    /// A node failed; the instance took its error path or ended.
    Failed,
    /// The instance ended.
    Ended,
    /// An event did not make the profile enter, for a reason.
    Discarded,
    /// An entry or an action waits for its paused journey to resume.
    Held,
    /// A node did not do its work, for a reason in its code (a message not sent to a
    /// profile that unsubscribed); the instance moved on.
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Entered => "entered",
            StepStatus::Passed => "passed",
            StepStatus::Waiting => "waiting",
            StepStatus::Failed => "failed",
            StepStatus::Ended => "ended",
            StepStatus::Discarded => "discarded",
            StepStatus::Held => "held",
            StepStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        Some(match s {
            "entered" => StepStatus::Entered,
            "passed" => StepStatus::Passed,
            "waiting" => StepStatus::Waiting,
            "failed" => StepStatus::Failed,
            "ended" => StepStatus::Ended,
            "discarded" => StepStatus::Discarded,
            "held" => StepStatus::Held,
            "skipped" => StepStatus::Skipped,
            _ => return None,
        })
    }
}

/// One step event: what happened to an instance (or to an entry attempt) at a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// Order of the step in the store; 0 until stored.
    #[serde(default)]
    pub seq: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub journey_id: String,
    pub version: u32,
    pub profile_id: String,
    /// The event that caused this step, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The node id, or `entry` for entry decisions.
    pub node: String,
    /// The node kind (`wait`, `action`, ...) or `entry`.
    pub kind: String,
    pub status: StepStatus,
    pub at: Timestamp,
    /// A stable code for failures, discards and endings (`ACTION_FAILED`, `REENTRANCE_BLOCKED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Node-specific details: the branch taken, an action's parameters and result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl Step {
    /// The path a condition, split or reaction took: its label, else its index (or
    /// `otherwise`, `timeout`, the reaction's event type).
    pub fn branch(&self) -> Option<String> {
        if self.status != StepStatus::Passed {
            return None;
        }
        let detail = self.detail.as_ref()?;
        if let Some(label) = detail.get("label").and_then(Value::as_str) {
            return Some(label.to_string());
        }
        if let Some(event) = detail.get("event").and_then(Value::as_str) {
            return Some(event.to_string());
        }
        if detail.get("timeout") == Some(&Value::Bool(true)) {
            return Some("timeout".into());
        }
        match detail.get("branch")? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}
