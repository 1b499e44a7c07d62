//! The partition's cache of its profiles' committed states.
//!
//! Owns a bounded map, least recently used first out (`partition_cache_profiles` per
//! partition; 0, the default, keeps none), from a profile id to the state the store
//! would read for it after the partition's last commit: the profile with its aliases,
//! its live instances, its last entry per journey, its memberships and its counted
//! capping entries; and the ids of the profiles committed lately, so that a state is
//! kept only for a profile seen a second time (one seen once would push out a state
//! that is used). A partition is the only writer of its profiles' states, so a batch
//! takes a cached profile's state instead of reading it, and gives it back once its
//! commit is durable.
//!
//! It must never hold a state that is not durable (states come back only after the
//! commit), nor one the commit changed in a way the working set does not model (a
//! deletion, an erasure, a merge: those profiles are read from the store again). What
//! it hands back is what the store would answer, timestamps cut to the store's
//! microseconds included (a timer's instance is recognised by its exact `wake_at`). In
//! debug builds every hit is compared with the store's read ([`same_as_stored`]); the
//! test suite runs with a small cache, so it checks that promise.

use std::collections::{HashMap, HashSet};

use hashlink::LruCache;
use jiff::Timestamp;

use super::batch::ProfileWork;
use crate::journal::Instance;
use crate::store::{ProfileState, WriteBatch, stored_time as stored};

pub(super) struct StateCache {
    /// `None` when the cache is off.
    states: Option<LruCache<String, ProfileState>>,
    /// The ids of the profiles batches committed lately, as many as `states` holds: a
    /// state is kept only for a profile seen again while its id is here. A profile seen
    /// once (a first event, a timer due after days, one entry of an audience run) costs
    /// an id here, not a state pushing out one that is used.
    seen: LruCache<String, ()>,
}

impl StateCache {
    pub(super) fn new(capacity: usize) -> Self {
        StateCache {
            states: (capacity > 0).then(|| LruCache::new(capacity)),
            seen: LruCache::new(capacity.max(1)),
        }
    }

    /// Takes the cached states of `ids` out of the cache (the batch holds them until its
    /// commit gives them back).
    pub(super) fn take(&mut self, ids: &[String]) -> HashMap<String, ProfileState> {
        let Some(states) = &mut self.states else {
            return HashMap::new();
        };
        ids.iter()
            .filter_map(|id| states.remove(id).map(|s| (id.clone(), s)))
            .collect()
    }

    /// Keeps the states a durable batch leaves its profiles in, for the profiles seen
    /// lately (the others are only noted as seen); an `unmodelled` batch keeps none of
    /// them (see [`unmodelled`]). `cached` are the profiles the batch took from the
    /// cache: they go back.
    pub(super) fn keep(
        &mut self,
        profiles: HashMap<String, ProfileWork>,
        cached: &HashSet<String>,
        unmodelled: bool,
    ) {
        let Some(states) = &mut self.states else {
            return;
        };
        for (id, work) in profiles {
            if unmodelled {
                states.remove(&id);
            } else if cached.contains(&id) || self.seen.remove(&id).is_some() {
                states.insert(id, committed(work));
            } else {
                self.seen.insert(id, ());
            }
        }
    }
}

/// Whether a batch's write changes profile rows beyond what its working set tracks
/// (deletes, erases or merges profiles): its profiles are read from the store again.
pub(super) fn unmodelled(write: &WriteBatch) -> bool {
    !write.profile_deletes.is_empty()
        || !write.profile_erasures.is_empty()
        || !write.merges.is_empty()
        || !write.merges_done.is_empty()
}

fn stored_instance(mut i: Instance) -> Instance {
    i.entered_at = stored(i.entered_at);
    i.updated_at = stored(i.updated_at);
    i.ended_at = i.ended_at.map(stored);
    i.wake_at = i.wake_at.map(stored);
    i.deadline = stored(i.deadline);
    i
}

/// The state the store holds for a profile once its batch is durable: what a read would
/// answer (live instances only, in entry order; capping entries in time order).
fn committed(work: ProfileWork) -> ProfileState {
    let profile = work.exists.then(|| {
        let mut p = work.profile;
        p.created_at = stored(p.created_at);
        p.updated_at = stored(p.updated_at);
        p
    });
    let mut live: Vec<Instance> = work
        .instances
        .into_iter()
        .filter(|i| i.status.is_live())
        .map(stored_instance)
        .collect();
    live.sort_by_key(|i| i.entered_at);
    let mut capping: Vec<(String, Timestamp)> = work
        .capping
        .into_iter()
        .map(|(rule, at)| (rule, stored(at)))
        .collect();
    capping.sort_by_key(|(_, at)| *at);
    ProfileState {
        profile,
        live,
        last_entered: work.last_entered,
        audiences: work
            .audiences
            .into_iter()
            .map(|(a, since)| (a, stored(since)))
            .collect(),
        capping,
    }
}

/// Where a cached state differs from the store's read of the same profile (`None` when
/// they agree): instances and capping entries compared in a canonical order, since the
/// store does not order ties.
pub(super) fn same_as_stored(cached: &ProfileState, read: &ProfileState) -> Option<String> {
    fn canonical(s: &ProfileState) -> ProfileState {
        let mut live = s.live.clone();
        live.sort_by(|a, b| (a.entered_at, &a.id).cmp(&(b.entered_at, &b.id)));
        let mut capping = s.capping.clone();
        capping.sort();
        ProfileState {
            profile: s.profile.clone(),
            live,
            last_entered: s.last_entered.clone(),
            audiences: s.audiences.clone(),
            capping,
        }
    }
    let (a, b) = (canonical(cached), canonical(read));
    if a == b {
        return None;
    }
    fn differs<T: PartialEq + std::fmt::Debug>(name: &str, a: &T, b: &T) -> Option<String> {
        (a != b).then(|| format!("{name} {a:?} vs {b:?}"))
    }
    let parts: Vec<String> = [
        differs("profile", &a.profile, &b.profile),
        differs("live", &a.live, &b.live),
        differs("last_entered", &a.last_entered, &b.last_entered),
        differs("audiences", &a.audiences, &b.audiences),
        differs("capping", &a.capping, &b.capping),
    ]
    .into_iter()
    .flatten()
    .collect();
    Some(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::journal::{InstanceData, Status};
    use crate::store::LastEntry;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn instance(id: &str, status: Status, entered: &str) -> Instance {
        Instance {
            id: id.into(),
            journey_id: "welcome".into(),
            version: 1,
            profile_id: "p1".into(),
            status,
            node: Some("wait".into()),
            entered_at: at(entered),
            updated_at: at("2026-12-06T10:00:01.000000999Z"),
            ended_at: None,
            wake_at: Some(at("2026-12-06T11:00:00.123456789Z")),
            deadline: at("2027-01-06T10:00:00.5Z"),
            end_reason: None,
            data: InstanceData {
                event: json!({"type": "signup"}),
                ..InstanceData::default()
            },
        }
    }

    /// A working set after a batch: one instance still waiting, one ended in the batch,
    /// capping entries out of order, times with nanoseconds.
    fn work() -> ProfileWork {
        let now = at("2026-12-06T10:00:00.123456789Z");
        let state = ProfileState {
            profile: Some(crate::model::Profile {
                id: "p1".into(),
                attributes: json!({"tier": "gold"}),
                timezone: None,
                aliases: BTreeMap::from([("email".into(), "a@example.com".into())]),
                created_at: now,
                updated_at: now,
            }),
            live: vec![
                instance("i2", Status::Waiting, "2026-12-06T10:00:00.000002001Z"),
                instance("i1", Status::Completed, "2026-12-06T09:00:00Z"),
                instance("i0", Status::Waiting, "2026-12-06T08:00:00Z"),
            ],
            last_entered: HashMap::from([(
                "welcome".into(),
                LastEntry::new(now, now, "i2".into()),
            )]),
            audiences: BTreeMap::from([("vip".into(), now)]),
            capping: vec![
                ("daily".into(), at("2026-12-06T10:00:00.000000001Z")),
                ("daily".into(), at("2026-12-05T10:00:00Z")),
            ],
        };
        ProfileWork::new("p1", state, now)
    }

    /// Two batches commit `id` (read from the store both times): its state is kept.
    fn kept(cache: &mut StateCache, id: &str) {
        for _ in 0..2 {
            let cached = HashSet::new();
            cache.keep(HashMap::from([(id.to_string(), work())]), &cached, false);
        }
    }

    #[test]
    fn a_profile_seen_once_leaves_no_state_and_one_taken_goes_back() {
        let mut cache = StateCache::new(8);
        let none = HashSet::new();
        cache.keep(HashMap::from([("p1".into(), work())]), &none, false);
        assert!(cache.take(&["p1".into()]).is_empty(), "seen once: not kept");
        cache.keep(HashMap::from([("p1".into(), work())]), &none, false);
        let taken = cache.take(&["p1".into()]);
        assert_eq!(taken.len(), 1, "seen twice: kept");
        // Taken by a batch, it comes back with the batch's commit.
        let from_cache: HashSet<String> = taken.into_keys().collect();
        cache.keep(HashMap::from([("p1".into(), work())]), &from_cache, false);
        assert_eq!(cache.take(&["p1".into()]).len(), 1);
    }

    #[test]
    fn a_kept_state_is_what_the_store_would_read() {
        let mut cache = StateCache::new(8);
        kept(&mut cache, "p1");
        let mut taken = cache.take(&["p1".into(), "p2".into()]);
        assert_eq!(taken.len(), 1, "only p1 was kept");
        let state = taken.remove("p1").expect("p1");
        // Ended instances leave; the live ones come in entry order.
        let ids: Vec<&str> = state.live.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i0", "i2"]);
        // Every time the store keeps in a column is cut to microseconds.
        let i2 = &state.live[1];
        assert_eq!(i2.entered_at, at("2026-12-06T10:00:00.000002Z"));
        assert_eq!(i2.updated_at, at("2026-12-06T10:00:01Z"));
        assert_eq!(i2.wake_at, Some(at("2026-12-06T11:00:00.123456Z")));
        assert_eq!(i2.deadline, at("2027-01-06T10:00:00.5Z"));
        let profile = state.profile.as_ref().expect("the profile");
        assert_eq!(profile.created_at, at("2026-12-06T10:00:00.123456Z"));
        assert_eq!(state.audiences["vip"], at("2026-12-06T10:00:00.123456Z"));
        assert_eq!(
            state.capping,
            [
                ("daily".to_string(), at("2026-12-05T10:00:00Z")),
                ("daily".to_string(), at("2026-12-06T10:00:00Z")),
            ]
        );
        // The entry time is the instance's data (JSON keeps nanoseconds): kept as is.
        let welcome = &state.last_entered["welcome"];
        assert_eq!(welcome.at, at("2026-12-06T10:00:00.123456789Z"));
        assert_eq!(welcome.entered_at, at("2026-12-06T10:00:00.123456Z"));
        // Taken means held by the batch: not in the cache until its commit.
        assert!(cache.take(&["p1".into()]).is_empty());
    }

    #[test]
    fn a_batch_that_deletes_or_merges_leaves_its_profiles_to_the_store() {
        let mut cache = StateCache::new(8);
        kept(&mut cache, "p1");
        // p1 was loaded from the store by a batch that deleted a profile.
        cache.keep(
            HashMap::from([("p1".into(), work())]),
            &HashSet::new(),
            true,
        );
        assert!(cache.take(&["p1".into()]).is_empty());
        let mut write = WriteBatch::default();
        assert!(!unmodelled(&write));
        write.profile_deletes.push("p1".into());
        assert!(unmodelled(&write));
    }

    #[test]
    fn the_least_recently_used_leaves_first_and_zero_keeps_none() {
        let mut cache = StateCache::new(2);
        for id in ["a", "b", "c"] {
            kept(&mut cache, id);
        }
        let ids = ["a".to_string(), "b".into(), "c".into()];
        let mut held: Vec<String> = cache.take(&ids).into_keys().collect();
        held.sort();
        assert_eq!(held, ["b", "c"]);
        let mut off = StateCache::new(0);
        kept(&mut off, "a");
        assert!(off.take(&ids).is_empty());
    }

    #[test]
    fn a_difference_from_the_store_is_named() {
        let mut cache = StateCache::new(1);
        kept(&mut cache, "p1");
        let state = cache.take(&["p1".into()]).remove("p1").expect("p1");
        assert_eq!(same_as_stored(&state, &state.clone()), None);
        let mut read = state.clone();
        read.live.reverse();
        read.capping.reverse();
        assert_eq!(
            same_as_stored(&state, &read),
            None,
            "order of ties is not compared"
        );
        read.audiences.clear();
        let diff = same_as_stored(&state, &read).expect("a difference");
        assert!(diff.starts_with("audiences"), "{diff}");
    }
}
