//! The working set of one batch and its commit.
//!
//! Owns what a batch knows of each profile it touches (state, instances, memberships,
//! entry history), the writes it collects, and the commit that makes them durable in one
//! store write with bounded retries (then the partition reports itself unhealthy). Reads
//! every profile's state once per batch (from the partition's cache when it holds it),
//! and gives the cache the states a durable batch leaves. Never decides what happens to
//! an instance: the other rooms do, and record their decisions here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexSet;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::compile::Journey;
use tokio::sync::oneshot;

use super::Partition;
use crate::journal::{Instance, Status};
use crate::model::Profile;
use crate::runtime::Msg;
use crate::runtime::audiences::AudienceSet;
use crate::runtime::journeys::JourneySet;
use crate::runtime::profile_ops::ProfileView;
use crate::store::{LastEntry, ProfileState, ProfileWrite, WriteBatch};

/// The first wait before a failed commit or read is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a batch knows of one profile.
pub(super) struct ProfileWork {
    pub(super) exists: bool,
    /// The stored form: attributes, zone, aliases.
    pub(super) profile: Profile,
    /// The profile as expressions see it.
    pub(super) doc: Value,
    /// The stored row must be written.
    pub(super) dirty: bool,
    /// The aliases changed in this batch.
    pub(super) aliases_changed: bool,
    /// Audience predicates must be evaluated again.
    pub(super) needs_eval: bool,
    /// Live instances, plus those created or ended in this batch.
    pub(super) instances: Vec<Instance>,
    /// Entry key (journey, draft apart) -> the latest entry.
    pub(super) last_entered: HashMap<String, LastEntry>,
    /// Audience -> time the profile joined.
    pub(super) audiences: BTreeMap<String, Timestamp>,
    /// The audience names, shared with expressions (`in_audience`).
    pub(super) member_of: Arc<BTreeSet<String>>,
    /// Entries counted by capping rules.
    pub(super) capping: Vec<(String, Timestamp)>,
}

impl ProfileWork {
    /// Counts an entry or a send under `key` (a capping rule, a frequency cap's
    /// channel and category) at `at`, after dropping the profile's counts under `key`
    /// older than `since` (nothing reads them any more); both go to `write`, so the
    /// store keeps what this state holds.
    pub(super) fn count(
        &mut self,
        write: &mut WriteBatch,
        key: String,
        since: Timestamp,
        at: Timestamp,
    ) {
        let counted = self.capping.len();
        self.capping.retain(|(k, t)| *k != key || *t >= since);
        if self.capping.len() < counted {
            write
                .capping_expired
                .push((self.profile.id.clone(), key.clone(), since));
        }
        self.capping.push((key.clone(), at));
        write.capping.push((self.profile.id.clone(), key, at));
    }

    pub(super) fn new(profile_id: &str, state: ProfileState, now: Timestamp) -> Self {
        let exists = state.profile.is_some();
        let profile = state.profile.unwrap_or_else(|| Profile {
            id: profile_id.to_string(),
            attributes: Value::Object(Map::new()),
            timezone: None,
            aliases: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        });
        let member_of = Arc::new(state.audiences.keys().cloned().collect());
        ProfileWork {
            exists,
            doc: profile.to_json(),
            profile,
            dirty: false,
            aliases_changed: false,
            needs_eval: false,
            instances: state.live,
            last_entered: state.last_entered,
            audiences: state.audiences,
            member_of,
            capping: state.capping,
        }
    }

    /// Creates the profile (empty) if it does not exist.
    pub(super) fn ensure_exists(&mut self, now: Timestamp) {
        if !self.exists {
            self.exists = true;
            self.profile.attributes = Value::Object(Map::new());
            self.profile.created_at = now;
            self.changed(now);
        }
    }

    /// The stored profile changed: rebuild the expression view, write it, re-evaluate.
    pub(super) fn changed(&mut self, now: Timestamp) {
        self.profile.updated_at = now;
        self.doc = self.profile.to_json();
        self.dirty = true;
        self.needs_eval = true;
    }

    pub(super) fn set_member(&mut self, audience: &str, since: Option<Timestamp>) {
        match since {
            Some(at) => self.audiences.insert(audience.to_string(), at),
            None => self.audiences.remove(audience),
        };
        self.member_of = Arc::new(self.audiences.keys().cloned().collect());
    }

    pub(super) fn view(&self) -> Option<ProfileView> {
        self.exists.then(|| ProfileView {
            profile: self.profile.clone(),
            audiences: self.audiences.keys().cloned().collect(),
        })
    }
}

/// An admitted instance whose first node has not run yet.
pub(super) struct Start {
    pub(super) journey: Arc<Journey>,
    pub(super) instance: Instance,
    pub(super) event_id: Option<String>,
}

/// An answer sent once the batch is durable, built from the batch's final state.
pub(super) type Reply = Box<dyn FnOnce(&HashMap<String, ProfileWork>) + Send>;

/// Everything one batch has read and changed.
pub(super) struct Batch {
    pub(super) set: Arc<JourneySet>,
    pub(super) audiences: Arc<AudienceSet>,
    pub(super) profiles: HashMap<String, ProfileWork>,
    /// (profile, instance) pairs changed in this batch, in order.
    pub(super) dirty: IndexSet<(String, String)>,
    pub(super) write: WriteBatch,
    pub(super) acks: Vec<oneshot::Sender<()>>,
    pub(super) replies: Vec<Reply>,
    pub(super) starts: Vec<Start>,
    pub(super) new_timer: bool,
    /// Distinguishes audience transitions of one batch.
    pub(super) transition_seq: u64,
    /// When each event of the batch was received (for its latency once durable).
    pub(super) received: Vec<Timestamp>,
    /// Profiles with messages set aside before this batch (waiting for a call).
    pub(super) parked_before: Arc<HashSet<String>>,
    /// Messages set aside in this batch: their profile waits for a call's answer.
    pub(super) parked: Vec<Msg>,
    /// Profiles whose calls all answered in this batch: what they set aside goes on.
    pub(super) unparked: Vec<String>,
    /// Profiles whose states came from the partition's cache (they go back to it).
    pub(super) from_cache: HashSet<String>,
}

impl Batch {
    pub(super) fn new(set: Arc<JourneySet>, audiences: Arc<AudienceSet>) -> Self {
        Batch {
            set,
            audiences,
            profiles: HashMap::new(),
            dirty: IndexSet::new(),
            write: WriteBatch::default(),
            acks: Vec::new(),
            replies: Vec::new(),
            starts: Vec::new(),
            new_timer: false,
            transition_seq: 0,
            received: Vec::new(),
            parked_before: Arc::default(),
            parked: Vec::new(),
            unparked: Vec::new(),
            from_cache: HashSet::new(),
        }
    }

    /// Whether the profile has an instance waiting for the answer of a call that left
    /// its batch.
    pub(super) fn calling(&self, profile_id: &str) -> bool {
        self.profiles.get(profile_id).is_some_and(|w| {
            w.instances
                .iter()
                .any(|i| i.status == Status::Waiting && i.data.calling.is_some())
        })
    }

    /// Whether the profile has messages set aside (before or in this batch).
    pub(super) fn has_parked(&self, profile_id: &str) -> bool {
        self.parked_before.contains(profile_id)
            || self.parked.iter().any(|m| m.profile_id() == profile_id)
    }

    /// Takes in what a lane did on its part of this batch.
    pub(super) fn absorb(&mut self, lane: Batch) {
        let Batch {
            set: _,
            audiences: _,
            profiles,
            dirty,
            write,
            acks,
            replies,
            starts,
            new_timer,
            transition_seq: _,
            received,
            parked_before: _,
            parked,
            unparked,
            from_cache: _,
        } = lane;
        self.profiles.extend(profiles);
        self.dirty.extend(dirty);
        self.write.absorb(write);
        self.acks.extend(acks);
        self.replies.extend(replies);
        self.starts.extend(starts);
        self.new_timer |= new_timer;
        self.received.extend(received);
        self.parked.extend(parked);
        self.unparked.extend(unparked);
    }

    fn mark_dirty(&mut self, profile_id: &str, instance_id: &str) {
        self.dirty
            .insert((profile_id.to_string(), instance_id.to_string()));
    }
}

impl Partition {
    /// Makes the batch durable, then answers what waited for it and keeps its
    /// profiles' states in the partition's cache.
    pub(super) async fn commit(&mut self, mut batch: Batch) {
        // An instance that ended in this batch leaves the working set for the write:
        // nothing after the commit reads it (the cache keeps live instances only, the
        // replies read profiles), so it is moved rather than copied.
        for (profile_id, instance_id) in std::mem::take(&mut batch.dirty) {
            let Some(work) = batch.profiles.get_mut(&profile_id) else {
                continue;
            };
            let Some(pos) = work.instances.iter().position(|i| i.id == instance_id) else {
                continue;
            };
            let inst = if work.instances[pos].status.is_live() {
                work.instances[pos].clone()
            } else {
                work.instances.remove(pos)
            };
            batch.write.instances.push(inst);
        }
        for work in batch.profiles.values() {
            if work.dirty && work.exists {
                batch.write.profiles.push(ProfileWrite {
                    profile: work.profile.clone(),
                    aliases_changed: work.aliases_changed,
                });
            }
        }
        let unmodelled = super::cache::unmodelled(&batch.write);
        let write = Arc::new(std::mem::take(&mut batch.write));
        let mut delay = RETRY_FIRST;
        let mut failures = 0u32;
        let started = std::time::Instant::now();
        // The batch stays in memory and is committed again, with backoff, until it is
        // durable; after `store_retries` failures in a row the partition reports itself
        // unhealthy (`/healthz` answers 503 naming it) and keeps trying every few
        // seconds, so a store that recovers (a disk freed) needs no restart.
        while let Err(e) = self.shared.store.commit(write.clone()).await {
            failures = failures.saturating_add(1);
            tracing::error!(partition = self.index, failures, error = %e, "commit failed; retrying");
            if failures == self.shared.settings.store_retries.max(1) {
                self.shared.report_unhealthy(
                    self.index,
                    format!("{failures} commits failed in a row, still retrying: {e:#}"),
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_MAX);
        }
        if failures > 0 {
            self.shared.report_healthy(self.index);
        }
        self.shared.metrics.commit(started.elapsed().as_secs_f64());
        let durable = self.shared.clock.now();
        for received in &batch.received {
            let latency = durable.duration_since(*received);
            self.shared.metrics.event_latency(latency.as_secs_f64());
        }
        self.shared.metrics.steps(&write.steps);
        self.shared.alerting.record(&write.steps);
        if batch.new_timer {
            self.shared.timer_kick.notify_one();
        }
        for ack in batch.acks {
            let _ = ack.send(());
        }
        for reply in batch.replies {
            reply(&batch.profiles);
        }
        self.cache
            .keep(batch.profiles, &batch.from_cache, unmodelled);
        self.shared.commits.send_modify(|n| *n += 1);
    }

    /// Takes the state of every profile the messages touch from the partition's cache,
    /// and reads the others in one store round trip. In debug builds the cached ones are
    /// read too, and must be what the store holds.
    pub(super) async fn preload(&mut self, batch: &mut Batch, msgs: &[Msg]) {
        let mut ids: Vec<String> = msgs
            .iter()
            .map(|m| m.profile_id().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let now = self.shared.clock.now();
        let cached = self.cache.take(&ids);
        batch.from_cache = cached.keys().cloned().collect();
        self.shared
            .metrics
            .profile_states(cached.len(), ids.len() - cached.len());
        let read: Vec<String> = if cfg!(debug_assertions) {
            ids
        } else {
            ids.into_iter()
                .filter(|id| !cached.contains_key(id))
                .collect()
        };
        let stored = if read.is_empty() {
            Ok(HashMap::new())
        } else {
            self.shared.store.profile_states(read).await
        };
        let mut stored = match stored {
            Ok(states) => states,
            // Each message loads its own profile then (and reports a lasting failure).
            Err(e) => {
                tracing::warn!(partition = self.index, error = %e, "batch read failed");
                HashMap::new()
            }
        };
        for (id, state) in cached {
            if let Some(read) = stored.remove(&id)
                && let Some(diff) = super::cache::same_as_stored(&state, &read)
            {
                panic!(
                    "partition {}: the cached state of profile {id:?} is not the store's: {diff}",
                    self.index
                );
            }
            batch
                .profiles
                .insert(id.clone(), ProfileWork::new(&id, state, now));
        }
        for (id, state) in stored {
            batch
                .profiles
                .insert(id.clone(), ProfileWork::new(&id, state, now));
        }
    }

    /// Reads one profile's state, trying again with backoff up to `store_retries` times;
    /// after that the message is set aside (its event stays unprocessed in the store and
    /// is taken again at the next start) and the partition reports itself unhealthy.
    async fn read_state(
        &self,
        profile_id: &str,
    ) -> anyhow::Result<HashMap<String, crate::store::ProfileState>> {
        let mut delay = RETRY_FIRST;
        let mut failures = 0u32;
        loop {
            match self
                .shared
                .store
                .profile_states(vec![profile_id.to_string()])
                .await
            {
                Ok(states) => return Ok(states),
                Err(e) => {
                    failures += 1;
                    if failures >= self.shared.settings.store_retries.max(1) {
                        self.shared.report_unhealthy(
                            self.index,
                            format!(
                                "{failures} reads of profile {profile_id:?} failed; its message waits for a restart: {e:#}"
                            ),
                        );
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    pub(super) async fn load<'b>(
        &self,
        batch: &'b mut Batch,
        profile_id: &str,
    ) -> anyhow::Result<&'b mut ProfileWork> {
        if !batch.profiles.contains_key(profile_id) {
            self.shared.metrics.profile_states(0, 1);
            let mut states = self.read_state(profile_id).await?;
            let state = states.remove(profile_id).unwrap_or_default();
            let now = self.shared.clock.now();
            batch.profiles.insert(
                profile_id.to_string(),
                ProfileWork::new(profile_id, state, now),
            );
        }
        batch
            .profiles
            .get_mut(profile_id)
            .ok_or_else(|| anyhow::anyhow!("profile state missing"))
    }

    pub(super) fn store_instance(&self, batch: &mut Batch, inst: Instance) {
        let (profile_id, id) = (inst.profile_id.clone(), inst.id.clone());
        if let Some(work) = batch.profiles.get_mut(&profile_id) {
            match work.instances.iter_mut().find(|i| i.id == id) {
                Some(slot) => *slot = inst,
                None => work.instances.push(inst),
            }
        }
        batch.mark_dirty(&profile_id, &id);
    }
}
