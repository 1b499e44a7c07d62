//! The step interpreter: one activation of an instance, from the node a message woke
//! to the node where it pauses or ends.
//!
//! Owns applying each node's [`Outcome`] (passed, held, waiting, failed; a jump is
//! handed to [`super::admission`]), recording one step per node, the test-mode cap on
//! waits, the per-activation step budget, and ending instances. Node behaviour stays in
//! [`crate::activities`]: this room asks a node what it does (`enter`, `on_timer`,
//! `on_event`, `held_by_pause`, `awaits`) and never matches on its kind.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tracing::Instrument;

use super::Partition;
use super::batch::{Batch, ProfileWork};
use crate::activities::{Move, Outcome, StepCx, Version};
use crate::code::Code;
use crate::compile::{Journey, NodeRef};
use crate::expr::{CallInfo, ExprEngine, PluginCallLog};
use crate::journal::{Instance, Status, Step, StepStatus};
use crate::model::{Event, merge_patch};
use crate::runtime::calls::{Called, Leaving};
use crate::runtime::journeys::JourneySet;
use crate::runtime::{Msg, Shared};

/// One activation of an instance: the journey version it runs in, the event that woke
/// it (if one did) and the time. Made where a message wakes an instance, and handed to
/// every step of the activation.
#[derive(Clone, Copy)]
pub(super) struct Activation<'a> {
    pub(super) journey: &'a Journey,
    pub(super) event_id: Option<&'a str>,
    pub(super) now: Timestamp,
}

/// Where an instance goes after a step.
enum Next {
    /// On to this node.
    Node(NodeRef),
    /// Its path ends there: the instance completes.
    Complete,
    /// It waits until this time (its deadline when `None`).
    Pause(Option<Timestamp>),
    /// It fails with the step's code.
    Fail,
}

/// How an instance ends: its final status, and the code and message of its `ended` step.
pub(super) struct Ending<'a> {
    pub(super) status: Status,
    pub(super) code: Code,
    pub(super) message: &'a str,
}

/// A jump node's outcome: the journey to enter, the entry data, and where the jumping
/// instance goes after (or on a refusal).
pub(super) struct JumpTo<'a> {
    pub(super) journey: &'a str,
    pub(super) data: &'a Value,
    pub(super) next: Option<NodeRef>,
    pub(super) on_error: Option<NodeRef>,
}

impl Partition {
    pub(super) async fn react(
        &mut self,
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
        if !node.kind.awaits(&event.event_type) {
            return;
        }
        let act = Activation {
            journey: &journey,
            event_id: Some(&event.id),
            now,
        };
        let mut inst = work.instances[pos].clone();
        let mut patches = Vec::new();
        let outcome = {
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                act,
                &node_id,
                &mut inst,
                work,
                &mut patches,
            );
            node.kind.on_event(&mut cx, event)
        };
        let Some(outcome) = outcome else { return };
        self.drive(batch, act, inst, node_ref, outcome, patches)
            .await;
    }

    /// Records `outcome` of `current` (and the profile changes its node made) and keeps
    /// the instance moving until it pauses or ends.
    pub(super) async fn drive(
        &mut self,
        batch: &mut Batch,
        act: Activation<'_>,
        inst: Instance,
        current: NodeRef,
        outcome: Outcome,
        patches: Vec<Value>,
    ) {
        let span = tracing::debug_span!(
            "activation",
            journey = %act.journey.id,
            version = act.journey.version,
            instance = %inst.id,
            profile = %inst.profile_id
        );
        self.drive_steps(batch, act, inst, current, outcome, patches)
            .instrument(span)
            .await
    }

    async fn drive_steps(
        &mut self,
        batch: &mut Batch,
        act: Activation<'_>,
        mut inst: Instance,
        mut current: NodeRef,
        mut outcome: Outcome,
        mut patches: Vec<Value>,
    ) {
        let Activation {
            journey,
            event_id,
            now,
        } = act;
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
                let to = JumpTo {
                    journey: target,
                    data,
                    next: *next,
                    on_error: *on_error,
                };
                outcome = self.jump(batch, &inst, to, now);
            }
            if matches!(outcome.next, Move::Call(_)) {
                let earlier = outcome.detail.take();
                let Move::Call(request) = std::mem::replace(&mut outcome.next, Move::Goto(None))
                else {
                    unreachable!("matched above")
                };
                match self.shared.calls.run(*request).await {
                    Ok(done) => {
                        let Some(work) = batch.profiles.get_mut(&profile_id) else {
                            break;
                        };
                        let node = &journey.nodes[current];
                        let mut cx = step_cx(
                            &self.shared,
                            &mut self.exprs,
                            act,
                            &node.id,
                            &mut inst,
                            work,
                            &mut patches,
                        );
                        outcome = node.kind.on_result(&mut cx, done);
                        outcome.detail = with_earlier(outcome.detail, earlier);
                        continue;
                    }
                    Err(leaving) => {
                        self.leave_batch(batch, &mut inst, event_id, earlier, leaving, now);
                        break;
                    }
                }
            }
            let node = &journey.nodes[current];
            let (status, code, message, next) = match &outcome.next {
                Move::Goto(Some(n)) => (StepStatus::Passed, None, None, Next::Node(*n)),
                Move::Goto(None) => (StepStatus::Passed, None, None, Next::Complete),
                Move::Pause { wake_at } if inst.data.held => (
                    StepStatus::Held,
                    Some(Code::ActionsHeld),
                    Some("the journey is paused; the action waits for it to resume".to_string()),
                    Next::Pause(*wake_at),
                ),
                Move::Pause { wake_at } => (StepStatus::Waiting, None, None, Next::Pause(*wake_at)),
                Move::Defer {
                    until,
                    code,
                    message,
                } => (
                    StepStatus::Waiting,
                    Some(*code),
                    Some(message.clone()),
                    Next::Pause(Some(*until)),
                ),
                Move::Fail {
                    code,
                    message,
                    on_error,
                } => (
                    StepStatus::Failed,
                    Some(*code),
                    Some(message.clone()),
                    match on_error {
                        Some(n) => Next::Node(*n),
                        None => Next::Fail,
                    },
                ),
                Move::Skip {
                    code,
                    message,
                    next,
                } => (
                    StepStatus::Skipped,
                    Some(*code),
                    Some(message.clone()),
                    match next {
                        Some(n) => Next::Node(*n),
                        None => Next::Complete,
                    },
                ),
                Move::Jump { .. } | Move::Call(_) => {
                    unreachable!("jumps and calls are resolved above")
                }
            };
            // Test mode: waits and reaction timeouts last at most its `wait_seconds`; the
            // step says when the instance will really wake, and the time without the cap.
            let next = match (next, &journey.test) {
                (Next::Pause(Some(wake_at)), Some(test)) => {
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
                    Next::Pause(Some(wake_at.min(cap)))
                }
                (next, _) => next,
            };
            // A message sent: counted for frequency caps, with the profile, in this commit
            // (a dry run sends nothing).
            if let Some(key) = outcome.counted.take()
                && !journey.test.as_ref().is_some_and(|t| t.dry_run)
                && let Some(work) = batch.profiles.get_mut(&profile_id)
            {
                // Counts no cap reads any more go as new ones come.
                let since = now
                    .checked_sub(self.shared.messaging.count_reach(&key))
                    .unwrap_or(Timestamp::MIN);
                work.count(&mut batch.write, key, since, now);
            }
            tracing::debug!(node = %node.id, kind = node.kind.name(), status = status.as_str(), code = code.map(Code::as_str), "step");
            batch.write.steps.push(Step {
                event_id: event_id.map(str::to_string),
                code: code.map(String::from),
                message: message.clone(),
                detail: outcome.detail.take(),
                ..step(&inst, node.id.as_str(), node.kind.name(), status, now)
            });
            match next {
                Next::Pause(wake_at) => {
                    // Paused: wake at the node's time, or at the deadline at the latest.
                    inst.status = Status::Waiting;
                    inst.wake_at = Some(wake_at.map_or(inst.deadline, |w| w.min(inst.deadline)));
                    inst.updated_at = now;
                    batch.new_timer = true;
                    break;
                }
                Next::Fail => {
                    let code = code.unwrap_or(Code::Failed);
                    let message = message.unwrap_or_default();
                    self.end(
                        batch,
                        &mut inst,
                        Some(journey),
                        Ending {
                            status: Status::Failed,
                            code,
                            message: &message,
                        },
                        now,
                    );
                    break;
                }
                Next::Complete => {
                    self.end(
                        batch,
                        &mut inst,
                        Some(journey),
                        Ending {
                            status: Status::Completed,
                            code: Code::Completed,
                            message: "",
                        },
                        now,
                    );
                    break;
                }
                Next::Node(next) => {
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        self.end(batch, &mut inst, Some(journey), Ending { status: Status::Failed, code: Code::StepLimit, message: "too many steps in one activation (max_steps_per_activation)" }, now);
                        break;
                    }
                    current = next;
                    let node = &journey.nodes[current];
                    inst.node = Some(node.id.clone());
                    inst.status = Status::Active;
                    inst.wake_at = None;
                    inst.data.step += 1;
                    if node.kind.held_by_pause()
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
                        act,
                        &node.id,
                        &mut inst,
                        work,
                        &mut patches,
                    );
                    outcome = node.kind.enter(&mut cx).await;
                }
            }
        }
        self.store_instance(batch, inst);
    }

    /// Commits `inst` as calling (no step yet: the node's step comes with the answer)
    /// and lets the call run on outside the batch; its answer comes back as
    /// [`Msg::Called`]. The instance's timer is the call's deadline and a second more:
    /// if the answer is lost in a crash, the timer makes the call again.
    fn leave_batch(
        &self,
        batch: &mut Batch,
        inst: &mut Instance,
        event_id: Option<&str>,
        detail: Option<Value>,
        leaving: Leaving,
        now: Timestamp,
    ) {
        let recall_at = leaving
            .deadline
            .checked_add(LOST_CALL_GRACE)
            .unwrap_or(leaving.deadline);
        inst.status = Status::Waiting;
        inst.wake_at = Some(recall_at.min(inst.deadline));
        inst.updated_at = now;
        inst.data.calling = Some(leaving.ticket.clone());
        batch.new_timer = true;
        let (profile_id, instance_id) = (inst.profile_id.clone(), inst.id.clone());
        let (ticket, event_id) = (leaving.ticket.clone(), event_id.map(str::to_string));
        let running = self.shared.calls.send_off(leaving);
        let shared = self.shared.clone();
        self.shared.spawn(async move {
            let done = running.await;
            let called = Called {
                profile_id,
                instance_id,
                ticket,
                event_id,
                detail,
                done,
            };
            // A stopped partition drops the answer: the timer asks again at the next start.
            let _ = shared.send(Msg::Called(Box::new(called))).await;
        });
    }

    /// Ends the instance where it stands, with an `ended` step carrying the ending's code.
    pub(super) fn end(
        &self,
        batch: &mut Batch,
        inst: &mut Instance,
        journey: Option<&Journey>,
        ending: Ending<'_>,
        now: Timestamp,
    ) {
        let Ending {
            status,
            code,
            message,
        } = ending;
        inst.status = status;
        inst.wake_at = None;
        inst.ended_at = Some(now);
        inst.updated_at = now;
        inst.end_reason = Some(code.to_string());
        let node = inst.node.clone().unwrap_or_default();
        let kind = journey
            .and_then(|j| j.node(&node))
            .map_or("unknown", |(_, n)| n.kind.name());
        batch.write.steps.push(Step {
            code: Some(code.to_string()),
            message: (!message.is_empty()).then(|| message.to_string()),
            ..step(inst, &node, kind, StepStatus::Ended, now)
        });
    }
}

/// How long after a call's deadline its instance's timer makes the call again, when its
/// answer has not come back (lost in a crash).
pub(super) const LOST_CALL_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// A node's details after a call, with what the node gathered before it (the plugin
/// calls of its parameters).
pub(super) fn with_earlier(detail: Option<Value>, earlier: Option<Value>) -> Option<Value> {
    let Some(Value::Object(earlier)) = earlier else {
        return detail;
    };
    match detail {
        Some(Value::Object(mut map)) => {
            for (k, v) in earlier {
                map.entry(k).or_insert(v);
            }
            Some(Value::Object(map))
        }
        None => Some(Value::Object(earlier)),
        Some(other) => Some(other),
    }
}

/// Until when an instance reaching an action node of this journey waits, if the journey
/// holds actions now.
pub(super) fn action_hold(set: &JourneySet, journey_id: &str, now: Timestamp) -> Option<Timestamp> {
    let j = set.get(journey_id)?;
    let pause = j.pause.as_ref()?;
    (j.holds_actions() && now < pause.until).then_some(pause.until)
}

/// What a node sees while it runs: the zone follows the journey (or the profile), and
/// the look-up cache starts from the instance's.
pub(super) fn step_cx<'a>(
    shared: &'a Shared,
    exprs: &'a mut ExprEngine,
    act: Activation<'a>,
    node_id: &'a str,
    instance: &'a mut Instance,
    work: &'a mut ProfileWork,
    patches: &'a mut Vec<Value>,
) -> StepCx<'a> {
    let journey = act.journey;
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
        journey: Version {
            id: &journey.id,
            version: journey.version,
            split_hash: journey.split_hash,
            dry_run: journey.test.as_ref().is_some_and(|t| t.dry_run),
        },
        node_id,
        instance,
        tz: instance_tz(journey, work.profile.timezone.as_deref()),
        profile: &mut work.doc,
        profile_patches: patches,
        counted: &work.capping,
        now: act.now,
        exprs,
        actions: &shared.actions,
        settings: &shared.settings,
        metrics: &shared.metrics,
        throttle: &shared.throttle,
        messaging: &shared.messaging,
        plugin_calls,
        lookups,
        call,
    }
}

/// The zone an instance reads time in: the profile's when the journey follows it and the
/// profile has a valid one, else the journey's.
pub(super) fn instance_tz(journey: &Journey, profile_tz: Option<&str>) -> TimeZone {
    if journey.props.use_profile_time_zone
        && let Some(tz) = profile_tz.and_then(|name| TimeZone::get(name).ok())
    {
        return tz;
    }
    journey.props.time_zone.clone()
}

/// A step of `inst` at `node`, with no event, code, message or detail (callers add
/// them with struct update syntax).
pub(super) fn step(
    inst: &Instance,
    node: &str,
    kind: &str,
    status: StepStatus,
    at: Timestamp,
) -> Step {
    Step {
        seq: 0,
        instance_id: Some(inst.id.clone()),
        journey_id: inst.journey_id.clone(),
        version: inst.version,
        profile_id: inst.profile_id.clone(),
        event_id: None,
        node: node.to_string(),
        kind: kind.to_string(),
        status,
        at,
        code: None,
        message: None,
        detail: None,
    }
}
