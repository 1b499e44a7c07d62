//! Durable state behind one async trait.
//!
//! Owns what survives a restart: events (with their processed mark), profiles, instances
//! with their pending timers, step events, journeys and their published versions. The
//! [`Store`] trait is shaped so that a PostgreSQL backend can follow the embedded SQLite
//! one ([`sqlite`]). The store never interprets journeys or runs steps; it only keeps
//! what the runtime and the API hand it, and a write it has acknowledged is durable.

pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Event, Profile};
use crate::runtime::instance::{Instance, Step};

pub type Result<T> = anyhow::Result<T>;

/// Everything one partition batch changes, committed atomically.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Events whose processing this batch completes.
    pub processed_events: Vec<String>,
    /// Profiles to insert or replace (attributes, zone), in their final state.
    pub profiles: Vec<ProfileWrite>,
    /// Profiles to delete (with their aliases and memberships).
    pub profile_deletes: Vec<String>,
    /// Audience memberships that begin (`since` set) or end (`since` empty).
    pub memberships: Vec<Membership>,
    /// Audience entries and exits, for the record.
    pub transitions: Vec<Transition>,
    /// Entries counted by capping rules (profile, rule, time).
    pub capping: Vec<(String, String, Timestamp)>,
    /// Instances to insert or replace.
    pub instances: Vec<Instance>,
    /// Step events to append.
    pub steps: Vec<Step>,
    /// Entries held while their journey is paused.
    pub held: Vec<HeldEntry>,
    /// Held entries this batch released (by `seq`).
    pub released: Vec<i64>,
    /// Profile merges recorded by the partition of the profile merged away (in the same
    /// commit that deletes it), to be applied by the partition it was merged into.
    pub merges: Vec<ProfileMerge>,
    /// Profile merges applied in this batch (by id).
    pub merges_done: Vec<String>,
}

impl WriteBatch {
    /// Appends everything of `other` after this batch's own.
    pub fn absorb(&mut self, other: WriteBatch) {
        let WriteBatch {
            processed_events,
            profiles,
            profile_deletes,
            memberships,
            transitions,
            capping,
            instances,
            steps,
            held,
            released,
            merges,
            merges_done,
        } = other;
        self.processed_events.extend(processed_events);
        self.profiles.extend(profiles);
        self.profile_deletes.extend(profile_deletes);
        self.memberships.extend(memberships);
        self.transitions.extend(transitions);
        self.capping.extend(capping);
        self.instances.extend(instances);
        self.steps.extend(steps);
        self.held.extend(held);
        self.released.extend(released);
        self.merges.extend(merges);
        self.merges_done.extend(merges_done);
    }

    pub fn is_empty(&self) -> bool {
        self.processed_events.is_empty()
            && self.profiles.is_empty()
            && self.profile_deletes.is_empty()
            && self.memberships.is_empty()
            && self.transitions.is_empty()
            && self.capping.is_empty()
            && self.instances.is_empty()
            && self.steps.is_empty()
            && self.held.is_empty()
            && self.released.is_empty()
            && self.merges.is_empty()
            && self.merges_done.is_empty()
    }
}

/// A profile row to write; its aliases are rewritten only when they changed.
#[derive(Debug, Clone)]
pub struct ProfileWrite {
    pub profile: Profile,
    pub aliases_changed: bool,
}

/// A profile joining (`since` set) or leaving an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub audience: String,
    pub profile_id: String,
    pub since: Option<Timestamp>,
}

/// A recorded audience entry or exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub audience: String,
    pub profile_id: String,
    /// `entered` or `exited`.
    pub direction: &'static str,
    pub at: Timestamp,
}

/// What a partition needs to know about one profile to step its instances.
#[derive(Debug, Default)]
pub struct ProfileState {
    pub profile: Option<Profile>,
    /// Instances still active or waiting.
    pub live: Vec<Instance>,
    /// For each journey the profile ever entered: the entry time of its latest entry
    /// (event time for an entry by an event; see `InstanceData::entry_at`), and the id
    /// of that latest instance.
    pub last_entered: HashMap<String, (Timestamp, String)>,
    /// Audiences the profile belongs to, with the time it joined.
    pub audiences: BTreeMap<String, Timestamp>,
    /// Entries counted by capping rules (rule, time).
    pub capping: Vec<(String, Timestamp)>,
}

/// A stored audience definition and its size.
#[derive(Debug, Clone, Serialize)]
pub struct AudienceRecord {
    pub name: String,
    pub definition: Value,
    pub size: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
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

/// An entry held while its journey was paused; it is tried again, in `seq` order, when
/// the journey resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldEntry {
    /// Order of holding; 0 until stored.
    #[serde(default)]
    pub seq: i64,
    pub journey_id: String,
    pub profile_id: String,
    /// What caused the entry (an event id, a run's trigger, a jump) and when.
    pub trigger_id: String,
    pub trigger_at: Timestamp,
    /// The entry event, as expressions will see it.
    pub trigger: Value,
    /// The ingested event that caused it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// A profile merged into another (identity stitching): what it had, recorded when it
/// was deleted, until the profile it was merged into has taken it (see
/// `runtime::merge` for the rules).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileMerge {
    pub id: String,
    /// The profile merged away (deleted).
    pub from: String,
    /// The profile that takes what it had.
    pub into: String,
    pub at: Timestamp,
    pub attributes: Value,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// The explicit-list audiences it belonged to.
    #[serde(default)]
    pub lists: Vec<String>,
    /// Its entries counted by capping rules (rule, entry time).
    #[serde(default)]
    pub capping: Vec<(String, Timestamp)>,
    /// Its live instances, as they were when they were ended.
    #[serde(default)]
    pub instances: Vec<Instance>,
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

/// Durable state. Every method that writes returns only once the write is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores new events; returns, for each, whether it was new (false: a repeat of an id
    /// already stored, which is not processed again).
    async fn ingest(&self, events: &[Event]) -> Result<Vec<bool>>;
    /// Commits a partition batch atomically.
    async fn commit(&self, batch: Arc<WriteBatch>) -> Result<()>;
    /// Events not yet processed, oldest first, after sequence `after`.
    async fn unprocessed_events(&self, after: i64, limit: usize) -> Result<Vec<(i64, Event)>>;
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>>;

    /// The state of several profiles, read together (one round trip for a batch).
    async fn profile_states(
        &self,
        profile_ids: Vec<String>,
    ) -> Result<HashMap<String, ProfileState>>;
    /// Timers due at `now`, earliest first.
    /// Timers due at `now`, in (due time, instance id) order, after the timer `after`
    /// (so that a caller may load the next ones while earlier ones are being handled).
    async fn due_timers(
        &self,
        now: Timestamp,
        after: Option<DueTimer>,
        limit: usize,
    ) -> Result<Vec<DueTimer>>;
    /// The earliest pending timer.
    async fn next_wake(&self) -> Result<Option<Timestamp>>;
    /// How many instances wait on a timer, and how many are live (active or waiting).
    async fn instance_gauges(&self) -> Result<(u64, u64)>;

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>>;
    /// How many instances of a journey (every version) are in each status.
    async fn count_instances(&self, journey_id: &str) -> Result<BTreeMap<String, u64>>;
    async fn instances_of_profile(&self, profile_id: &str) -> Result<Vec<Instance>>;
    async fn steps_of_instance(&self, instance_id: &str) -> Result<Vec<Step>>;
    async fn steps_of_event(&self, event_id: &str) -> Result<Vec<Step>>;
    /// Profiles with a live instance of a journey (of one version, if given), in id
    /// order after `after`, at most `limit`: the partitions end them (a stop).
    async fn profiles_in_journey(
        &self,
        journey_id: &str,
        version: Option<u32>,
        after: &str,
        limit: usize,
    ) -> Result<Vec<String>>;

    /// A profile with its aliases.
    async fn get_profile(&self, id: &str) -> Result<Option<Profile>>;
    /// The profile an alias belongs to.
    async fn resolve_identity(&self, namespace: &str, value: &str) -> Result<Option<String>>;
    /// Profile ids in order, after `after`.
    async fn profile_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>>;

    /// Creates or replaces an audience definition.
    async fn put_audience(&self, name: &str, definition: Value, now: Timestamp) -> Result<()>;
    async fn list_audiences(&self) -> Result<Vec<AudienceRecord>>;
    async fn get_audience(&self, name: &str) -> Result<Option<AudienceRecord>>;
    /// Members of an audience in profile id order, after `after`; with `since`, only
    /// those who joined at or after it.
    async fn audience_members(
        &self,
        name: &str,
        after: Option<String>,
        since: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<(String, Timestamp)>>;
    /// The audiences a profile belongs to, with the time it joined.
    async fn profile_audiences(&self, profile_id: &str) -> Result<Vec<(String, Timestamp)>>;
    /// Recorded audience transitions of a profile, oldest first.
    async fn profile_transitions(&self, profile_id: &str) -> Result<Vec<Transition>>;

    /// Creates or replaces a capping rule.
    async fn put_capping_rule(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    /// Every capping rule (id, definition).
    async fn capping_rules(&self) -> Result<Vec<(String, Value)>>;

    /// Stores a business event with the runs it starts, atomically; false if its id was
    /// seen before (nothing is stored then).
    async fn ingest_business_event(&self, event: Event, runs: Vec<RunRecord>) -> Result<bool>;
    /// Creates a run unless one with its id exists; returns whether it was created.
    async fn create_run(&self, run: RunRecord) -> Result<bool>;
    /// Saves a run's progress.
    async fn update_run(&self, run: RunRecord) -> Result<()>;
    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>>;
    /// A journey's runs, newest first.
    async fn runs_of_journey(&self, journey_id: &str) -> Result<Vec<RunRecord>>;
    /// Runs not finished (to resume after a restart).
    async fn open_runs(&self) -> Result<Vec<RunRecord>>;
    /// The latest scheduled run of a journey (any version).
    async fn last_scheduled_run(&self, journey_id: &str) -> Result<Option<RunRecord>>;

    async fn put_draft(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    async fn get_journey(&self, id: &str) -> Result<Option<JourneyRecord>>;
    async fn list_journeys(&self) -> Result<Vec<JourneyRecord>>;
    /// Stores a new version and makes the journey live; returns the version number.
    async fn publish(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
        publication: Publication,
    ) -> Result<u32>;
    /// Sets a journey's status, with its pause (kept only while paused).
    async fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        pause: Option<Pause>,
        now: Timestamp,
    ) -> Result<()>;
    /// Every published version of every journey.
    async fn versions(&self) -> Result<Vec<VersionRecord>>;
    /// Starts (`Some`) or ends test mode for a journey's draft.
    async fn set_test_mode(&self, id: &str, test: Option<TestMode>) -> Result<()>;
    /// One published version.
    async fn version(&self, id: &str, version: u32) -> Result<Option<VersionRecord>>;

    /// Creates or replaces an alert rule (its state is kept).
    async fn put_alert(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    /// Deletes an alert rule; whether it existed.
    async fn delete_alert(&self, id: &str) -> Result<bool>;
    /// Every alert rule: (id, definition, state).
    async fn alerts(&self) -> Result<Vec<(String, Value, Option<Value>)>>;
    async fn set_alert_state(&self, id: &str, state: Value) -> Result<()>;

    /// Held entries of a journey in holding order, after `after`.
    /// Profile merges recorded and not applied yet, oldest first.
    async fn pending_merges(&self) -> Result<Vec<ProfileMerge>>;

    async fn held_entries(
        &self,
        journey_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<HeldEntry>>;
    /// Journeys with held entries.
    async fn journeys_with_held_entries(&self) -> Result<Vec<String>>;
    /// Deletes a journey's held entries; returns how many there were.
    async fn drop_held_entries(&self, journey_id: &str) -> Result<u64>;
    /// Waiting instances of a journey held before an action node: (id, profile, wake).
    async fn held_instances(&self, journey_id: &str) -> Result<Vec<DueTimer>>;
    /// Live instances of a journey by version and node: (version, node, count).
    async fn live_by_node(&self, journey_id: &str) -> Result<Vec<(u32, String, u64)>>;
    /// Step counts of a journey (every version), by hour.
    async fn node_counts(&self, journey_id: &str) -> Result<Vec<NodeCount>>;
    /// Per split branch of a journey: profiles assigned and converted by `success`.
    async fn conversions(&self, journey_id: &str, success: &str) -> Result<Vec<Conversion>>;
    /// Events of the given types received in `[from, to)`, in the order they arrived.
    async fn events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        types: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<Event>>;
}
