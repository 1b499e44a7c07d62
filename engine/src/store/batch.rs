//! What a partition reads and commits: the state of its profiles, and the batch of
//! changes it writes atomically (profiles, memberships, instances, steps, held entries,
//! merges).
//!
//! These are plain records; this module must never read or write anything itself.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{Instance, Step};
use crate::model::Profile;
use crate::store::ConsentChange;

/// Everything one partition batch changes, committed atomically.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Events whose processing this batch completes.
    pub processed_events: Vec<ProcessedEvent>,
    /// Profiles to insert or replace (attributes, zone), in their final state.
    pub profiles: Vec<ProfileWrite>,
    /// Profiles to delete (with their aliases and memberships).
    pub profile_deletes: Vec<String>,
    /// Deleted profiles whose personal data is erased from their events, steps and
    /// instances, after this batch's own instances and steps are written (a deletion, not
    /// a merge).
    pub profile_erasures: Vec<String>,
    /// Audience memberships that begin (`since` set) or end (`since` empty).
    pub memberships: Vec<Membership>,
    /// Audience entries and exits, for the record.
    pub transitions: Vec<Transition>,
    /// Entries counted by capping rules (profile, rule, time).
    pub capping: Vec<(String, String, Timestamp)>,
    /// Counted entries no rule reads any more, deleted: (profile, rule, time before which
    /// they go). Applied before `capping`.
    pub capping_expired: Vec<(String, String, Timestamp)>,
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
    /// Consent changes the batch's profile writes made, for the record.
    pub consent: Vec<ConsentChange>,
    /// Delivery feedback the batch's events carried, counted for their message nodes'
    /// reports.
    pub feedback: Vec<FeedbackCount>,
}

/// An event a batch processed: its id and its place in the store's order (the `seq`
/// that ingest gave it), by which the store marks it and finds it for the batch's steps
/// without looking its id up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedEvent {
    pub seq: i64,
    pub id: String,
}

/// One piece of delivery feedback about a message a node sent.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackCount {
    pub journey_id: String,
    pub version: u32,
    pub node: String,
    /// `delivered`, `bounced`, `opened`, `clicked`, `complained`.
    pub kind: String,
    pub at: Timestamp,
}

impl WriteBatch {
    /// Appends everything of `other` after this batch's own.
    pub fn absorb(&mut self, other: WriteBatch) {
        let WriteBatch {
            processed_events,
            profiles,
            profile_deletes,
            profile_erasures,
            memberships,
            transitions,
            capping,
            capping_expired,
            instances,
            steps,
            held,
            released,
            merges,
            merges_done,
            consent,
            feedback,
        } = other;
        self.processed_events.extend(processed_events);
        self.profiles.extend(profiles);
        self.profile_deletes.extend(profile_deletes);
        self.profile_erasures.extend(profile_erasures);
        self.memberships.extend(memberships);
        self.transitions.extend(transitions);
        self.capping.extend(capping);
        self.capping_expired.extend(capping_expired);
        self.instances.extend(instances);
        self.steps.extend(steps);
        self.held.extend(held);
        self.released.extend(released);
        self.merges.extend(merges);
        self.merges_done.extend(merges_done);
        self.consent.extend(consent);
        self.feedback.extend(feedback);
    }

    pub fn is_empty(&self) -> bool {
        self.processed_events.is_empty()
            && self.profiles.is_empty()
            && self.profile_deletes.is_empty()
            && self.profile_erasures.is_empty()
            && self.memberships.is_empty()
            && self.transitions.is_empty()
            && self.capping.is_empty()
            && self.capping_expired.is_empty()
            && self.instances.is_empty()
            && self.steps.is_empty()
            && self.consent.is_empty()
            && self.feedback.is_empty()
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
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProfileState {
    pub profile: Option<Profile>,
    /// Instances still active or waiting.
    pub live: Vec<Instance>,
    /// For each journey the profile ever entered (by [`crate::journal::entry_key`]): its
    /// latest entry.
    pub last_entered: HashMap<String, LastEntry>,
    /// Audiences the profile belongs to, with the time it joined.
    pub audiences: BTreeMap<String, Timestamp>,
    /// Entries counted by capping rules (rule, time).
    pub capping: Vec<(String, Timestamp)>,
}

/// A time as the store keeps it: cut to microseconds.
pub fn stored_time(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// A profile's latest entry into a journey. Entries compare as the latest is chosen:
/// by the time they were processed (`entered_at`, in the store's microseconds), then by
/// their entry time, then by instance id, so that a batch's working set and a read of
/// the store agree on which is the latest whatever the order they were admitted in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LastEntry {
    /// When the entry was processed (the instance's `entered_at`), in microseconds.
    pub entered_at: Timestamp,
    /// The entry time: the event's time for an entry by an event (see
    /// `InstanceData::entry_at`), re-entrance rules are judged by it.
    pub at: Timestamp,
    /// The instance it created.
    pub id: String,
}

impl LastEntry {
    pub fn new(entered_at: Timestamp, at: Timestamp, id: String) -> Self {
        LastEntry {
            entered_at: stored_time(entered_at),
            at,
            id,
        }
    }

    /// Records `entry` under `key` unless a later entry is there already.
    pub fn record(latest: &mut HashMap<String, LastEntry>, key: String, entry: LastEntry) {
        match latest.get_mut(&key) {
            Some(slot) if *slot >= entry => {}
            Some(slot) => *slot = entry,
            None => {
                latest.insert(key, entry);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_entry_is_the_same_whatever_the_order_it_was_recorded_in() {
        let t = |s: i64| Timestamp::from_second(s).expect("a time");
        let entries = [
            LastEntry::new(t(10), t(9), "b".into()),
            // Processed at the same time, with the same entry time: the larger id.
            LastEntry::new(t(10), t(9), "c".into()),
            LastEntry::new(t(10), t(8), "z".into()),
            // Processed earlier, whatever its entry time.
            LastEntry::new(t(5), t(20), "a".into()),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
            let mut latest = HashMap::new();
            for i in order {
                LastEntry::record(&mut latest, "j".into(), entries[i].clone());
            }
            assert_eq!(latest["j"], entries[1], "{order:?}");
        }
        // The processing time is kept in the store's microseconds.
        let ns = Timestamp::from_nanosecond(1_000_000_001_999).expect("a time");
        assert_eq!(
            LastEntry::new(ns, ns, "x".into()).entered_at,
            Timestamp::from_microsecond(1_000_000_001).expect("a time")
        );
    }
}
