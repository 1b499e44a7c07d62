//! Which paused instances an arriving event may wake.
//!
//! Owns the choice of candidates: among one profile's live instances, those waiting on a
//! reaction node that awaits the event's type. Matching never looks beyond the profile's
//! own instances, so its cost does not depend on how many reactions wait elsewhere. It
//! never evaluates conditions (the reaction does, through
//! `Reaction::branch`) and never changes an instance.

use crate::compile::Journey;
use crate::journal::{Instance, Status};
use crate::runtime::journeys::JourneySet;

/// Whether `instance` is paused in `journey` (its version) on a node that awaits events
/// of `event_type`.
pub fn awaits(journey: &Journey, instance: &Instance, event_type: &str) -> bool {
    instance.status == Status::Waiting
        && instance
            .node
            .as_deref()
            .and_then(|n| journey.node(n))
            .is_some_and(|(_, node)| node.kind.awaits(event_type))
}

/// The ids of the instances among `live` (one profile's, in entry order) that an event
/// of `event_type` may wake, in that order.
pub fn candidates(set: &JourneySet, live: &[Instance], event_type: &str) -> Vec<String> {
    live.iter()
        .filter(|i| {
            set.version(&i.journey_id, i.version)
                .is_some_and(|j| awaits(j, i, event_type))
        })
        .map(|i| i.id.clone())
        .collect()
}
