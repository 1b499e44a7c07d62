//! Replay: the events recorded over a past period run again, in simulation, against
//! two definitions (the published version and a changed draft); the profiles whose
//! path differs are reported. Nothing is sent and nothing in the engine changes.

use jiff::Timestamp;
use serde::Serialize;

use super::{Context, NodeTotal, Request, SimError, SimEvent, SimProfile, Simulation, simulate};
use crate::model::{Event, JourneyDef, Profile};

/// What a replay found.
#[derive(Debug, Serialize)]
pub struct Replay {
    pub journey: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// What the two runs were (`version 3`, `draft`).
    pub before: String,
    pub after: String,
    pub events: usize,
    pub profiles: usize,
    /// Profiles whose path differs, with both paths (`node:status[->branch]`).
    pub moved: Vec<Moved>,
    pub totals_before: Vec<NodeTotal>,
    pub totals_after: Vec<NodeTotal>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Moved {
    pub profile_id: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

/// One side of a replay: a label and a definition.
pub struct Side {
    pub label: String,
    pub journey: JourneyDef,
}

/// What was recorded over a past period: the events received between `from` and `to`,
/// and their profiles as they are now.
pub struct Recording<'a> {
    pub journey_id: &'a str,
    pub from: Timestamp,
    pub to: Timestamp,
    pub events: &'a [Event],
    pub profiles: &'a [Profile],
}

/// Replays a recording against both definitions.
pub async fn replay(
    cx: &Context,
    recording: &Recording<'_>,
    before: Side,
    after: Side,
) -> Result<Replay, SimError> {
    let Recording {
        journey_id,
        from,
        to,
        events,
        profiles,
    } = *recording;
    let timeline: Vec<SimEvent> = events
        .iter()
        .map(|e| SimEvent {
            at: e.received_at.to_string(),
            event_type: e.event_type.clone(),
            profile_id: e.profile_id.clone(),
            data: e.data.clone(),
            id: Some(e.id.clone()),
        })
        .collect();
    let profiles: Vec<SimProfile> = profiles
        .iter()
        .map(|p| SimProfile {
            id: p.id.clone(),
            attributes: p.attributes.clone(),
            timezone: p.timezone.clone(),
        })
        .collect();
    let run = |journey: JourneyDef| Request {
        journey_id: journey_id.to_string(),
        journey,
        profiles: profiles.clone(),
        events: timeline.clone(),
        start: Some(from),
        until: None,
    };
    let a = simulate(cx, run(before.journey)).await?;
    let b = simulate(cx, run(after.journey)).await?;
    Ok(Replay {
        journey: journey_id.to_string(),
        from,
        to,
        before: before.label,
        after: after.label,
        events: events.len(),
        profiles: profiles.len(),
        moved: moved(&a, &b),
        totals_before: a.totals,
        totals_after: b.totals,
    })
}

fn summary(sim: &Simulation) -> std::collections::BTreeMap<&str, Vec<String>> {
    sim.profiles
        .iter()
        .map(|p| {
            let path = p
                .steps
                .iter()
                .map(|s| match &s.branch {
                    Some(b) => format!("{}:{}->{b}", s.node, s.status),
                    None => format!("{}:{}", s.node, s.status),
                })
                .collect();
            (p.profile_id.as_str(), path)
        })
        .collect()
}

fn moved(a: &Simulation, b: &Simulation) -> Vec<Moved> {
    let (mut a, mut b) = (summary(a), summary(b));
    let ids: std::collections::BTreeSet<&str> = a.keys().chain(b.keys()).copied().collect();
    ids.into_iter()
        .filter_map(|id| {
            let before = a.remove(id).unwrap_or_default();
            let after = b.remove(id).unwrap_or_default();
            (before != after).then(|| Moved {
                profile_id: id.to_string(),
                before,
                after,
            })
        })
        .collect()
}
