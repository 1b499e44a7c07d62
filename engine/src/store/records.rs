//! The records the store keeps besides partition state: journeys and their versions,
//! audiences, runs, events, report rows.
//!
//! These are plain records; this module must never read or write anything itself.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Event;

/// A stored audience definition and its size.
#[derive(Debug, Clone, Serialize)]
pub struct AudienceRecord {
    pub name: String,
    pub definition: Value,
    pub size: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One version of a message template.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TemplateRecord {
    pub id: String,
    pub version: u32,
    pub definition: Value,
    pub created_at: Timestamp,
}

/// A message the `outbox` provider kept: rendered, as it would have been sent.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutboxRecord {
    /// Stable across retries (derived from the call's idempotency key).
    pub message_id: String,
    pub channel: String,
    /// The address: an email address, a phone number, a device token.
    pub to: String,
    pub profile_id: String,
    pub journey_id: String,
    pub node_id: String,
    pub template: String,
    pub template_version: u32,
    pub locale: String,
    /// The rendered parts (`subject`, `html`, `text`, `body`, `title`, `data`).
    pub message: Value,
    pub at: Timestamp,
}

/// A change of a profile's consent to a subscription group, with where it came from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsentChange {
    pub profile_id: String,
    pub group: String,
    /// `true` subscribed, `false` unsubscribed, `None` back to the group's default.
    pub subscribed: Option<bool>,
    /// Who changed it: `api`, `import`, `segment`, `unsubscribe_link`, `merge`, ...
    pub source: String,
    /// The message whose link was used, for `unsubscribe_link`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub at: Timestamp,
}

/// A message a provider accepted: what delivery feedback about it is matched to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SentMessage {
    pub message_id: String,
    pub profile_id: String,
    pub journey_id: String,
    pub instance_id: String,
    pub node_id: String,
    pub channel: String,
    pub provider: String,
    /// The address it went to.
    pub to: String,
    pub at: Timestamp,
}

/// An address no message goes to (a hard bounce, a complaint, an operator's decision).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Suppression {
    /// Normalised: trimmed, lower case.
    pub address: String,
    /// `hard_bounce`, `complaint`, `manual`, ...
    pub reason: String,
    /// Who put it there: `api`, a provider's feedback, ...
    pub source: String,
    pub at: Timestamp,
}

/// A run of a read-audience journey, or the fan-out of a business event: the profiles
/// of an audience enter one journey version, at a rate, resumably.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub journey_id: String,
    pub version: u32,
    /// `schedule` or `business_event`.
    pub kind: String,
    pub audience: String,
    /// The occurrence of the schedule (or the business event's arrival).
    pub scheduled_at: Timestamp,
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    pub status: RunStatus,
    /// The last profile id handled, in id order: a resumed run starts after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    pub read: u64,
    pub entered: u64,
    pub skipped: u64,
    /// Skipped profiles by reason code.
    pub skipped_reasons: BTreeMap<String, u64>,
    /// Profiles per second.
    pub rate: u32,
    /// Incremental runs only read members who joined at or after this time (the previous
    /// run's start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members_since: Option<Timestamp>,
    /// The entry event every profile gets (`event` in expressions).
    pub trigger: Value,
    /// Why the run stopped before reading the whole audience (`JOURNEY_NOT_LIVE`: the
    /// journey was stopped or a new version published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_early: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Finished,
}

/// An instance whose timer is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub instance_id: String,
    pub profile_id: String,
    pub wake_at: Timestamp,
}

/// A journey's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStatus {
    /// Never published.
    Draft,
    /// Its latest version takes entries.
    Live,
    /// Live, with entries and/or actions held until it resumes (see [`Pause`]).
    Paused,
    /// No new entries; its instances were ended.
    Stopped,
    /// No new entries; its running instances go on to their end.
    Closed,
    /// Closed, and every instance has ended.
    Finished,
}

impl JourneyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStatus::Draft => "draft",
            JourneyStatus::Live => "live",
            JourneyStatus::Paused => "paused",
            JourneyStatus::Stopped => "stopped",
            JourneyStatus::Closed => "closed",
            JourneyStatus::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => JourneyStatus::Draft,
            "live" => JourneyStatus::Live,
            "paused" => JourneyStatus::Paused,
            "stopped" => JourneyStatus::Stopped,
            "closed" => JourneyStatus::Closed,
            "finished" => JourneyStatus::Finished,
            _ => return None,
        })
    }
}

/// What a paused journey holds, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// New entries wait (in order) until the journey resumes.
    pub entries: bool,
    /// Instances reaching an action node wait there until the journey resumes.
    pub actions: bool,
    pub paused_at: Timestamp,
    /// The journey resumes by itself at this time.
    pub until: Timestamp,
    /// Who paused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A draft running in test mode: only test profiles enter it (as version 0), its waits
/// and reaction timeouts last at most `wait_seconds`, and its actions may be dry runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestMode {
    pub wait_seconds: u64,
    /// Actions record what they would send (in their step) instead of calling plugins.
    pub dry_run: bool,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// One branch of a split: profiles assigned to it and how many converted (had the
/// success event at or after their assignment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversion {
    pub version: u32,
    pub node: String,
    pub branch: String,
    pub assigned: u64,
    pub converted: u64,
}

/// Per-node step counts of a journey, grouped by version, node, hour, status, code and
/// branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCount {
    pub version: u32,
    pub node: String,
    pub kind: String,
    /// The start of the hour the steps happened in.
    pub hour: Timestamp,
    pub status: String,
    /// A failure, discard or end code; empty when there is none.
    pub code: String,
    /// The branch a condition, split or reaction took; empty otherwise.
    pub branch: String,
    pub count: u64,
}

/// A journey: its editable draft, status and published versions.
#[derive(Debug, Clone, Serialize)]
pub struct JourneyRecord {
    pub id: String,
    pub status: JourneyStatus,
    /// The draft definition, as JSON.
    pub draft: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub versions: Vec<VersionInfo>,
    /// Set while the journey is paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Set while its draft runs in test mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<TestMode>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u32,
    pub published_at: Timestamp,
    /// Who published it (the API token's name, or `local`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_by: Option<String>,
    /// What the publisher said changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A published, immutable journey version.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub journey_id: String,
    pub version: u32,
    pub definition: Value,
    pub published_at: Timestamp,
    /// How its split nodes assign branches (recorded when it was published).
    pub split_hash: crate::ids::SplitHash,
}

/// Who published a version, and why.
#[derive(Debug, Clone, Default)]
pub struct Publication {
    pub by: Option<String>,
    pub note: Option<String>,
}

/// An accepted event and whether the runtime has finished with it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    #[serde(flatten)]
    pub event: Event,
    pub processed: bool,
}
