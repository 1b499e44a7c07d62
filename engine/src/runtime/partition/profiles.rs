//! Profile writes inside a partition: put, patch, delete and merge.
//!
//! Owns applying a profile operation to the working set, ending the live instances of a
//! deleted profile (`PROFILE_DELETED`), and moving a merged profile's instances, entry
//! history and memberships onto the profile it is merged into. Never evaluates audiences:
//! the write marks the profile for [`super::membership`].

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::Partition;
use super::activation::step;
use super::batch::{Batch, ProfileWork};
use crate::code::Code;
use crate::ids;
use crate::journal::{Step, StepStatus, entry_key};
use crate::model::consent::{self, SUBSCRIPTIONS};
use crate::model::merge_patch;
use crate::runtime::profile_ops::{ProfileOp, ProfileReply};
use crate::store::{ConsentChange, LastEntry, Transition};

impl Partition {
    /// Applies a profile write; the answer waits for the commit (and the audience
    /// re-evaluation that follows the write in [`Partition::settle`]).
    pub(super) async fn on_profile(
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
        // Consent is the `subscriptions` attribute: what a write changed there is
        // recorded with the write's source.
        let consent_before = work
            .profile
            .attributes
            .get(SUBSCRIPTIONS)
            .cloned()
            .map(|s| json!({ SUBSCRIPTIONS: s }));
        let mut consent_source: Option<(String, Option<String>)> = None;
        match op {
            ProfileOp::Put {
                attributes,
                timezone,
                aliases,
                source,
                ..
            } => {
                consent_source = Some((source.to_string(), None));
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
                source,
                ..
            } => {
                consent_source = Some((source.to_string(), None));
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
            ProfileOp::Consent {
                group,
                subscribed,
                source,
                message_id,
                ..
            } => {
                consent_source = Some((source, message_id));
                work.ensure_exists(now);
                merge_patch(
                    &mut work.profile.attributes,
                    &json!({ SUBSCRIPTIONS: { group: subscribed } }),
                );
                work.changed(now);
            }
            ProfileOp::Delete { .. } => {
                if work.exists {
                    self.remove_profile(
                        batch,
                        &id,
                        now,
                        Code::ProfileDeleted,
                        "the profile was deleted",
                    );
                    // Its personal data goes with it from events, steps and instances
                    // (docs/security.md); a merge moves that history instead.
                    batch.write.profile_erasures.push(id.clone());
                }
            }
            ProfileOp::MergeOut { into, merge_id, .. } => {
                if work.exists && into != id {
                    let merge = self.merge_record(batch, &id, into, merge_id, now);
                    let message = format!("the profile was merged into {:?}", merge.into);
                    batch.write.merges.push(merge);
                    self.remove_profile(batch, &id, now, Code::ProfileMerged, &message);
                }
            }
            ProfileOp::MergeIn { merge, .. } => {
                consent_source = Some(("merge".to_string(), None));
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
        if let Some((source, message_id)) = consent_source
            && let Some(work) = batch.profiles.get(&id)
            && (consent_before.is_some() || work.profile.attributes.get(SUBSCRIPTIONS).is_some())
        {
            let after = json!({ SUBSCRIPTIONS: work.profile.attributes.get(SUBSCRIPTIONS) });
            let before = consent_before.unwrap_or(Value::Null);
            for (group, subscribed) in consent::changes(&before, &after) {
                batch.write.consent.push(ConsentChange {
                    profile_id: id.clone(),
                    group,
                    subscribed,
                    source: source.clone(),
                    message_id: message_id.clone(),
                    at: now,
                });
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
        code: Code,
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
            LastEntry::record(
                &mut work.last_entered,
                key,
                LastEntry::new(inst.entered_at, entry_at, inst.id.clone()),
            );
            batch.new_timer |= inst.wake_at.is_some();
            batch.write.steps.push(Step {
                code: Some(Code::ProfileMerged.into()),
                message: Some(format!(
                    "moved from profile {:?} (instance {}) when it was merged into this one",
                    merge.from, old.id
                )),
                ..step(&inst, "entry", "entry", StepStatus::Entered, now)
            });
            self.store_instance(batch, inst);
        }
        batch.write.merges_done.push(merge.id);
        joins
            .iter()
            .map(|audience| self.transition(batch, id, audience, true, now))
            .collect()
    }
}
