//! Durable state behind one async trait.
//!
//! Owns what survives a restart: events (with their processed mark), profiles, instances
//! with their pending timers, step events, journeys and their published versions. The
//! [`Store`] trait is shaped so that a PostgreSQL backend can follow the embedded SQLite
//! one ([`sqlite`]). The store never interprets journeys or runs steps; it only keeps
//! what the runtime and the API hand it, and a write it has acknowledged is durable.

pub mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::model::{Event, Profile};
use crate::runtime::instance::{Instance, Status, Step};

pub type Result<T> = anyhow::Result<T>;

/// Everything one partition batch changes, committed atomically.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Events whose processing this batch completes.
    pub processed_events: Vec<String>,
    /// Profiles to create empty if they do not exist yet (id, time).
    pub profile_creates: Vec<(String, Timestamp)>,
    /// Merge patches to apply to profile attributes, in order (id, patch, time).
    pub profile_patches: Vec<(String, Value, Timestamp)>,
    /// Instances to insert or replace.
    pub instances: Vec<Instance>,
    /// Step events to append.
    pub steps: Vec<Step>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.processed_events.is_empty()
            && self.profile_creates.is_empty()
            && self.profile_patches.is_empty()
            && self.instances.is_empty()
            && self.steps.is_empty()
    }
}

/// What a partition needs to know about one profile to step its instances.
#[derive(Debug, Default)]
pub struct ProfileState {
    pub profile: Option<Profile>,
    /// Instances still active or waiting.
    pub live: Vec<Instance>,
    /// For each journey the profile ever entered: when it last entered.
    pub last_entered: HashMap<String, Timestamp>,
}

/// An instance whose timer is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    pub instance_id: String,
    pub profile_id: String,
    pub wake_at: Timestamp,
}

/// A journey's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyStatus {
    /// Never published.
    Draft,
    /// Its latest version takes entries.
    Live,
    /// No new entries; its instances were ended.
    Stopped,
}

impl JourneyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStatus::Draft => "draft",
            JourneyStatus::Live => "live",
            JourneyStatus::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => JourneyStatus::Draft,
            "live" => JourneyStatus::Live,
            "stopped" => JourneyStatus::Stopped,
            _ => return None,
        })
    }
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
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: u32,
    pub published_at: Timestamp,
}

/// A published, immutable journey version.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub journey_id: String,
    pub version: u32,
    pub definition: Value,
    pub published_at: Timestamp,
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
    async fn ingest(&self, events: Vec<Event>) -> Result<Vec<bool>>;
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
    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<DueTimer>>;
    /// The earliest pending timer.
    async fn next_wake(&self) -> Result<Option<Timestamp>>;

    async fn get_instance(&self, id: &str) -> Result<Option<Instance>>;
    async fn instances_of_profile(&self, profile_id: &str) -> Result<Vec<Instance>>;
    async fn steps_of_instance(&self, instance_id: &str) -> Result<Vec<Step>>;
    async fn steps_of_event(&self, event_id: &str) -> Result<Vec<Step>>;
    /// Ends every live instance of a journey with `status` and `reason`; returns how many.
    async fn end_live_instances(
        &self,
        journey_id: &str,
        status: Status,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64>;

    async fn get_profile(&self, id: &str) -> Result<Option<Profile>>;
    /// Creates or replaces a profile's attributes and zone.
    async fn put_profile(
        &self,
        id: &str,
        attributes: Value,
        timezone: Option<String>,
        now: Timestamp,
    ) -> Result<Profile>;
    /// Applies a merge patch to a profile's attributes (creating it if needed); a given
    /// `timezone` replaces the zone (`Some(None)` clears it).
    async fn patch_profile(
        &self,
        id: &str,
        patch: Value,
        timezone: Option<Option<String>>,
        now: Timestamp,
    ) -> Result<Profile>;

    async fn put_draft(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    async fn get_journey(&self, id: &str) -> Result<Option<JourneyRecord>>;
    async fn list_journeys(&self) -> Result<Vec<JourneyRecord>>;
    /// Stores a new version and makes the journey live; returns the version number.
    async fn publish(&self, id: &str, definition: Value, now: Timestamp) -> Result<u32>;
    async fn set_journey_status(
        &self,
        id: &str,
        status: JourneyStatus,
        now: Timestamp,
    ) -> Result<()>;
    /// Every published version of every journey.
    async fn versions(&self) -> Result<Vec<VersionRecord>>;
}
