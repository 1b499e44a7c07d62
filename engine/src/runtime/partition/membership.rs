//! Audience membership inside a partition: streaming evaluation after profile writes,
//! qualification entries, and exit criteria.
//!
//! Owns turning a profile's writes into audience transitions (recorded in the same
//! commit as the write), the qualification entries they cause (bounded by
//! `max_audience_rounds`), and ending instances whose exit criterion holds
//! (`EXIT_CRITERIA`). Never changes a profile's attributes.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::json;

use super::Partition;
use super::activation::Ending;
use super::admission::Trigger;
use super::batch::Batch;
use crate::code::Code;
use crate::compile::{EntryKind, Journey};
use crate::expr::{CallInfo, EvalEnv, ScopeData};
use crate::journal::{Instance, Status};
use crate::store::{Membership, Transition};

impl Partition {
    /// Records a membership change and returns the transition.
    pub(super) fn transition(
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
    pub(super) async fn settle(
        &mut self,
        batch: &mut Batch,
        profile_id: &str,
        mut pending: Vec<Transition>,
    ) {
        let now = self.shared.clock.now();
        for _ in 0..self.shared.settings.max_audience_rounds.max(1) {
            pending.extend(self.evaluate(batch, profile_id, now));
            if pending.is_empty() {
                return;
            }
            for t in std::mem::take(&mut pending) {
                let entered = t.direction == "entered";
                if !entered {
                    self.exit_where(batch, profile_id, now, Code::ExitCriteria, |j| {
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
    pub(super) fn evaluate(
        &mut self,
        batch: &mut Batch,
        profile_id: &str,
        now: Timestamp,
    ) -> Vec<Transition> {
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
    pub(super) fn exit_where(
        &mut self,
        batch: &mut Batch,
        profile_id: &str,
        now: Timestamp,
        code: Code,
        reason: impl Fn(&Journey) -> Option<String>,
    ) {
        let Some(work) = batch.profiles.get(profile_id) else {
            return;
        };
        let ending = work
            .instances
            .iter()
            .filter(|i| i.status.is_live())
            .filter_map(|inst| {
                // A version that is no longer loaded has no criteria (its timer ends it).
                let journey = batch.set.version(&inst.journey_id, inst.version)?;
                reason(journey).map(|message| (inst.clone(), message))
            })
            .collect();
        self.end_all(batch, ending, Status::Exited, code, now);
    }

    /// Ends each instance (with its message) with `status` and `code`, each with an
    /// `ended` step, and keeps it in the batch.
    pub(super) fn end_all(
        &mut self,
        batch: &mut Batch,
        instances: Vec<(Instance, String)>,
        status: Status,
        code: Code,
        now: Timestamp,
    ) {
        for (mut inst, message) in instances {
            let journey = batch.set.version(&inst.journey_id, inst.version).cloned();
            let ending = Ending {
                status,
                code,
                message: &message,
            };
            self.end(batch, &mut inst, journey.as_deref(), ending, now);
            self.store_instance(batch, inst);
        }
    }
}
