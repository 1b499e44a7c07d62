//! Durable state behind traits, one per concern.
//!
//! Owns what survives a restart: events (with their processed mark), profiles, instances
//! with their pending timers, step events, journeys and their published versions, runs,
//! alerts, report counters and message templates. Each concern is a trait ([`EventStore`], [`PartitionStore`],
//! [`InstanceStore`], [`ProfileStore`], [`AudienceStore`], [`JourneyStore`], [`RunStore`],
//! [`AlertStore`], [`ReportStore`], [`TemplateStore`], [`OutboxStore`]); [`Store`] is all of them, what a backend implements.
//! The embedded backend is SQLite ([`sqlite`], one file per concern); the PostgreSQL
//! backend ([`postgres`], being built: the concerns it implements pass the same
//! conformance cases, `conformance`) is the cluster's.
//!
//! The store never interprets journeys or runs steps, and never imports the runtime: it
//! keeps the records the runtime and the API hand it ([`crate::journal`], [`batch`],
//! [`records`]), and a write it has acknowledged is durable.

mod batch;
#[cfg(test)]
pub(crate) mod conformance;
pub mod postgres;
mod records;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

pub use batch::{
    FeedbackCount, HeldEntry, LastEntry, Membership, ProcessedEvent, ProfileMerge, ProfileState,
    ProfileWrite, Transition, WriteBatch, stored_time,
};
pub use records::{
    AudienceRecord, ConsentChange, Conversion, DueTimer, EventRecord, JourneyRecord, JourneyStatus,
    NodeCount, OutboxRecord, Pause, Publication, RunRecord, RunStatus, SentMessage, Suppression,
    TemplateRecord, TestMode, VersionInfo, VersionRecord,
};

use crate::journal::{Instance, Step};
use crate::model::{Event, Profile};

pub type Result<T> = anyhow::Result<T>;

/// Every concern of durable state: what a backend implements (each trait on its own),
/// and what the runtime holds (`Arc<dyn Store>`). Every method that writes returns only
/// once the write is durable.
pub trait Store:
    EventStore
    + PartitionStore
    + InstanceStore
    + ProfileStore
    + AudienceStore
    + JourneyStore
    + RunStore
    + AlertStore
    + ReportStore
    + TemplateStore
    + OutboxStore
    + ConsentStore
    + DeliveryStore
{
}

impl<T> Store for T where
    T: EventStore
        + PartitionStore
        + InstanceStore
        + ProfileStore
        + AudienceStore
        + JourneyStore
        + RunStore
        + AlertStore
        + ReportStore
        + TemplateStore
        + OutboxStore
        + ConsentStore
        + DeliveryStore
{
}

/// Accepted events: stored once each, read back in arrival order.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores new events; returns, for each, its place in the store's order (`seq`,
    /// rising) if it was new, `None` for a repeat of an id already stored (which is not
    /// processed again).
    async fn ingest(&self, events: &[Event]) -> Result<Vec<Option<i64>>>;
    /// Events not yet processed, oldest first, after sequence `after`.
    async fn unprocessed_events(&self, after: i64, limit: usize) -> Result<Vec<(i64, Event)>>;
    async fn get_event(&self, id: &str) -> Result<Option<EventRecord>>;
    /// Events of the given types received in `[from, to)`, in the order they arrived.
    async fn events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        types: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<Event>>;
}

/// What a partition loads before a batch and commits after it. Only partitions call
/// `commit`: it is the one writer of instances, profiles and memberships.
#[async_trait]
pub trait PartitionStore: Send + Sync + 'static {
    /// The state of several profiles, read together (one round trip for a batch).
    async fn profile_states(
        &self,
        profile_ids: Vec<String>,
    ) -> Result<HashMap<String, ProfileState>>;
    /// Commits a partition batch atomically.
    async fn commit(&self, batch: Arc<WriteBatch>) -> Result<()>;
    /// Profile merges recorded and not applied yet, oldest first.
    async fn pending_merges(&self) -> Result<Vec<ProfileMerge>>;
    /// Rows written (inserted, updated or deleted; index entries not counted) since the
    /// store opened, if the backend counts them: operators divide it by the events
    /// accepted to see what each costs the store.
    fn rows_written(&self) -> Option<u64> {
        None
    }
}

/// Instances, their timers and their step events, as the partitions wrote them.
#[async_trait]
pub trait InstanceStore: Send + Sync + 'static {
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
    /// Live instances (active or waiting) of a journey at one node, oldest first, at most
    /// `limit` after the instance `after` (any instance id, the cursor of the previous
    /// page); `None` when `after` names no instance. Reads the journey's live instances,
    /// not its ended ones: no index is kept per node, whose every step would write it.
    async fn live_at_node(
        &self,
        journey_id: &str,
        node: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Instance>>>;
    async fn steps_of_instance(&self, instance_id: &str) -> Result<Vec<Step>>;
    /// The steps an accepted event caused (steps naming an event the store never
    /// ingested are found by their instance only).
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
    /// Waiting instances of a journey held before an action node: (id, profile, wake).
    async fn held_instances(&self, journey_id: &str) -> Result<Vec<DueTimer>>;
}

/// Profiles, their identities, audiences and audience transitions.
#[async_trait]
pub trait ProfileStore: Send + Sync + 'static {
    /// A profile with its aliases.
    async fn get_profile(&self, id: &str) -> Result<Option<Profile>>;
    /// The profile an alias belongs to.
    async fn resolve_identity(&self, namespace: &str, value: &str) -> Result<Option<String>>;
    /// Profile ids in order, after `after`.
    async fn profile_ids(&self, after: Option<String>, limit: usize) -> Result<Vec<String>>;
    /// Profiles (with their aliases) in id order, after `after`, at most `limit`.
    async fn profiles_page(&self, after: Option<String>, limit: usize) -> Result<Vec<Profile>>;
    /// The audiences a profile belongs to, with the time it joined.
    async fn profile_audiences(&self, profile_id: &str) -> Result<Vec<(String, Timestamp)>>;
    /// Recorded audience transitions of a profile, oldest first.
    async fn profile_transitions(&self, profile_id: &str) -> Result<Vec<Transition>>;
}

/// Audience definitions and members, and capping rules.
#[async_trait]
pub trait AudienceStore: Send + Sync + 'static {
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
    /// Creates or replaces a capping rule.
    async fn put_capping_rule(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    /// Every capping rule (id, definition).
    async fn capping_rules(&self) -> Result<Vec<(String, Value)>>;
}

/// Journeys: drafts, published versions, lifecycle status, test mode, and the entries a
/// pause holds.
#[async_trait]
pub trait JourneyStore: Send + Sync + 'static {
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
    /// One published version.
    async fn version(&self, id: &str, version: u32) -> Result<Option<VersionRecord>>;
    /// Starts (`Some`) or ends test mode for a journey's draft.
    async fn set_test_mode(&self, id: &str, test: Option<TestMode>) -> Result<()>;
    /// Held entries of a journey in holding order, after `after`.
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
}

/// Runs of read-audience journeys and business-event fan-outs.
#[async_trait]
pub trait RunStore: Send + Sync + 'static {
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
}

/// Alert rules and their state.
#[async_trait]
pub trait AlertStore: Send + Sync + 'static {
    /// Creates or replaces an alert rule (its state is kept).
    async fn put_alert(&self, id: &str, definition: Value, now: Timestamp) -> Result<()>;
    /// Deletes an alert rule; whether it existed.
    async fn delete_alert(&self, id: &str) -> Result<bool>;
    /// Every alert rule: (id, definition, state).
    async fn alerts(&self) -> Result<Vec<(String, Value, Option<Value>)>>;
    async fn set_alert_state(&self, id: &str, state: Value) -> Result<()>;
}

/// Message templates, every version kept.
#[async_trait]
pub trait TemplateStore: Send + Sync + 'static {
    /// Stores `definition` as a template's next version, unless it equals the latest;
    /// returns the latest version's number either way.
    async fn put_template(&self, id: &str, definition: Value, now: Timestamp) -> Result<u32>;
    /// One version of a template, or its latest.
    async fn get_template(&self, id: &str, version: Option<u32>) -> Result<Option<TemplateRecord>>;
    /// The latest version of every template, in id order.
    async fn list_templates(&self) -> Result<Vec<TemplateRecord>>;
    /// Every version of a template, oldest first.
    async fn template_versions(&self, id: &str) -> Result<Vec<TemplateRecord>>;
}

/// Messages the `outbox` provider kept instead of sending them.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Keeps a message unless one with its id is kept already; whether it was new.
    async fn put_outbox(&self, message: OutboxRecord) -> Result<bool>;
    /// Kept messages in the order they were kept, after `after` (a `seq`), of one
    /// profile or all: (seq, message).
    async fn outbox_page(
        &self,
        profile_id: Option<String>,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, OutboxRecord)>>;
}

/// Subscription groups, the log of consent changes, the suppression list, and the
/// secret that signs the links of messages.
#[async_trait]
pub trait ConsentStore: Send + Sync + 'static {
    async fn put_subscription_group(
        &self,
        id: &str,
        definition: Value,
        now: Timestamp,
    ) -> Result<()>;
    /// Every subscription group: (id, definition), in id order.
    async fn subscription_groups(&self) -> Result<Vec<(String, Value)>>;
    /// A profile's consent changes in the order they were committed, after `after` (a
    /// `seq`): (seq, change). The changes themselves are written by a partition's commit
    /// ([`WriteBatch::consent`]).
    async fn consent_changes(
        &self,
        profile_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, ConsentChange)>>;
    /// Puts an address on the suppression list (replacing its reason); whether it was new.
    async fn put_suppression(&self, suppression: Suppression) -> Result<bool>;
    /// An address's entry on the suppression list, if it is on it.
    async fn suppression(&self, address: &str) -> Result<Option<Suppression>>;
    /// Takes an address off the list; whether it was on it.
    async fn delete_suppression(&self, address: &str) -> Result<bool>;
    /// Suppressed addresses in address order, after `after`.
    async fn suppressions(&self, after: Option<String>, limit: usize) -> Result<Vec<Suppression>>;
    /// The secret that signs unsubscribe links: made (32 random bytes) and kept the first
    /// time it is asked for, the same afterwards.
    async fn link_secret(&self) -> Result<Vec<u8>>;
}

/// Messages providers accepted, found by their id when delivery feedback arrives.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Records a message a provider accepted (the same id again is kept once).
    async fn put_sent(&self, message: SentMessage) -> Result<()>;
    async fn sent_message(&self, message_id: &str) -> Result<Option<SentMessage>>;
}

/// What journey reports read: live instances by node, step counts, conversions.
#[async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Live instances of a journey by version and node: (version, node, count).
    async fn live_by_node(&self, journey_id: &str) -> Result<Vec<(u32, String, u64)>>;
    /// Step counts of a journey (every version), by hour.
    async fn node_counts(&self, journey_id: &str) -> Result<Vec<NodeCount>>;
    /// Per split branch of a journey: profiles assigned and converted by `success`.
    async fn conversions(&self, journey_id: &str, success: &str) -> Result<Vec<Conversion>>;
}
