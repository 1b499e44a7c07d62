//! A partition: the single task that steps the instances of the profiles hashing to it.
//!
//! It takes every message waiting (up to `partition_batch`), handles each profile's
//! messages in order against an in-memory working set loaded from the store (the batch's
//! profiles spread over `partition_lanes` lanes that run concurrently, so that one
//! profile's slow action call does not hold up the others), commits everything the batch
//! changed in one store write, and only then acknowledges timers and lets the next batch
//! start.
//! A crash before the commit loses nothing: the events are still unprocessed in the store
//! and the timers still due, so both are handled again, with the same instance ids and
//! idempotency keys.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexSet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::audiences::AudienceSet;
use super::entry::{self, Discard};
use super::instance::{Instance, InstanceData, Status, Step, StepStatus, entry_key};
use super::journeys::JourneySet;
use super::matching;
use super::profile_ops::{EnterReply, EnterRequest, ProfileOp, ProfileReply, ProfileView};
use super::{Msg, Shared};
use crate::activities::{Move, Outcome, StepCx};
use crate::compile::{EntryKind, Journey, NodeRef};
use crate::expr::time::add_span;
use crate::expr::{CallInfo, EvalEnv, ExprEngine, PluginCallLog, ScopeData};
use crate::ids;
use crate::model::{Event, Profile, merge_patch};
use crate::store::{
    DueTimer, HeldEntry, JourneyStatus, Membership, ProfileState, ProfileWrite, Transition,
    WriteBatch,
};

pub(super) fn spawn(index: usize, shared: Arc<Shared>, rx: mpsc::Receiver<Msg>) {
    shared.clone().spawn(async move {
        let exprs = shared.exprs();
        let mut partition = Partition {
            index,
            shared,
            exprs,
            spare: Vec::new(),
        };
        partition.run(rx).await;
    });
}

struct Partition {
    index: usize,
    shared: Arc<Shared>,
    exprs: ExprEngine,
    /// Expression engines of lanes, kept for the next batch's lanes.
    spare: Vec<ExprEngine>,
}

/// Spreads a batch's messages over at most `max` lanes: all the messages of one profile
/// go to the same lane, in their order, and profiles are dealt to lanes in the order
/// they first appear.
fn lanes(msgs: impl Iterator<Item = Msg>, max: usize) -> Vec<Vec<Msg>> {
    let max = max.max(1);
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    let mut lanes: Vec<Vec<Msg>> = Vec::new();
    for msg in msgs {
        let next = lane_of.len() % max;
        let lane = *lane_of.entry(msg.profile_id().to_string()).or_insert(next);
        if lane == lanes.len() {
            lanes.push(Vec::new());
        }
        lanes[lane].push(msg);
    }
    lanes
}

/// The first wait before a failed commit or read is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a batch knows of one profile.
struct ProfileWork {
    exists: bool,
    /// The stored form: attributes, zone, aliases.
    profile: Profile,
    /// The profile as expressions see it.
    doc: Value,
    /// The stored row must be written.
    dirty: bool,
    /// The aliases changed in this batch.
    aliases_changed: bool,
    /// Audience predicates must be evaluated again.
    needs_eval: bool,
    /// Live instances, plus those created or ended in this batch.
    instances: Vec<Instance>,
    /// Journey id -> (time of the latest entry, id of that instance).
    last_entered: HashMap<String, (Timestamp, String)>,
    /// Audience -> time the profile joined.
    audiences: BTreeMap<String, Timestamp>,
    /// The audience names, shared with expressions (`in_audience`).
    member_of: Arc<BTreeSet<String>>,
    /// Entries counted by capping rules.
    capping: Vec<(String, Timestamp)>,
}

impl ProfileWork {
    fn new(profile_id: &str, state: ProfileState, now: Timestamp) -> Self {
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
    fn ensure_exists(&mut self, now: Timestamp) {
        if !self.exists {
            self.exists = true;
            self.profile.attributes = Value::Object(Map::new());
            self.profile.created_at = now;
            self.changed(now);
        }
    }

    /// The stored profile changed: rebuild the expression view, write it, re-evaluate.
    fn changed(&mut self, now: Timestamp) {
        self.profile.updated_at = now;
        self.doc = self.profile.to_json();
        self.dirty = true;
        self.needs_eval = true;
    }

    fn set_member(&mut self, audience: &str, since: Option<Timestamp>) {
        match since {
            Some(at) => self.audiences.insert(audience.to_string(), at),
            None => self.audiences.remove(audience),
        };
        self.member_of = Arc::new(self.audiences.keys().cloned().collect());
    }

    fn view(&self) -> Option<ProfileView> {
        self.exists.then(|| ProfileView {
            profile: self.profile.clone(),
            audiences: self.audiences.keys().cloned().collect(),
        })
    }
}

/// What caused an entry: its id and its time (instance ids derive from both, so both
/// must be the same when the trigger is replayed), the entry event as expressions see it,
/// and the stored event it came from, if any.
struct Trigger<'a> {
    id: &'a str,
    at: Timestamp,
    profile_id: &'a str,
    doc: &'a Value,
    event_id: Option<&'a str>,
    /// When the triggering event happened (its `timestamp`), for an entry by a profile's
    /// event: re-entrance and capping count in event time, so late events are judged
    /// by when they happened. `None`: the entry's time is when it is processed.
    happened_at: Option<Timestamp>,
}

impl Trigger<'_> {
    /// The entry's time for re-entrance and capping: when the event happened, but never
    /// after `now` (a client clock ahead of the engine's cannot date entries ahead).
    fn entry_time(&self, now: Timestamp) -> Timestamp {
        self.happened_at.map_or(now, |t| t.min(now))
    }
}

/// An admitted instance whose first node has not run yet.
struct Start {
    journey: Arc<Journey>,
    instance: Instance,
    event_id: Option<String>,
}

/// An answer sent once the batch is durable, built from the batch's final state.
type Reply = Box<dyn FnOnce(&HashMap<String, ProfileWork>) + Send>;

/// Everything one batch has read and changed.
struct Batch {
    set: Arc<JourneySet>,
    audiences: Arc<AudienceSet>,
    profiles: HashMap<String, ProfileWork>,
    /// (profile, instance) pairs changed in this batch, in order.
    dirty: IndexSet<(String, String)>,
    write: WriteBatch,
    acks: Vec<oneshot::Sender<()>>,
    replies: Vec<Reply>,
    starts: Vec<Start>,
    new_timer: bool,
    /// Distinguishes audience transitions of one batch.
    transition_seq: u64,
    /// When each event of the batch was received (for its latency once durable).
    received: Vec<Timestamp>,
}

impl Batch {
    fn new(set: Arc<JourneySet>, audiences: Arc<AudienceSet>) -> Self {
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
        }
    }

    /// Takes in what a lane did on its part of this batch.
    fn absorb(&mut self, lane: Batch) {
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
        } = lane;
        self.profiles.extend(profiles);
        self.dirty.extend(dirty);
        self.write.absorb(write);
        self.acks.extend(acks);
        self.replies.extend(replies);
        self.starts.extend(starts);
        self.new_timer |= new_timer;
        self.received.extend(received);
    }

    fn mark_dirty(&mut self, profile_id: &str, instance_id: &str) {
        self.dirty
            .insert((profile_id.to_string(), instance_id.to_string()));
    }
}

impl Msg {
    fn kind(&self) -> &'static str {
        match self {
            Msg::Event(_) => "event",
            Msg::Timer(..) => "timer",
            Msg::Profile(..) => "profile",
            Msg::Enter(..) => "enter",
            Msg::Release(..) => "release",
            Msg::End(..) => "end",
            Msg::Barrier(_) => "barrier",
        }
    }

    pub(super) fn profile_id(&self) -> &str {
        match self {
            Msg::Event(e) => &e.profile_id,
            Msg::Timer(t, _) => &t.profile_id,
            Msg::Profile(op, _) => op.profile_id(),
            Msg::Enter(r, _) => &r.profile_id,
            Msg::Release(h, _) => &h.profile_id,
            Msg::End(r, _) => &r.profile_id,
            Msg::Barrier(_) => "",
        }
    }
}

impl Partition {
    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        let max = self.shared.settings.partition_batch.max(1);
        let mut msgs = Vec::with_capacity(max);
        while rx.recv_many(&mut msgs, max).await > 0 {
            let mut batch = Batch::new(
                self.shared.journeys.snapshot(),
                self.shared.audiences.snapshot(),
            );
            self.preload(&mut batch, &msgs).await;
            if let Some(ext) = &self.shared.external
                && ext.generation() != self.exprs.generation()
            {
                // Plugins were installed: rebuild with their functions.
                self.exprs = self.shared.exprs();
                self.spare.clear();
            }
            let lanes = lanes(msgs.drain(..), self.shared.settings.partition_lanes);
            if lanes.len() == 1 {
                for msg in lanes.into_iter().flatten() {
                    self.handle(&mut batch, msg).await;
                }
            } else {
                self.run_lanes(&mut batch, lanes).await;
            }
            self.commit(batch).await;
        }
    }

    /// Runs the lanes of a batch concurrently on this task (their awaits overlap: action
    /// calls, store reads), each on its own part of the batch (its profiles' states)
    /// with its own expression engine, then gathers their changes in lane order.
    async fn run_lanes(&mut self, batch: &mut Batch, lanes: Vec<Vec<Msg>>) {
        let running = lanes.into_iter().map(|msgs| {
            let mut part = Batch::new(batch.set.clone(), batch.audiences.clone());
            for msg in &msgs {
                if let Some((id, work)) = batch.profiles.remove_entry(msg.profile_id()) {
                    part.profiles.insert(id, work);
                }
            }
            let mut lane = Partition {
                index: self.index,
                shared: self.shared.clone(),
                exprs: self.spare.pop().unwrap_or_else(|| self.shared.exprs()),
                spare: Vec::new(),
            };
            async move {
                for msg in msgs {
                    lane.handle(&mut part, msg).await;
                }
                (lane.exprs, part)
            }
        });
        for (exprs, part) in futures_util::future::join_all(running).await {
            self.spare.push(exprs);
            batch.absorb(part);
        }
    }

    /// Handles one message and what follows from it in the same profile (the journeys
    /// it starts, the audience transitions it causes).
    async fn handle(&mut self, batch: &mut Batch, msg: Msg) {
        let msg = match msg {
            Msg::Barrier(ack) => {
                batch.acks.push(ack);
                return;
            }
            msg => msg,
        };
        let profile_id = msg.profile_id().to_string();
        let span = tracing::debug_span!(
            "message",
            partition = self.index,
            kind = msg.kind(),
            profile = %profile_id
        );
        let result = async {
            match msg {
                Msg::Event(event) => self.on_event(batch, event).await,
                Msg::Timer(timer, ack) => {
                    batch.acks.push(ack);
                    self.on_timer(batch, timer).await
                }
                Msg::Profile(op, reply) => self.on_profile(batch, op, reply).await,
                Msg::Enter(request, reply) => self.on_enter(batch, request, reply).await,
                Msg::Release(held, ack) => {
                    batch.acks.push(ack);
                    self.on_release(batch, held).await
                }
                Msg::End(request, reply) => self.on_end(batch, request, reply).await,
                Msg::Barrier(_) => Ok(()),
            }
        }
        .instrument(span)
        .await;
        if let Err(e) = result {
            tracing::error!(partition = self.index, error = %e, "cannot load state; the message is set aside until the next start");
            return;
        }
        self.run_starts(batch).await;
        self.settle(batch, &profile_id, Vec::new()).await;
    }

    async fn commit(&self, mut batch: Batch) {
        for (profile_id, instance_id) in std::mem::take(&mut batch.dirty) {
            if let Some(inst) = batch
                .profiles
                .get(&profile_id)
                .and_then(|p| p.instances.iter().find(|i| i.id == instance_id))
            {
                batch.write.instances.push(inst.clone());
            }
        }
        for work in batch.profiles.values() {
            if work.dirty && work.exists {
                batch.write.profiles.push(ProfileWrite {
                    profile: work.profile.clone(),
                    aliases_changed: work.aliases_changed,
                });
            }
        }
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
        self.shared.commits.send_modify(|n| *n += 1);
    }

    /// Reads the state of every profile the messages touch, in one store round trip.
    async fn preload(&self, batch: &mut Batch, msgs: &[Msg]) {
        let mut ids: Vec<String> = msgs
            .iter()
            .map(|m| m.profile_id().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let now = self.shared.clock.now();
        match self.shared.store.profile_states(ids).await {
            Ok(states) => {
                for (id, state) in states {
                    batch
                        .profiles
                        .insert(id.clone(), ProfileWork::new(&id, state, now));
                }
            }
            // Each message loads its own profile then (and reports a lasting failure).
            Err(e) => tracing::warn!(partition = self.index, error = %e, "batch read failed"),
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

    async fn load<'b>(
        &self,
        batch: &'b mut Batch,
        profile_id: &str,
    ) -> anyhow::Result<&'b mut ProfileWork> {
        if !batch.profiles.contains_key(profile_id) {
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

    async fn on_event(&mut self, batch: &mut Batch, event: Event) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        self.load(batch, &event.profile_id)
            .await?
            .ensure_exists(now);

        // 1. Exit criteria on this event type end instances before anything else.
        self.exit_where(batch, &event.profile_id, now, "EXIT_CRITERIA", |j| {
            j.props
                .exit_events
                .contains(&event.event_type)
                .then(|| format!("exit criterion: event {:?}", event.event_type))
        });

        // 2. Instances paused on a reaction to this event move on.
        let waiting = matching::candidates(
            &batch.set,
            &batch.profiles[&event.profile_id].instances,
            &event.event_type,
        );
        for instance_id in waiting {
            self.react(batch, &event, &instance_id, now).await;
        }

        // 3. Journeys this event type enters.
        let journeys: Vec<Arc<Journey>> =
            batch.set.entered_by(&event.event_type).cloned().collect();
        if !journeys.is_empty() {
            let doc = event.to_json();
            let trigger = Trigger {
                id: &event.id,
                at: event.received_at,
                profile_id: &event.profile_id,
                doc: &doc,
                event_id: Some(&event.id),
                happened_at: Some(event.timestamp),
            };
            for journey in journeys {
                let _ = self.try_enter(batch, &journey, &trigger, now).await;
            }
        }

        batch.received.push(event.received_at);
        batch.write.processed_events.push(event.id);
        Ok(())
    }

    /// Applies a profile write; the answer waits for the commit (and the audience
    /// re-evaluation that follows the write in [`Partition::settle`]).
    async fn on_profile(
        &mut self,
        batch: &mut Batch,
        op: ProfileOp,
        reply: oneshot::Sender<ProfileReply>,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        let id = op.profile_id().to_string();
        let work = match self.load(batch, &id).await {
            Ok(w) => w,
            Err(e) => {
                let _ = reply.send(Err(anyhow::anyhow!("cannot read the profile: {e}")));
                return Ok(());
            }
        };
        let mut transitions = Vec::new();
        match op {
            ProfileOp::Put {
                attributes,
                timezone,
                aliases,
                ..
            } => {
                work.ensure_exists(now);
                work.profile.attributes = attributes;
                work.profile.timezone = timezone;
                if let Some(aliases) = aliases {
                    work.aliases_changed |= work.profile.aliases != aliases;
                    work.profile.aliases = aliases;
                }
                work.changed(now);
            }
            ProfileOp::Patch {
                attributes,
                timezone,
                aliases,
                ..
            } => {
                work.ensure_exists(now);
                if let Some(patch) = attributes {
                    merge_patch(&mut work.profile.attributes, &patch);
                }
                if let Some(tz) = timezone {
                    work.profile.timezone = tz;
                }
                for (ns, value) in aliases {
                    let changed = match value {
                        Some(v) => work.profile.aliases.insert(ns, v.clone()).as_ref() != Some(&v),
                        None => work.profile.aliases.remove(&ns).is_some(),
                    };
                    work.aliases_changed |= changed;
                }
                work.changed(now);
            }
            ProfileOp::Delete { .. } => {
                if work.exists {
                    self.remove_profile(
                        batch,
                        &id,
                        now,
                        "PROFILE_DELETED",
                        "the profile was deleted",
                    );
                }
            }
            ProfileOp::MergeOut { into, merge_id, .. } => {
                if work.exists && into != id {
                    let merge = self.merge_record(batch, &id, into, merge_id, now);
                    let message = format!("the profile was merged into {:?}", merge.into);
                    batch.write.merges.push(merge);
                    self.remove_profile(batch, &id, now, "PROFILE_MERGED", &message);
                }
            }
            ProfileOp::MergeIn { merge, .. } => {
                transitions = self.take_merge(batch, &id, merge, now);
            }
            ProfileOp::SetMember {
                audience, member, ..
            } => {
                work.ensure_exists(now);
                let is_member = work.audiences.contains_key(&audience);
                if member != is_member {
                    transitions.push(self.transition(batch, &id, &audience, member, now));
                }
            }
            ProfileOp::Reevaluate { .. } => {
                work.needs_eval = work.exists;
            }
        }
        self.settle(batch, &id, transitions).await;
        batch.replies.push(Box::new(move |profiles| {
            let view = profiles.get(&id).and_then(ProfileWork::view);
            let _ = reply.send(Ok(view));
        }));
        Ok(())
    }

    /// Ends the profile's live instances (with `code`) and removes it with its
    /// memberships.
    fn remove_profile(
        &mut self,
        batch: &mut Batch,
        id: &str,
        now: Timestamp,
        code: &str,
        message: &str,
    ) {
        self.exit_where(batch, id, now, code, |_| Some(message.to_string()));
        let Some(work) = batch.profiles.get_mut(id) else {
            return;
        };
        let audiences: Vec<String> = work.audiences.keys().cloned().collect();
        for audience in audiences {
            batch.write.transitions.push(Transition {
                audience: audience.clone(),
                profile_id: id.to_string(),
                direction: "exited",
                at: now,
            });
            work.set_member(&audience, None);
        }
        work.exists = false;
        work.dirty = false;
        work.needs_eval = false;
        work.capping.clear();
        work.profile.aliases.clear();
        batch.write.profile_deletes.push(id.to_string());
    }

    /// What profile `id` has, for the profile it is merged into: attributes, zone,
    /// aliases, explicit-list memberships, capping entries and live instances.
    fn merge_record(
        &self,
        batch: &Batch,
        id: &str,
        into: String,
        merge_id: String,
        now: Timestamp,
    ) -> crate::store::ProfileMerge {
        let work = &batch.profiles[id];
        let lists = work
            .audiences
            .keys()
            .filter(|a| {
                batch
                    .audiences
                    .audiences
                    .get(*a)
                    .is_some_and(|a| a.predicate.is_none())
            })
            .cloned()
            .collect();
        crate::store::ProfileMerge {
            id: merge_id,
            from: id.to_string(),
            into,
            at: now,
            attributes: work.profile.attributes.clone(),
            timezone: work.profile.timezone.clone(),
            aliases: work.profile.aliases.clone(),
            lists,
            capping: work.capping.clone(),
            instances: work
                .instances
                .iter()
                .filter(|i| i.status.is_live())
                .cloned()
                .collect(),
        }
    }

    /// Applies a merge to profile `id` (which it creates if needed); the profile's own
    /// attributes, zone and aliases win. Returns the list audiences it joined.
    fn take_merge(
        &mut self,
        batch: &mut Batch,
        id: &str,
        merge: crate::store::ProfileMerge,
        now: Timestamp,
    ) -> Vec<Transition> {
        let Some(work) = batch.profiles.get_mut(id) else {
            return Vec::new();
        };
        work.ensure_exists(now);
        if let (Value::Object(mine), Value::Object(theirs)) =
            (&mut work.profile.attributes, merge.attributes)
        {
            for (key, value) in theirs {
                mine.entry(key).or_insert(value);
            }
        }
        if work.profile.timezone.is_none() {
            work.profile.timezone = merge.timezone;
        }
        for (namespace, value) in merge.aliases {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                work.profile.aliases.entry(namespace)
            {
                slot.insert(value);
                work.aliases_changed = true;
            }
        }
        work.changed(now);
        for (rule, at) in merge.capping {
            work.capping.push((rule.clone(), at));
            batch.write.capping.push((id.to_string(), rule, at));
        }
        let joins: Vec<String> = merge
            .lists
            .into_iter()
            .filter(|a| {
                !work.audiences.contains_key(a) && batch.audiences.audiences.contains_key(a)
            })
            .collect();
        // Live instances move over, for journeys the profile is not in now.
        for old in merge.instances {
            let Some(work) = batch.profiles.get_mut(id) else {
                break;
            };
            if work
                .instances
                .iter()
                .any(|i| i.journey_id == old.journey_id && i.status.is_live())
            {
                continue;
            }
            let mut inst = old.clone();
            inst.id = ids::instance_id(
                &old.journey_id,
                old.version,
                id,
                &format!("merge\u{1f}{}", old.id),
                old.entered_at,
            );
            inst.profile_id = id.to_string();
            inst.updated_at = now;
            let entry_at = inst.data.entry_at.unwrap_or(inst.entered_at);
            let key = entry_key(&inst.journey_id, inst.version).into_owned();
            work.last_entered.insert(key, (entry_at, inst.id.clone()));
            batch.new_timer |= inst.wake_at.is_some();
            batch.write.steps.push(step(
                &inst,
                "entry",
                "entry",
                StepStatus::Entered,
                now,
                None,
                Some("PROFILE_MERGED".into()),
                Some(format!(
                    "moved from profile {:?} (instance {}) when it was merged into this one",
                    merge.from, old.id
                )),
                None,
            ));
            self.store_instance(batch, inst);
        }
        batch.write.merges_done.push(merge.id);
        joins
            .iter()
            .map(|audience| self.transition(batch, id, audience, true, now))
            .collect()
    }

    /// A run asks the profile to enter a journey version.
    async fn on_enter(
        &mut self,
        batch: &mut Batch,
        request: EnterRequest,
        reply: oneshot::Sender<EnterReply>,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        self.load(batch, &request.profile_id).await?;
        let journey = batch
            .set
            .get(&request.journey_id)
            .and_then(|j| j.entry_version())
            .filter(|j| j.version == request.version)
            .cloned();
        let result = match journey {
            None => Err("JOURNEY_NOT_LIVE".to_string()),
            Some(journey) => {
                let trigger = Trigger {
                    id: &request.trigger_id,
                    at: request.trigger_at,
                    profile_id: &request.profile_id,
                    doc: &request.trigger,
                    event_id: None,
                    happened_at: None,
                };
                match self.try_enter(batch, &journey, &trigger, now).await {
                    Ok(()) => Ok(()),
                    // Entered before a restart: the run counts it once.
                    Err(d) if d.code == "DUPLICATE" => Ok(()),
                    Err(d) => Err(d.code.to_string()),
                }
            }
        };
        batch.replies.push(Box::new(move |_| {
            let _ = reply.send(result);
        }));
        Ok(())
    }

    /// Ends the profile's live instances of a journey, each with an `ended` step; the
    /// answer (how many) waits for the commit.
    async fn on_end(
        &mut self,
        batch: &mut Batch,
        request: super::EndRequest,
        reply: oneshot::Sender<u64>,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        let work = self.load(batch, &request.profile_id).await?;
        let ending: Vec<Instance> = work
            .instances
            .iter()
            .filter(|i| {
                i.journey_id == request.journey_id
                    && i.status.is_live()
                    && request.version.is_none_or(|v| i.version == v)
            })
            .cloned()
            .collect();
        let count = ending.len() as u64;
        for mut inst in ending {
            let journey = batch.set.version(&inst.journey_id, inst.version).cloned();
            self.end(
                batch,
                &mut inst,
                journey.as_deref(),
                request.status,
                request.code,
                &request.message,
                now,
            );
            self.store_instance(batch, inst);
        }
        batch.replies.push(Box::new(move |_| {
            let _ = reply.send(count);
        }));
        Ok(())
    }

    /// Tries a held entry again now that its journey resumed; the held row goes in the
    /// same commit as the entry.
    async fn on_release(&mut self, batch: &mut Batch, held: HeldEntry) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        self.load(batch, &held.profile_id).await?;
        batch.write.released.push(held.seq);
        // A held event keeps its event time (the `timestamp` of the event document).
        let happened_at = held
            .event_id
            .as_ref()
            .and_then(|_| held.trigger.get("timestamp"))
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok());
        let trigger = Trigger {
            id: &held.trigger_id,
            at: held.trigger_at,
            profile_id: &held.profile_id,
            doc: &held.trigger,
            event_id: held.event_id.as_deref(),
            happened_at,
        };
        let journey = batch
            .set
            .get(&held.journey_id)
            .and_then(|j| j.entry_version())
            .cloned();
        match journey {
            Some(journey) => {
                let _ = self.try_enter(batch, &journey, &trigger, now).await;
            }
            None => {
                if let Some(journey) = batch
                    .set
                    .get(&held.journey_id)
                    .and_then(|j| j.versions.values().next_back())
                    .cloned()
                {
                    let d = Discard {
                        code: "JOURNEY_NOT_LIVE",
                        message: "the journey was closed or stopped while the entry was held"
                            .into(),
                    };
                    batch
                        .write
                        .steps
                        .push(discard_step(&journey, &trigger, &d, now));
                }
            }
        }
        Ok(())
    }

    /// Records a membership change and returns the transition.
    fn transition(
        &self,
        batch: &mut Batch,
        profile_id: &str,
        audience: &str,
        entered: bool,
        now: Timestamp,
    ) -> Transition {
        let since = entered.then_some(now);
        if let Some(work) = batch.profiles.get_mut(profile_id) {
            work.set_member(audience, since);
        }
        batch.write.memberships.push(Membership {
            audience: audience.to_string(),
            profile_id: profile_id.to_string(),
            since,
        });
        let t = Transition {
            audience: audience.to_string(),
            profile_id: profile_id.to_string(),
            direction: if entered { "entered" } else { "exited" },
            at: now,
        };
        batch.write.transitions.push(t.clone());
        t
    }

    /// Evaluates the predicate audiences of a profile whose attributes changed, then
    /// lets the transitions act (exit criteria, audience-qualification entries), until
    /// the profile stops changing or `max_audience_rounds` is reached.
    async fn settle(&mut self, batch: &mut Batch, profile_id: &str, mut pending: Vec<Transition>) {
        let now = self.shared.clock.now();
        for _ in 0..self.shared.settings.max_audience_rounds.max(1) {
            pending.extend(self.evaluate(batch, profile_id, now));
            if pending.is_empty() {
                return;
            }
            for t in std::mem::take(&mut pending) {
                let entered = t.direction == "entered";
                if !entered {
                    self.exit_where(batch, profile_id, now, "EXIT_CRITERIA", |j| {
                        j.props
                            .exit_audiences
                            .contains(&t.audience)
                            .then(|| format!("exit criterion: left audience {:?}", t.audience))
                    });
                }
                let journeys: Vec<Arc<Journey>> = batch
                    .set
                    .qualified_by(&t.audience)
                    .filter(|j| match &j.entry.kind {
                        EntryKind::Qualification {
                            on_enter, on_exit, ..
                        } => (entered && *on_enter) || (!entered && *on_exit),
                        _ => false,
                    })
                    .cloned()
                    .collect();
                if journeys.is_empty() {
                    continue;
                }
                batch.transition_seq += 1;
                let trigger_id = format!(
                    "audience\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
                    t.audience,
                    t.direction,
                    t.at.as_microsecond(),
                    batch.transition_seq
                );
                let doc = json!({
                    "id": trigger_id,
                    "type": format!("audience.{}", t.direction),
                    "profile_id": profile_id,
                    "timestamp": t.at.to_string(),
                    "audience": t.audience,
                    "direction": t.direction,
                    "data": {"audience": t.audience, "direction": t.direction},
                });
                let trigger = Trigger {
                    id: &trigger_id,
                    at: t.at,
                    profile_id,
                    doc: &doc,
                    event_id: None,
                    happened_at: None,
                };
                for journey in journeys {
                    let _ = self.try_enter(batch, &journey, &trigger, now).await;
                }
            }
            self.run_starts(batch).await;
        }
        if batch.profiles.get(profile_id).is_some_and(|w| w.needs_eval) {
            tracing::warn!(
                profile = profile_id,
                "audience re-evaluation stopped after max_audience_rounds rounds"
            );
        }
    }

    /// Evaluates every predicate audience for the profile if it changed; records and
    /// returns the transitions.
    fn evaluate(&mut self, batch: &mut Batch, profile_id: &str, now: Timestamp) -> Vec<Transition> {
        let Some(work) = batch.profiles.get_mut(profile_id) else {
            return Vec::new();
        };
        if !work.needs_eval || !work.exists {
            return Vec::new();
        }
        work.needs_eval = false;
        let audiences = batch.audiences.clone();
        let env = EvalEnv {
            now,
            tz: TimeZone::UTC,
            call: Some(Arc::new(CallInfo {
                profile_id: profile_id.to_string(),
                audiences: work.member_of.clone(),
                ..Default::default()
            })),
        };
        let mut changes = Vec::new();
        for (name, predicate) in audiences.predicates() {
            let data = ScopeData {
                profile: Some(&work.doc),
                ..Default::default()
            };
            let member = match self.exprs.eval_bool(predicate, &data, &env) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(audience = name, profile = profile_id, error = %e, "audience predicate failed; not a member");
                    false
                }
            };
            if member != work.audiences.contains_key(name) {
                changes.push((name.to_string(), member));
            }
        }
        changes
            .into_iter()
            .map(|(name, member)| self.transition(batch, profile_id, &name, member, now))
            .collect()
    }

    /// Ends (status `exited`, with `code`) the profile's live instances for which
    /// `reason` gives a message.
    fn exit_where(
        &mut self,
        batch: &mut Batch,
        profile_id: &str,
        now: Timestamp,
        code: &str,
        reason: impl Fn(&Journey) -> Option<String>,
    ) {
        let Some(work) = batch.profiles.get(profile_id) else {
            return;
        };
        let mut ending = Vec::new();
        for inst in work.instances.iter().filter(|i| i.status.is_live()) {
            let journey = batch.set.version(&inst.journey_id, inst.version).cloned();
            // A version that is no longer loaded has no criteria (its timer ends it).
            let message = journey.as_deref().and_then(&reason);
            if let Some(message) = message {
                ending.push((inst.clone(), journey, message));
            }
        }
        for (mut inst, journey, message) in ending {
            self.end(
                batch,
                &mut inst,
                journey.as_deref(),
                Status::Exited,
                code,
                &message,
                now,
            );
            self.store_instance(batch, inst);
        }
    }

    async fn react(&mut self, batch: &mut Batch, event: &Event, instance_id: &str, now: Timestamp) {
        let Some(work) = batch.profiles.get_mut(&event.profile_id) else {
            return;
        };
        let Some(pos) = work.instances.iter().position(|i| i.id == instance_id) else {
            return;
        };
        if work.instances[pos].status != Status::Waiting {
            return; // Ended by an exit criterion.
        }
        let (journey_id, version, node_id) = {
            let i = &work.instances[pos];
            (
                i.journey_id.clone(),
                i.version,
                i.node.clone().unwrap_or_default(),
            )
        };
        let Some(journey) = batch.set.version(&journey_id, version).cloned() else {
            return;
        };
        let Some((node_ref, node)) = journey.node(&node_id) else {
            return;
        };
        if !matches!(node.kind, crate::activities::NodeKind::Reaction(_)) {
            return;
        }
        let mut inst = work.instances[pos].clone();
        let mut patches = Vec::new();
        let outcome = {
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                &journey,
                &node_id,
                &mut inst,
                work,
                &mut patches,
                now,
            );
            node.kind.on_event(&mut cx, event)
        };
        let Some(outcome) = outcome else { return };
        self.drive(
            batch,
            &journey,
            inst,
            node_ref,
            outcome,
            Some(&event.id),
            patches,
            now,
        )
        .await;
    }

    /// Admits the profile into `journey` and runs it until it pauses or ends; a refusal
    /// is recorded as a discarded step (except a repeat of an entry already made).
    async fn try_enter(
        &mut self,
        batch: &mut Batch,
        journey: &Arc<Journey>,
        trigger: &Trigger<'_>,
        now: Timestamp,
    ) -> Result<(), Discard> {
        match self.admit(batch, journey, trigger, now) {
            Ok(inst) => {
                self.start(batch, journey, inst, trigger.event_id, now)
                    .await;
                Ok(())
            }
            Err(d) => {
                if !matches!(d.code, "DUPLICATE" | "NOT_A_TEST_PROFILE" | "TEST_PROFILE") {
                    batch
                        .write
                        .steps
                        .push(discard_step(journey, trigger, &d, now));
                }
                Err(d)
            }
        }
    }

    /// Decides whether the profile may enter (schedule, single instance, re-entrance,
    /// capping, `when`) and creates its instance on the start node.
    fn admit(
        &mut self,
        batch: &mut Batch,
        journey: &Arc<Journey>,
        trigger: &Trigger<'_>,
        now: Timestamp,
    ) -> Result<Instance, Discard> {
        let missing = || Discard {
            code: "PROFILE_MISSING",
            message: "the profile does not exist".into(),
        };
        let work = batch
            .profiles
            .get_mut(trigger.profile_id)
            .ok_or_else(missing)?;
        if !work.exists {
            return Err(missing());
        }
        // While a draft is under test, test profiles enter only the draft and every
        // other profile only the live version.
        let test_profile = work.profile.attributes.get("test_profile") == Some(&Value::Bool(true));
        if journey.test.is_some() && !test_profile {
            return Err(Discard {
                code: "NOT_A_TEST_PROFILE",
                message: "a draft in test mode only takes test profiles".into(),
            });
        }
        if journey.test.is_none()
            && test_profile
            && batch.set.get(&journey.id).is_some_and(|j| j.test.is_some())
        {
            return Err(Discard {
                code: "TEST_PROFILE",
                message: "a test profile enters the draft under test, not the live version".into(),
            });
        }
        if journey.test.is_none()
            && batch
                .set
                .get(&journey.id)
                .is_some_and(|j| j.holds_entries())
        {
            batch.write.held.push(HeldEntry {
                seq: 0,
                journey_id: journey.id.clone(),
                profile_id: trigger.profile_id.to_string(),
                trigger_id: trigger.id.to_string(),
                trigger_at: trigger.at,
                trigger: trigger.doc.clone(),
                event_id: trigger.event_id.map(str::to_string),
            });
            return Err(Discard {
                code: "HELD",
                message: "the journey is paused; the entry waits for it to resume".into(),
            });
        }
        let id = ids::instance_id(
            &journey.id,
            journey.version,
            trigger.profile_id,
            trigger.id,
            trigger.at,
        );
        let key = entry_key(&journey.id, journey.version);
        let last = work.last_entered.get(key.as_ref());
        if last.is_some_and(|(_, last_id)| *last_id == id) {
            return Err(Discard {
                code: "DUPLICATE",
                message: "the profile already entered for this trigger".into(),
            });
        }
        // One live instance per journey, counted apart for the draft under test.
        let draft = journey.version == 0;
        let live = work
            .instances
            .iter()
            .any(|i| i.journey_id == journey.id && i.status.is_live() && (i.version == 0) == draft);
        let entry_at = trigger.entry_time(now);
        entry::check(journey, now, entry_at, live, last.map(|(at, _)| *at))?;
        for rule_id in &journey.props.capping {
            let Some(rule) = batch.audiences.capping.get(rule_id) else {
                continue;
            };
            let entries = work
                .capping
                .iter()
                .filter(|(r, _)| r == rule_id)
                .map(|(_, at)| *at);
            if !rule.allows(entries, entry_at) {
                return Err(Discard {
                    code: "CAPPED",
                    message: format!(
                        "capping rule {rule_id:?} allows {} entries per {}",
                        rule.max, rule.period
                    ),
                });
            }
        }
        let tz = instance_tz(journey, work.profile.timezone.as_deref());
        if let (Some(when), EntryKind::Event { .. }) = (&journey.entry.when, &journey.entry.kind) {
            let env = EvalEnv {
                now,
                tz: tz.clone(),
                call: Some(Arc::new(CallInfo {
                    journey_id: journey.id.clone(),
                    version: journey.version,
                    node_id: "entry".into(),
                    profile_id: trigger.profile_id.to_string(),
                    audiences: work.member_of.clone(),
                    ..Default::default()
                })),
            };
            let data = ScopeData {
                event: Some(trigger.doc),
                profile: Some(&work.doc),
                ..Default::default()
            };
            match self.exprs.eval_bool(when, &data, &env) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Discard {
                        code: "ENTRY_CONDITION_FALSE",
                        message: format!("entry.when is false: {}", when.excerpt()),
                    });
                }
                Err(e) => {
                    return Err(Discard {
                        code: "EXPR_EVAL",
                        message: format!("entry.when: {e}"),
                    });
                }
            }
        }

        let mut deadline = add_span(now, journey.props.timeout, &tz).unwrap_or(Timestamp::MAX);
        if let Some(end) = journey.props.end_at {
            deadline = deadline.min(end);
        }
        let inst = Instance {
            id: id.clone(),
            journey_id: journey.id.clone(),
            version: journey.version,
            profile_id: trigger.profile_id.to_string(),
            status: Status::Active,
            node: Some(journey.nodes[journey.start].id.clone()),
            entered_at: now,
            updated_at: now,
            ended_at: None,
            wake_at: None,
            deadline,
            end_reason: None,
            data: InstanceData {
                event: trigger.doc.clone(),
                step: 1,
                entry_at: Some(entry_at),
                ..Default::default()
            },
        };
        work.last_entered.insert(key.into_owned(), (entry_at, id));
        for rule_id in &journey.props.capping {
            work.capping.push((rule_id.clone(), entry_at));
            batch
                .write
                .capping
                .push((trigger.profile_id.to_string(), rule_id.clone(), entry_at));
        }
        batch.write.steps.push(step(
            &inst,
            "entry",
            "entry",
            StepStatus::Entered,
            now,
            trigger.event_id,
            None,
            None,
            None,
        ));
        Ok(inst)
    }

    /// Runs an admitted instance's first node and drives it on.
    async fn start(
        &mut self,
        batch: &mut Batch,
        journey: &Arc<Journey>,
        mut inst: Instance,
        event_id: Option<&str>,
        now: Timestamp,
    ) {
        let Some(work) = batch.profiles.get_mut(&inst.profile_id) else {
            return;
        };
        let start = journey.start;
        let mut patches = Vec::new();
        if matches!(
            journey.nodes[start].kind,
            crate::activities::NodeKind::Action(_)
        ) && let Some(until) = action_hold(&batch.set, &journey.id, now)
        {
            inst.data.held = true;
            let outcome = Outcome::pause(Some(until));
            self.drive(batch, journey, inst, start, outcome, event_id, patches, now)
                .await;
            return;
        }
        let outcome = {
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                journey,
                &journey.nodes[start].id,
                &mut inst,
                work,
                &mut patches,
                now,
            );
            journey.nodes[start].kind.enter(&mut cx).await
        };
        self.drive(batch, journey, inst, start, outcome, event_id, patches, now)
            .await;
    }

    /// Starts the instances that jumps admitted, in order (a started instance may jump
    /// again; `max_steps_per_activation` bounds the chain).
    async fn run_starts(&mut self, batch: &mut Batch) {
        let mut budget = self.shared.settings.max_steps_per_activation;
        while !batch.starts.is_empty() {
            for s in std::mem::take(&mut batch.starts) {
                let now = self.shared.clock.now();
                if budget == 0 {
                    let mut inst = s.instance;
                    self.end(
                        batch,
                        &mut inst,
                        Some(&s.journey),
                        Status::Failed,
                        "STEP_LIMIT",
                        "too many jumps in one activation (max_steps_per_activation)",
                        now,
                    );
                    self.store_instance(batch, inst);
                    continue;
                }
                budget -= 1;
                self.start(batch, &s.journey, s.instance, s.event_id.as_deref(), now)
                    .await;
            }
        }
    }

    async fn on_timer(&mut self, batch: &mut Batch, timer: DueTimer) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        let work = self.load(batch, &timer.profile_id).await?;
        let Some(pos) = work
            .instances
            .iter()
            .position(|i| i.id == timer.instance_id)
        else {
            return Ok(());
        };
        let mut inst = work.instances[pos].clone();
        if inst.status != Status::Waiting || inst.wake_at != Some(timer.wake_at) {
            return Ok(()); // Already moved on within this batch.
        }
        let versions = batch.set.get(&inst.journey_id);
        let journey = versions.and_then(|j| j.version(inst.version)).cloned();
        let stopped = versions.map(|j| j.status) == Some(JourneyStatus::Stopped);
        let node = journey
            .as_ref()
            .and_then(|j| inst.node.as_deref().and_then(|n| j.node(n)).map(|(r, _)| r));
        let (Some(journey), Some(node_ref)) = (journey, node) else {
            self.end(
                batch,
                &mut inst,
                None,
                Status::Failed,
                "JOURNEY_MISSING",
                "the instance's journey version or node is not loaded",
                now,
            );
            self.store_instance(batch, inst);
            return Ok(());
        };
        if stopped {
            self.end(
                batch,
                &mut inst,
                Some(&journey),
                Status::Stopped,
                "JOURNEY_STOPPED",
                "the journey was stopped",
                now,
            );
            self.store_instance(batch, inst);
            return Ok(());
        }
        if now >= inst.deadline {
            let (code, message) = match journey.props.end_at {
                Some(end) if now >= end => ("JOURNEY_END_DATE", "the journey's end date passed"),
                _ => ("TIMEOUT", "the journey's global timeout passed"),
            };
            self.end(
                batch,
                &mut inst,
                Some(&journey),
                Status::TimedOut,
                code,
                message,
                now,
            );
            self.store_instance(batch, inst);
            return Ok(());
        }
        let released = inst.data.held;
        if released && let Some(until) = action_hold(&batch.set, &journey.id, now) {
            // Paused again (or longer): keep waiting.
            inst.wake_at = Some(until.min(inst.deadline));
            batch.new_timer = true;
            self.store_instance(batch, inst);
            return Ok(());
        }
        inst.data.held = false;
        let Some(work) = batch.profiles.get_mut(&timer.profile_id) else {
            return Ok(());
        };
        let node_id = journey.nodes[node_ref].id.clone();
        let mut patches = Vec::new();
        let outcome = {
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                &journey,
                &node_id,
                &mut inst,
                work,
                &mut patches,
                now,
            );
            let kind = &journey.nodes[node_ref].kind;
            if released {
                kind.enter(&mut cx).await
            } else {
                kind.on_timer(&mut cx).await
            }
        };
        self.drive(batch, &journey, inst, node_ref, outcome, None, patches, now)
            .await;
        Ok(())
    }

    /// Records `outcome` of `current` and keeps the instance moving until it pauses or ends.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &mut self,
        batch: &mut Batch,
        journey: &Journey,
        inst: Instance,
        current: NodeRef,
        outcome: Outcome,
        event_id: Option<&str>,
        patches: Vec<Value>,
        now: Timestamp,
    ) {
        let span = tracing::debug_span!(
            "activation",
            journey = %journey.id,
            version = journey.version,
            instance = %inst.id,
            profile = %inst.profile_id
        );
        self.drive_steps(
            batch, journey, inst, current, outcome, event_id, patches, now,
        )
        .instrument(span)
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive_steps(
        &mut self,
        batch: &mut Batch,
        journey: &Journey,
        mut inst: Instance,
        mut current: NodeRef,
        mut outcome: Outcome,
        event_id: Option<&str>,
        mut patches: Vec<Value>,
        now: Timestamp,
    ) {
        let mut budget = self.shared.settings.max_steps_per_activation;
        let profile_id = inst.profile_id.clone();
        loop {
            if !patches.is_empty()
                && let Some(work) = batch.profiles.get_mut(&profile_id)
            {
                for p in patches.drain(..) {
                    merge_patch(&mut work.profile.attributes, &p);
                }
                // The node already updated the expression view in place.
                work.profile.updated_at = now;
                work.dirty = true;
                work.needs_eval = true;
            }
            if let Move::Jump {
                journey: target,
                data,
                next,
                on_error,
            } = &outcome.next
            {
                outcome = self.jump(batch, &inst, target, data, *next, *on_error, now);
            }
            let node = &journey.nodes[current];
            let (status, code, message, next) = match &outcome.next {
                Move::Goto(n) => (StepStatus::Passed, None, None, Ok(*n)),
                Move::Pause { wake_at } if inst.data.held => (
                    StepStatus::Held,
                    Some("ACTIONS_HELD".to_string()),
                    Some("the journey is paused; the action waits for it to resume".to_string()),
                    Err(Some(*wake_at)),
                ),
                Move::Pause { wake_at } => (StepStatus::Waiting, None, None, Err(Some(*wake_at))),
                Move::Fail {
                    code,
                    message,
                    on_error,
                } => (
                    StepStatus::Failed,
                    Some(code.to_string()),
                    Some(message.clone()),
                    match on_error {
                        Some(n) => Ok(Some(*n)),
                        None => Err(None),
                    },
                ),
                Move::Jump { .. } => unreachable!("jumps are resolved above"),
            };
            // Test mode: waits and reaction timeouts last at most its `wait_seconds`; the
            // step says when the instance will really wake, and the time without the cap.
            let next = match (next, &journey.test) {
                (Err(Some(Some(wake_at))), Some(test)) => {
                    let cap = now
                        .saturating_add(jiff::SignedDuration::from_secs(
                            i64::try_from(test.wait_seconds).unwrap_or(i64::MAX),
                        ))
                        .unwrap_or(wake_at);
                    if cap < wake_at
                        && let Some(Value::Object(detail)) = outcome.detail.as_mut()
                        && detail.contains_key("until")
                    {
                        detail.insert("until".into(), json!(cap.to_string()));
                        detail.insert("until_without_test".into(), json!(wake_at.to_string()));
                    }
                    Err(Some(Some(wake_at.min(cap))))
                }
                (next, _) => next,
            };
            tracing::debug!(node = %node.id, kind = node.kind.name(), status = status.as_str(), code = code.as_deref(), "step");
            batch.write.steps.push(step(
                &inst,
                node.id.as_str(),
                node.kind.name(),
                status,
                now,
                event_id,
                code.clone(),
                message.clone(),
                outcome.detail.take(),
            ));
            match next {
                Err(Some(wake_at)) => {
                    // Paused: wake at the node's time, or at the deadline at the latest.
                    inst.status = Status::Waiting;
                    inst.wake_at = Some(wake_at.map_or(inst.deadline, |w| w.min(inst.deadline)));
                    inst.updated_at = now;
                    batch.new_timer = true;
                    break;
                }
                Err(None) => {
                    let code = code.unwrap_or_else(|| "FAILED".into());
                    let message = message.unwrap_or_default();
                    self.end(
                        batch,
                        &mut inst,
                        Some(journey),
                        Status::Failed,
                        &code,
                        &message,
                        now,
                    );
                    break;
                }
                Ok(None) => {
                    self.end(
                        batch,
                        &mut inst,
                        Some(journey),
                        Status::Completed,
                        "COMPLETED",
                        "",
                        now,
                    );
                    break;
                }
                Ok(Some(next)) => {
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        self.end(
                            batch,
                            &mut inst,
                            Some(journey),
                            Status::Failed,
                            "STEP_LIMIT",
                            "too many steps in one activation (max_steps_per_activation)",
                            now,
                        );
                        break;
                    }
                    current = next;
                    let node = &journey.nodes[current];
                    inst.node = Some(node.id.clone());
                    inst.status = Status::Active;
                    inst.wake_at = None;
                    inst.data.step += 1;
                    if matches!(node.kind, crate::activities::NodeKind::Action(_))
                        && let Some(until) = action_hold(&batch.set, &journey.id, now)
                    {
                        inst.data.held = true;
                        outcome = Outcome::pause(Some(until));
                        continue;
                    }
                    let Some(work) = batch.profiles.get_mut(&profile_id) else {
                        break;
                    };
                    let mut cx = step_cx(
                        &self.shared,
                        &mut self.exprs,
                        journey,
                        &node.id,
                        &mut inst,
                        work,
                        &mut patches,
                        now,
                    );
                    outcome = node.kind.enter(&mut cx).await;
                }
            }
        }
        self.store_instance(batch, inst);
    }

    /// Admits the profile into the live event journey `target` (its first node runs
    /// after the current activation) and says where the jumping instance goes.
    #[allow(clippy::too_many_arguments)]
    fn jump(
        &mut self,
        batch: &mut Batch,
        from: &Instance,
        target: &str,
        data: &Value,
        next: Option<NodeRef>,
        on_error: Option<NodeRef>,
        now: Timestamp,
    ) -> Outcome {
        let journey = batch
            .set
            .get(target)
            .and_then(|j| j.entry_version())
            .cloned();
        let Some(journey) = journey else {
            return Outcome::fail(
                "JUMP_FAILED",
                format!("journey {target:?} is not live"),
                on_error,
            );
        };
        let Some(event_type) = journey.entry.event_type().map(str::to_string) else {
            return Outcome::fail(
                "JUMP_FAILED",
                format!(
                    "journey {target:?} is not entered by events (its entry is {})",
                    journey.def.entry.kind()
                ),
                on_error,
            );
        };
        let trigger_id = format!("jump\u{1f}{}\u{1f}{}", from.id, from.data.step);
        let doc = json!({
            "id": trigger_id,
            "type": event_type,
            "profile_id": from.profile_id,
            "timestamp": now.to_string(),
            "data": data,
            "source": {"journey": from.journey_id, "version": from.version, "instance": from.id},
        });
        let trigger = Trigger {
            id: &trigger_id,
            at: now,
            profile_id: &from.profile_id,
            doc: &doc,
            event_id: None,
            happened_at: None,
        };
        match self.admit(batch, &journey, &trigger, now) {
            Ok(instance) => {
                let detail = json!({"journey": journey.id, "version": journey.version, "instance": instance.id});
                batch.starts.push(Start {
                    journey,
                    instance,
                    event_id: None,
                });
                Outcome::goto(next).with_detail(json!({"jumped_to": detail}))
            }
            Err(d) if d.code == "HELD" => {
                batch
                    .write
                    .steps
                    .push(discard_step(&journey, &trigger, &d, now));
                Outcome::goto(next).with_detail(
                    json!({"jumped_to": {"journey": journey.id, "version": journey.version, "held": true}}),
                )
            }
            Err(d) => {
                if d.code != "DUPLICATE" {
                    batch
                        .write
                        .steps
                        .push(discard_step(&journey, &trigger, &d, now));
                }
                Outcome::fail(
                    "JUMP_FAILED",
                    format!(
                        "journey {target:?} refused the entry: {} ({})",
                        d.message, d.code
                    ),
                    on_error,
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn end(
        &self,
        batch: &mut Batch,
        inst: &mut Instance,
        journey: Option<&Journey>,
        status: Status,
        code: &str,
        message: &str,
        now: Timestamp,
    ) {
        inst.status = status;
        inst.wake_at = None;
        inst.ended_at = Some(now);
        inst.updated_at = now;
        inst.end_reason = Some(code.to_string());
        let node = inst.node.clone().unwrap_or_default();
        let kind = journey
            .and_then(|j| j.node(&node))
            .map_or("unknown", |(_, n)| n.kind.name());
        let message = (!message.is_empty()).then(|| message.to_string());
        batch.write.steps.push(step(
            inst,
            &node,
            kind,
            StepStatus::Ended,
            now,
            None,
            Some(code.to_string()),
            message,
            None,
        ));
    }

    fn store_instance(&self, batch: &mut Batch, inst: Instance) {
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

/// Until when an instance reaching an action node of this journey waits, if the journey
/// holds actions now.
fn action_hold(set: &JourneySet, journey_id: &str, now: Timestamp) -> Option<Timestamp> {
    let j = set.get(journey_id)?;
    let pause = j.pause.as_ref()?;
    (j.holds_actions() && now < pause.until).then_some(pause.until)
}

/// The step recording a refused entry.
fn discard_step(journey: &Journey, trigger: &Trigger<'_>, d: &Discard, now: Timestamp) -> Step {
    Step {
        seq: 0,
        instance_id: None,
        journey_id: journey.id.clone(),
        version: journey.version,
        profile_id: trigger.profile_id.to_string(),
        event_id: trigger.event_id.map(str::to_string),
        node: "entry".into(),
        kind: "entry".into(),
        status: if d.code == "HELD" {
            StepStatus::Held
        } else {
            StepStatus::Discarded
        },
        at: now,
        code: Some(d.code.to_string()),
        message: Some(d.message.clone()),
        detail: None,
    }
}

/// What a node sees while it runs: the zone follows the journey (or the profile), and
/// the look-up cache starts from the instance's.
#[allow(clippy::too_many_arguments)]
fn step_cx<'a>(
    shared: &'a Shared,
    exprs: &'a mut ExprEngine,
    journey: &'a Journey,
    node_id: &'a str,
    instance: &'a mut Instance,
    work: &'a mut ProfileWork,
    patches: &'a mut Vec<Value>,
    now: Timestamp,
) -> StepCx<'a> {
    let plugin_calls = PluginCallLog::default();
    let lookups = Arc::new(std::sync::Mutex::new(instance.data.lookups.clone()));
    let call = Arc::new(CallInfo {
        journey_id: journey.id.clone(),
        version: journey.version,
        node_id: node_id.to_string(),
        instance_id: instance.id.clone(),
        profile_id: instance.profile_id.clone(),
        calls: Some(plugin_calls.clone()),
        lookups: Some(lookups.clone()),
        audiences: work.member_of.clone(),
    });
    StepCx {
        journey,
        node_id,
        instance,
        tz: instance_tz(journey, work.profile.timezone.as_deref()),
        profile: &mut work.doc,
        profile_patches: patches,
        now,
        exprs,
        actions: &shared.actions,
        settings: &shared.settings,
        metrics: &shared.metrics,
        throttle: &shared.throttle,
        plugin_calls,
        lookups,
        call,
    }
}

/// The zone an instance reads time in: the profile's when the journey follows it and the
/// profile has a valid one, else the journey's.
fn instance_tz(journey: &Journey, profile_tz: Option<&str>) -> TimeZone {
    if journey.props.use_profile_time_zone
        && let Some(tz) = profile_tz.and_then(|name| TimeZone::get(name).ok())
    {
        return tz;
    }
    journey.props.time_zone.clone()
}

#[allow(clippy::too_many_arguments)]
fn step(
    inst: &Instance,
    node: &str,
    kind: &str,
    status: StepStatus,
    at: Timestamp,
    event_id: Option<&str>,
    code: Option<String>,
    message: Option<String>,
    detail: Option<Value>,
) -> Step {
    Step {
        seq: 0,
        instance_id: Some(inst.id.clone()),
        journey_id: inst.journey_id.clone(),
        version: inst.version,
        profile_id: inst.profile_id.clone(),
        event_id: event_id.map(str::to_string),
        node: node.to_string(),
        kind: kind.to_string(),
        status,
        at,
        code,
        message,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, profile: &str) -> Msg {
        Msg::Event(Event {
            id: id.into(),
            event_type: "e".into(),
            profile_id: profile.into(),
            timestamp: Timestamp::UNIX_EPOCH,
            received_at: Timestamp::UNIX_EPOCH,
            data: Value::Null,
        })
    }

    /// The lanes as event ids.
    fn ids(lanes: Vec<Vec<Msg>>) -> Vec<Vec<String>> {
        lanes
            .into_iter()
            .map(|lane| {
                lane.into_iter()
                    .map(|m| match m {
                        Msg::Event(e) => e.id,
                        _ => unreachable!("events only"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_profiles_messages_share_a_lane_in_their_order_and_profiles_are_dealt_round() {
        let msgs = || {
            [
                ("1", "a"),
                ("2", "b"),
                ("3", "a"),
                ("4", "c"),
                ("5", "d"),
                ("6", "b"),
                ("7", "e"),
            ]
            .into_iter()
            .map(|(id, p)| event(id, p))
        };
        // a, b, c take lanes 0, 1, 2; d and e come back round to lanes 0 and 1.
        assert_eq!(
            ids(lanes(msgs(), 3)),
            [vec!["1", "3", "5"], vec!["2", "6", "7"], vec!["4"]]
        );
        // Enough lanes: one a profile.
        assert_eq!(ids(lanes(msgs(), 16)).len(), 5);
        // One lane (or none asked): every message in its order.
        for max in [0, 1] {
            assert_eq!(
                ids(lanes(msgs(), max)),
                [vec!["1", "2", "3", "4", "5", "6", "7"]]
            );
        }
        assert!(lanes(std::iter::empty(), 4).is_empty());
    }
}
