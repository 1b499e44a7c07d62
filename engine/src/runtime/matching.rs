//! Which paused instances an arriving event may wake.
//!
//! Owns the choice of candidates: among one profile's live instances, those waiting on a
//! reaction node that awaits the event's type. Matching never looks beyond the profile's
//! own instances, so its cost does not depend on how many reactions wait elsewhere. It
//! never evaluates conditions (the reaction does, through
//! [`crate::activities::reaction::Reaction::branch`]) and never changes an instance.

use crate::activities::NodeKind;
use crate::activities::reaction::Reaction;
use crate::compile::Journey;
use crate::runtime::instance::{Instance, Status};
use crate::runtime::journeys::JourneySet;

/// The reaction `instance` is paused on in `journey` (its version), if that reaction
/// awaits events of `event_type`.
pub fn awaited<'j>(
    journey: &'j Journey,
    instance: &Instance,
    event_type: &str,
) -> Option<&'j Reaction> {
    if instance.status != Status::Waiting {
        return None;
    }
    let (_, node) = journey.node(instance.node.as_deref()?)?;
    match &node.kind {
        NodeKind::Reaction(r) if r.awaits(event_type) => Some(r),
        _ => None,
    }
}

/// The ids of the instances among `live` (one profile's, in entry order) that an event
/// of `event_type` may wake, in that order.
pub fn candidates(set: &JourneySet, live: &[Instance], event_type: &str) -> Vec<String> {
    live.iter()
        .filter(|i| {
            set.version(&i.journey_id, i.version)
                .is_some_and(|j| awaited(j, i, event_type).is_some())
        })
        .map(|i| i.id.clone())
        .collect()
}
