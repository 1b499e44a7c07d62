//! Entry admission: whether a profile may enter a journey version, and its first node.
//!
//! Owns the order of the entry rules (the profile exists, test mode, pause holds,
//! repeats of one trigger, one live instance, schedule window, re-entrance, capping,
//! `when`; the pure ones are in [`super::entry`]), the instance an admitted entry creates,
//! the step that records a refusal, a jump node's entry into another journey, and
//! starting the instances that jumps admitted.
//! Never runs a node beyond the first: [`super::activation`] does.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Partition;
use super::activation::{Activation, Ending, JumpTo, action_hold, instance_tz, step, step_cx};
use super::batch::{Batch, Start};
use super::entry::{self, Discard};
use crate::activities::Outcome;
use crate::code::Code;
use crate::compile::{EntryKind, Journey};
use crate::expr::time::add_span;
use crate::expr::{CallInfo, EvalEnv, ScopeData};
use crate::ids;
use crate::journal::{Instance, InstanceData, Status, Step, StepStatus, entry_key};
use crate::store::{HeldEntry, LastEntry};

/// What caused an entry: its id and its time (instance ids derive from both, so both
/// must be the same when the trigger is replayed), the entry event as expressions see it,
/// and the stored event it came from, if any.
pub(super) struct Trigger<'a> {
    pub(super) id: &'a str,
    pub(super) at: Timestamp,
    pub(super) profile_id: &'a str,
    pub(super) doc: &'a Value,
    pub(super) event_id: Option<&'a str>,
    /// When the triggering event happened (its `timestamp`), for an entry by a profile's
    /// event: re-entrance and capping count in event time, so late events are judged
    /// by when they happened. `None`: the entry's time is when it is processed.
    pub(super) happened_at: Option<Timestamp>,
}

impl Trigger<'_> {
    /// The entry's time for re-entrance and capping: when the event happened, but never
    /// after `now` (a client clock ahead of the engine's cannot date entries ahead).
    fn entry_time(&self, now: Timestamp) -> Timestamp {
        self.happened_at.map_or(now, |t| t.min(now))
    }
}

impl Partition {
    /// Admits the profile into `journey` and runs it until it pauses or ends; a refusal
    /// is recorded as a discarded step (except a repeat of an entry already made).
    pub(super) async fn try_enter(
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
                if !matches!(
                    d.code,
                    Code::Duplicate | Code::NotATestProfile | Code::TestProfile
                ) {
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
    pub(super) fn admit(
        &mut self,
        batch: &mut Batch,
        journey: &Arc<Journey>,
        trigger: &Trigger<'_>,
        now: Timestamp,
    ) -> Result<Instance, Discard> {
        let missing = || Discard {
            code: Code::ProfileMissing,
            message: "the profile does not exist".into(),
        };
        let work = batch
            .profiles
            .get_mut(trigger.profile_id)
            .ok_or_else(missing)?;
        if !work.exists {
            return Err(missing());
        }
        let test_profile = work.profile.attributes.get("test_profile") == Some(&Value::Bool(true));
        let draft_under_test = batch.set.get(&journey.id).is_some_and(|j| j.test.is_some());
        entry::check_test_mode(journey, test_profile, draft_under_test)?;
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
                code: Code::Held,
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
        if last.is_some_and(|last| last.id == id) {
            return Err(Discard {
                code: Code::Duplicate,
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
        entry::check(journey, now, entry_at, live, last.map(|last| last.at))?;
        entry::check_capping(journey, &batch.audiences.capping, &work.capping, entry_at)?;
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
                        code: Code::EntryConditionFalse,
                        message: format!("entry.when is false: {}", when.excerpt()),
                    });
                }
                Err(e) => {
                    return Err(Discard {
                        code: Code::ExprEval,
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
        LastEntry::record(
            &mut work.last_entered,
            key.into_owned(),
            LastEntry::new(now, entry_at, id),
        );
        // Counted in entry time; counts no entry up to `capping_count_days` late would
        // find any more go as new ones come (a rule that no longer exists keeps them).
        let late_days = self.shared.settings.capping_count_days;
        for rule_id in &journey.props.capping {
            let since = batch
                .audiences
                .capping
                .get(rule_id)
                .map_or(Timestamp::MIN, |rule| rule.kept_since(now, late_days));
            work.count(&mut batch.write, rule_id.clone(), since, entry_at);
        }
        batch.write.steps.push(Step {
            event_id: trigger.event_id.map(str::to_string),
            ..step(&inst, "entry", "entry", StepStatus::Entered, now)
        });
        Ok(inst)
    }

    /// Admits the profile into the live event journey `target` (its first node runs
    /// after the current activation) and says where the jumping instance goes.
    pub(super) fn jump(
        &mut self,
        batch: &mut Batch,
        from: &Instance,
        to: JumpTo<'_>,
        now: Timestamp,
    ) -> Outcome {
        let JumpTo {
            journey: target,
            data,
            next,
            on_error,
        } = to;
        let journey = batch
            .set
            .get(target)
            .and_then(|j| j.entry_version())
            .cloned();
        let Some(journey) = journey else {
            return Outcome::fail(
                Code::JumpFailed,
                format!("journey {target:?} is not live"),
                on_error,
            );
        };
        let Some(event_type) = journey.entry.event_type().map(str::to_string) else {
            return Outcome::fail(
                Code::JumpFailed,
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
            Err(d) if d.code == Code::Held => {
                batch
                    .write
                    .steps
                    .push(discard_step(&journey, &trigger, &d, now));
                Outcome::goto(next).with_detail(
                    json!({"jumped_to": {"journey": journey.id, "version": journey.version, "held": true}}),
                )
            }
            Err(d) => {
                if d.code != Code::Duplicate {
                    batch
                        .write
                        .steps
                        .push(discard_step(&journey, &trigger, &d, now));
                }
                Outcome::fail(
                    Code::JumpFailed,
                    format!(
                        "journey {target:?} refused the entry: {} ({})",
                        d.message, d.code
                    ),
                    on_error,
                )
            }
        }
    }

    /// Runs an admitted instance's first node and drives it on.
    pub(super) async fn start(
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
        let act = Activation {
            journey,
            event_id,
            now,
        };
        let mut patches = Vec::new();
        if journey.nodes[start].kind.held_by_pause()
            && let Some(until) = action_hold(&batch.set, &journey.id, now)
        {
            inst.data.held = true;
            let outcome = Outcome::pause(Some(until));
            self.drive(batch, act, inst, start, outcome, patches).await;
            return;
        }
        let outcome = {
            let node_id = &journey.nodes[start].id;
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                act,
                node_id,
                &mut inst,
                work,
                &mut patches,
            );
            journey.nodes[start].kind.enter(&mut cx).await
        };
        self.drive(batch, act, inst, start, outcome, patches).await;
    }

    /// Starts the instances that jumps admitted, in order (a started instance may jump
    /// again; `max_steps_per_activation` bounds the chain).
    pub(super) async fn run_starts(&mut self, batch: &mut Batch) {
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
                        Ending {
                            status: Status::Failed,
                            code: Code::StepLimit,
                            message: "too many jumps in one activation (max_steps_per_activation)",
                        },
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
}

/// The step recording a refused entry.
pub(super) fn discard_step(
    journey: &Journey,
    trigger: &Trigger<'_>,
    d: &Discard,
    now: Timestamp,
) -> Step {
    Step {
        seq: 0,
        instance_id: None,
        journey_id: journey.id.clone(),
        version: journey.version,
        profile_id: trigger.profile_id.to_string(),
        event_id: trigger.event_id.map(str::to_string),
        node: "entry".into(),
        kind: "entry".into(),
        status: if d.code == Code::Held {
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
