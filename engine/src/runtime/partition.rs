//! A partition: the single task that steps the instances of the profiles hashing to it.
//!
//! It takes every message waiting (up to `partition_batch`), handles them in order against
//! an in-memory working set loaded from the store, commits everything the batch changed
//! in one store write, and only then acknowledges timers and lets the next batch start.
//! A crash before the commit loses nothing: the events are still unprocessed in the store
//! and the timers still due, so both are handled again, with the same instance ids and
//! idempotency keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexSet;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::instance::{Instance, InstanceData, Status, Step, StepStatus};
use super::journeys::JourneySet;
use super::{Msg, Shared, entry};
use crate::activities::{Move, Outcome, StepCx};
use crate::compile::{Journey, NodeRef};
use crate::expr::time::add_span;
use crate::expr::{CallInfo, EvalEnv, ExprEngine, PluginCallLog, ScopeData};
use crate::ids;
use crate::model::Event;
use crate::store::{DueTimer, JourneyStatus, ProfileState, WriteBatch};

pub(super) fn spawn(index: usize, shared: Arc<Shared>, rx: mpsc::Receiver<Msg>) {
    tokio::spawn(async move {
        let exprs = shared.exprs();
        let mut partition = Partition {
            index,
            shared,
            exprs,
        };
        partition.run(rx).await;
    });
}

struct Partition {
    index: usize,
    shared: Arc<Shared>,
    exprs: ExprEngine,
}

/// What a batch knows of one profile.
struct ProfileWork {
    exists: bool,
    /// The profile as expressions see it.
    doc: Value,
    timezone: Option<String>,
    /// Live instances, plus those created or ended in this batch.
    instances: Vec<Instance>,
    last_entered: HashMap<String, Timestamp>,
}

impl ProfileWork {
    fn new(profile_id: &str, state: ProfileState) -> Self {
        let (exists, doc, timezone) = match &state.profile {
            Some(p) => (true, p.to_json(), p.timezone.clone()),
            None => (false, json!({"id": profile_id}), None),
        };
        ProfileWork {
            exists,
            doc,
            timezone,
            instances: state.live,
            last_entered: state.last_entered,
        }
    }
}

/// Everything one batch has read and changed.
#[derive(Default)]
struct Batch {
    profiles: HashMap<String, ProfileWork>,
    /// (profile, instance) pairs changed in this batch, in order.
    dirty: IndexSet<(String, String)>,
    write: WriteBatch,
    acks: Vec<oneshot::Sender<()>>,
    new_timer: bool,
}

impl Batch {
    fn mark_dirty(&mut self, profile_id: &str, instance_id: &str) {
        self.dirty
            .insert((profile_id.to_string(), instance_id.to_string()));
    }
}

impl Partition {
    async fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        let max = self.shared.settings.partition_batch.max(1);
        let mut msgs = Vec::with_capacity(max);
        while rx.recv_many(&mut msgs, max).await > 0 {
            let set = self.shared.journeys.snapshot();
            let mut batch = Batch::default();
            self.preload(&mut batch, &msgs).await;
            if let Some(ext) = &self.shared.external
                && ext.generation() != self.exprs.generation()
            {
                // Plugins were installed: rebuild with their functions.
                self.exprs = self.shared.exprs();
            }
            for msg in msgs.drain(..) {
                let result = match msg {
                    Msg::Event(event) => self.on_event(&set, &mut batch, event).await,
                    Msg::Timer(timer, ack) => {
                        batch.acks.push(ack);
                        self.on_timer(&set, &mut batch, timer).await
                    }
                };
                if let Err(e) = result {
                    tracing::error!(partition = self.index, error = %e, "cannot load state; the message will be retried after a restart");
                }
            }
            self.commit(batch).await;
        }
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
        let write = Arc::new(std::mem::take(&mut batch.write));
        let mut delay = Duration::from_millis(50);
        while let Err(e) = self.shared.store.commit(write.clone()).await {
            tracing::error!(partition = self.index, error = %e, "commit failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        if batch.new_timer {
            self.shared.timer_kick.notify_one();
        }
        for ack in batch.acks {
            let _ = ack.send(());
        }
    }

    /// Reads the state of every profile the messages touch, in one store round trip.
    async fn preload(&self, batch: &mut Batch, msgs: &[Msg]) {
        let mut ids: Vec<String> = msgs
            .iter()
            .map(|m| match m {
                Msg::Event(e) => e.profile_id.clone(),
                Msg::Timer(t, _) => t.profile_id.clone(),
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        match self.shared.store.profile_states(ids).await {
            Ok(states) => {
                for (id, state) in states {
                    batch
                        .profiles
                        .insert(id.clone(), ProfileWork::new(&id, state));
                }
            }
            // Each message loads its own profile then (and reports a lasting failure).
            Err(e) => tracing::warn!(partition = self.index, error = %e, "batch read failed"),
        }
    }

    async fn load<'b>(
        &self,
        batch: &'b mut Batch,
        profile_id: &str,
    ) -> anyhow::Result<&'b mut ProfileWork> {
        if !batch.profiles.contains_key(profile_id) {
            let mut states = self
                .shared
                .store
                .profile_states(vec![profile_id.to_string()])
                .await?;
            let state = states.remove(profile_id).unwrap_or_default();
            batch
                .profiles
                .insert(profile_id.to_string(), ProfileWork::new(profile_id, state));
        }
        batch
            .profiles
            .get_mut(profile_id)
            .ok_or_else(|| anyhow::anyhow!("profile state missing"))
    }

    async fn on_event(
        &mut self,
        set: &JourneySet,
        batch: &mut Batch,
        event: Event,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        let work = self.load(batch, &event.profile_id).await?;
        if !work.exists {
            work.exists = true;
            batch
                .write
                .profile_creates
                .push((event.profile_id.clone(), now));
        }

        // 1. Instances paused on a reaction to this event move on.
        let waiting: Vec<String> = batch.profiles[&event.profile_id]
            .instances
            .iter()
            .filter(|i| i.status == Status::Waiting)
            .map(|i| i.id.clone())
            .collect();
        for instance_id in waiting {
            self.react(set, batch, &event, &instance_id, now).await;
        }

        // 2. Journeys this event type enters.
        for journey in set.entered_by(&event.event_type) {
            self.try_enter(batch, journey, &event, now).await;
        }

        batch.write.processed_events.push(event.id);
        Ok(())
    }

    async fn react(
        &mut self,
        set: &JourneySet,
        batch: &mut Batch,
        event: &Event,
        instance_id: &str,
        now: Timestamp,
    ) {
        let Some(work) = batch.profiles.get_mut(&event.profile_id) else {
            return;
        };
        let Some(pos) = work.instances.iter().position(|i| i.id == instance_id) else {
            return;
        };
        let (journey_id, version, node_id) = {
            let i = &work.instances[pos];
            (
                i.journey_id.clone(),
                i.version,
                i.node.clone().unwrap_or_default(),
            )
        };
        let Some(journey) = set.version(&journey_id, version).cloned() else {
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

    async fn try_enter(
        &mut self,
        batch: &mut Batch,
        journey: &Arc<Journey>,
        event: &Event,
        now: Timestamp,
    ) {
        let Some(work) = batch.profiles.get_mut(&event.profile_id) else {
            return;
        };
        let live = work
            .instances
            .iter()
            .any(|i| i.journey_id == journey.id && i.status.is_live());
        let last = work.last_entered.get(&journey.id).copied();
        let discard = |code: &str, message: String| Step {
            seq: 0,
            instance_id: None,
            journey_id: journey.id.clone(),
            version: journey.version,
            profile_id: event.profile_id.clone(),
            event_id: Some(event.id.clone()),
            node: "entry".into(),
            kind: "entry".into(),
            status: StepStatus::Discarded,
            at: now,
            code: Some(code.to_string()),
            message: Some(message),
            detail: None,
        };
        if let Err(d) = entry::check(journey, now, live, last) {
            batch.write.steps.push(discard(d.code, d.message));
            return;
        }
        let tz = instance_tz(journey, work.timezone.as_deref());
        let event_doc = event.to_json();
        if let Some(when) = &journey.entry.when {
            let env = EvalEnv {
                now,
                tz: tz.clone(),
                call: Some(Arc::new(CallInfo {
                    journey_id: journey.id.clone(),
                    version: journey.version,
                    node_id: "entry".into(),
                    instance_id: String::new(),
                    profile_id: event.profile_id.clone(),
                    calls: None,
                    lookups: None,
                })),
            };
            let data = ScopeData {
                event: Some(&event_doc),
                profile: Some(&work.doc),
                ..Default::default()
            };
            match self.exprs.eval_bool(when, &data, &env) {
                Ok(true) => {}
                Ok(false) => {
                    batch.write.steps.push(discard(
                        "ENTRY_CONDITION_FALSE",
                        format!("entry.when is false: {}", when.source()),
                    ));
                    return;
                }
                Err(e) => {
                    batch
                        .write
                        .steps
                        .push(discard("EXPR_EVAL", format!("entry.when: {e}")));
                    return;
                }
            }
        }

        let id = ids::instance_id(&journey.id, journey.version, &event.profile_id, &event.id);
        let mut deadline = add_span(now, journey.props.timeout, &tz).unwrap_or(Timestamp::MAX);
        if let Some(end) = journey.props.end_at {
            deadline = deadline.min(end);
        }
        let start = journey.start;
        let mut inst = Instance {
            id,
            journey_id: journey.id.clone(),
            version: journey.version,
            profile_id: event.profile_id.clone(),
            status: Status::Active,
            node: Some(journey.nodes[start].id.clone()),
            entered_at: now,
            updated_at: now,
            ended_at: None,
            wake_at: None,
            deadline,
            end_reason: None,
            data: InstanceData {
                event: event_doc,
                step: 1,
                ..Default::default()
            },
        };
        work.last_entered.insert(journey.id.clone(), now);
        batch.write.steps.push(Step {
            instance_id: Some(inst.id.clone()),
            status: StepStatus::Entered,
            code: None,
            message: None,
            ..discard("", String::new())
        });
        let mut patches = Vec::new();
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
        self.drive(
            batch,
            journey,
            inst,
            start,
            outcome,
            Some(&event.id),
            patches,
            now,
        )
        .await;
    }

    async fn on_timer(
        &mut self,
        set: &JourneySet,
        batch: &mut Batch,
        timer: DueTimer,
    ) -> anyhow::Result<()> {
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
        let versions = set.get(&inst.journey_id);
        let journey = versions
            .and_then(|j| j.versions.get(&inst.version))
            .cloned();
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
            journey.nodes[node_ref].kind.on_timer(&mut cx).await
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
            for p in patches.drain(..) {
                batch
                    .write
                    .profile_patches
                    .push((profile_id.clone(), p, now));
            }
            let node = &journey.nodes[current];
            let (status, code, message, next) = match &outcome.next {
                Move::Goto(n) => (StepStatus::Passed, None, None, Ok(*n)),
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
            };
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
    });
    StepCx {
        journey,
        node_id,
        instance,
        tz: instance_tz(journey, work.timezone.as_deref()),
        profile: &mut work.doc,
        profile_patches: patches,
        now,
        exprs,
        actions: &shared.actions,
        settings: &shared.settings,
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
