//! One handler per message a partition takes: an event, a run's entry request, an end
//! request (stop, close, test end), a held entry released after a pause, a due timer.
//!
//! Owns turning a message into calls on the other rooms (admission, reactions, the step
//! interpreter) for the message's profile. Never writes to the store itself: everything
//! goes into the batch.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::oneshot;

use super::Partition;
use super::activation::{Activation, Ending, LOST_CALL_GRACE, action_hold, step_cx, with_earlier};
use super::admission::{Trigger, discard_step};
use super::batch::Batch;
use super::entry::Discard;
use crate::code::Code;
use crate::compile::Journey;
use crate::journal::{Instance, Status};
use crate::model::Event;
use crate::runtime::calls::Called;
use crate::runtime::matching;
use crate::runtime::profile_ops::{EnterReply, EnterRequest};
use crate::store::{DueTimer, HeldEntry, JourneyStatus, ProcessedEvent};

impl Partition {
    pub(super) async fn on_event(
        &mut self,
        batch: &mut Batch,
        seq: i64,
        event: Event,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        self.load(batch, &event.profile_id)
            .await?
            .ensure_exists(now);

        // 1. Exit criteria on this event type end instances before anything else.
        self.exit_where(batch, &event.profile_id, now, Code::ExitCriteria, |j| {
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

        // 4. Delivery feedback counts for its message node's report, in the commit that
        // marks the event processed (once per event).
        if let Some(f) = crate::runtime::deliveries::feedback_count(&event) {
            batch.write.feedback.push(f);
        }

        batch.received.push(event.received_at);
        batch
            .write
            .processed_events
            .push(ProcessedEvent { seq, id: event.id });
        Ok(())
    }

    /// A run asks the profile to enter a journey version.
    pub(super) async fn on_enter(
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
            None => Err(Code::JourneyNotLive.to_string()),
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
                    Err(d) if d.code == Code::Duplicate => Ok(()),
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
    pub(super) async fn on_end(
        &mut self,
        batch: &mut Batch,
        request: crate::runtime::EndRequest,
        reply: oneshot::Sender<u64>,
    ) -> anyhow::Result<()> {
        let now = self.shared.clock.now();
        let work = self.load(batch, &request.profile_id).await?;
        let ending: Vec<(Instance, String)> = work
            .instances
            .iter()
            .filter(|i| {
                i.journey_id == request.journey_id
                    && i.status.is_live()
                    && request.version.is_none_or(|v| i.version == v)
            })
            .map(|i| (i.clone(), request.message.clone()))
            .collect();
        let count = ending.len() as u64;
        self.end_all(batch, ending, request.status, request.code, now);
        batch.replies.push(Box::new(move |_| {
            let _ = reply.send(count);
        }));
        Ok(())
    }

    /// Tries a held entry again now that its journey resumed; the held row goes in the
    /// same commit as the entry.
    pub(super) async fn on_release(
        &mut self,
        batch: &mut Batch,
        held: HeldEntry,
    ) -> anyhow::Result<()> {
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
                        code: Code::JourneyNotLive,
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

    pub(super) async fn on_timer(
        &mut self,
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
                Ending {
                    status: Status::Failed,
                    code: Code::JourneyMissing,
                    message: "the instance's journey version or node is not loaded",
                },
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
                Ending {
                    status: Status::Stopped,
                    code: Code::JourneyStopped,
                    message: "the journey was stopped",
                },
                now,
            );
            self.store_instance(batch, inst);
            return Ok(());
        }
        if now >= inst.deadline {
            let (code, message) = match journey.props.end_at {
                Some(end) if now >= end => (Code::JourneyEndDate, "the journey's end date passed"),
                _ => (Code::Timeout, "the journey's global timeout passed"),
            };
            self.end(
                batch,
                &mut inst,
                Some(&journey),
                Ending {
                    status: Status::TimedOut,
                    code,
                    message,
                },
                now,
            );
            self.store_instance(batch, inst);
            return Ok(());
        }
        if let Some(ticket) = &inst.data.calling {
            if self.shared.calls.in_flight(ticket) {
                // The call outlived its deadline on this clock; its answer is on its way.
                inst.wake_at = now
                    .checked_add(LOST_CALL_GRACE)
                    .ok()
                    .map(|at| at.min(inst.deadline));
                inst.updated_at = now;
                batch.new_timer = true;
                self.store_instance(batch, inst);
                return Ok(());
            }
            // Its answer was lost (a crash, a stop): the node calls again, same key.
            inst.data.calling = None;
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
        let act = Activation {
            journey: &journey,
            event_id: None,
            now,
        };
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
            let kind = &journey.nodes[node_ref].kind;
            if released {
                kind.enter(&mut cx).await
            } else {
                kind.on_timer(&mut cx).await
            }
        };
        self.drive(batch, act, inst, node_ref, outcome, patches)
            .await;
        Ok(())
    }

    /// The answer of a call that left its batch: the node reads it and the instance
    /// moves on, unless it moved or ended meanwhile (stopped, exited, timed out).
    pub(super) async fn on_called(
        &mut self,
        batch: &mut Batch,
        called: Called,
    ) -> anyhow::Result<()> {
        self.shared.calls.answered(&called.ticket);
        let now = self.shared.clock.now();
        let Some(mut inst) = self
            .load(batch, &called.profile_id)
            .await?
            .instances
            .iter()
            .find(|i| i.id == called.instance_id)
            .cloned()
        else {
            return Ok(());
        };
        if inst.status != Status::Waiting || inst.data.calling.as_ref() != Some(&called.ticket) {
            return Ok(());
        }
        let Some(journey) = batch.set.version(&inst.journey_id, inst.version).cloned() else {
            return Ok(());
        };
        let Some((node_ref, node)) = inst.node.as_deref().and_then(|n| journey.node(n)) else {
            return Ok(());
        };
        inst.data.calling = None;
        let node_id = node.id.clone();
        let Some(work) = batch.profiles.get_mut(&called.profile_id) else {
            return Ok(());
        };
        let act = Activation {
            journey: &journey,
            event_id: called.event_id.as_deref(),
            now,
        };
        let mut patches = Vec::new();
        let mut outcome = {
            let mut cx = step_cx(
                &self.shared,
                &mut self.exprs,
                act,
                &node_id,
                &mut inst,
                work,
                &mut patches,
            );
            node.kind.on_result(&mut cx, called.done)
        };
        outcome.detail = with_earlier(outcome.detail, called.detail);
        self.drive(batch, act, inst, node_ref, outcome, patches)
            .await;
        Ok(())
    }
}
