//! Audience runs: read-audience schedules and business-event fan-outs.
//!
//! The scheduler creates a run when a live read-audience journey's schedule comes due
//! (missed occurrences collapse into the latest one); a business event creates one run
//! per journey it reaches, atomically with the event. A run reads the audience in
//! profile-id order, asks each member's partition to enter it, and saves its cursor and
//! counters after every chunk the partitions have committed, so a run that the process
//! outlives resumes after the last saved chunk; entries of a chunk replayed after a crash
//! are recognised by their deterministic instance ids and not made twice. Runs never
//! step instances themselves.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio::sync::oneshot;

use super::profile_ops::EnterRequest;
use super::{Msg, Shared};
use crate::code::Code;
use crate::compile::{EntryKind, Journey, Schedule};
use crate::expr::{CallInfo, EvalEnv, ScopeData};
use crate::ids;
use crate::model::Event;
use crate::store::{RunRecord, RunStatus};

/// Most members read and entered between two progress saves.
const MAX_CHUNK: usize = 500;

/// Chunks sent to the partitions before the oldest must be answered.
const IN_FLIGHT: usize = 4;

/// How long the scheduler sleeps when nothing is scheduled (a publish wakes it).
const IDLE: SignedDuration = SignedDuration::from_hours(24);

/// Resumes the runs left unfinished at the last stop (before returning, so that the
/// runs resumed are exactly those), then starts the scheduler.
pub(super) async fn spawn(shared: Arc<Shared>) -> anyhow::Result<()> {
    for run in shared.store.open_runs().await? {
        tracing::info!(run = %run.id, journey = %run.journey_id, read = run.read, "resuming an audience run");
        spawn_run(shared.clone(), run);
    }
    shared.clone().spawn(async move {
        loop {
            let now = shared.clock.now();
            let until = match schedule_round(&shared, now).await {
                Ok(next) => next.unwrap_or_else(|| now.saturating_add(IDLE).unwrap_or(now)),
                Err(e) => {
                    tracing::error!(error = %e, "audience scheduler; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tokio::select! {
                _ = shared.clock.sleep_until(until) => {}
                _ = shared.run_kick.notified() => {}
            }
        }
    });
    Ok(())
}

/// Starts the runs that are due; returns when the next one is.
async fn schedule_round(shared: &Arc<Shared>, now: Timestamp) -> anyhow::Result<Option<Timestamp>> {
    let set = shared.journeys.snapshot();
    let mut earliest: Option<Timestamp> = None;
    for journey in set.scheduled() {
        let EntryKind::ReadAudience {
            audience,
            schedule,
            until,
            rate,
            incremental,
        } = &journey.entry.kind
        else {
            continue;
        };
        let last = shared.store.last_scheduled_run(&journey.id).await?;
        let Some(mut next) = next_occurrence(journey, schedule, last.as_ref(), now) else {
            continue;
        };
        if until.is_some_and(|u| next > u) {
            continue;
        }
        if next > now {
            earliest = Some(earliest.map_or(next, |e| e.min(next)));
            continue;
        }
        // Missed occurrences (the engine was down) collapse into the latest due one.
        for _ in 0..100_000 {
            match schedule.next_after(next, &journey.props.time_zone) {
                Some(n) if n <= now && until.is_none_or(|u| n <= u) => next = n,
                _ => break,
            }
        }
        let id = ids::run_id(&journey.id, journey.version, &next.to_string());
        let mut run = new_run(journey, "schedule", audience, next, now, *rate, &id);
        run.members_since = if *incremental {
            last.as_ref().map(|r| r.started_at)
        } else {
            None
        };
        run.trigger = json!({
            "id": id,
            "type": "read_audience",
            "audience": audience,
            "timestamp": next.to_string(),
            "run_id": id,
            "data": {},
        });
        if shared.store.create_run(run.clone()).await? {
            tracing::info!(run = %run.id, journey = %journey.id, audience = %audience, "read-audience run started");
            spawn_run(shared.clone(), run);
        }
        // The following occurrence is computed on the next round.
        earliest = Some(now);
    }
    Ok(earliest)
}

/// The occurrence that follows the journey's last run (or its publication).
fn next_occurrence(
    journey: &Journey,
    schedule: &Schedule,
    last: Option<&RunRecord>,
    now: Timestamp,
) -> Option<Timestamp> {
    let tz = &journey.props.time_zone;
    match (last, schedule) {
        (Some(run), _) => schedule.next_after(run.scheduled_at, tz),
        (None, Schedule::Once(at)) => Some(*at),
        (None, _) => schedule.next_after(journey.published_at.unwrap_or(now), tz),
    }
}

/// Stores a business event with one run per live journey it reaches, then starts them.
pub(super) async fn business_event(
    shared: &Arc<Shared>,
    event: Event,
) -> anyhow::Result<Option<Vec<RunRecord>>> {
    let set = shared.journeys.snapshot();
    let now = shared.clock.now();
    let doc = json!({
        "id": event.id,
        "type": event.event_type,
        "timestamp": event.timestamp.to_string(),
        "data": event.data,
    });
    let mut exprs = shared.exprs();
    let mut runs = Vec::new();
    for journey in set.fanned_out_by(&event.event_type) {
        let EntryKind::BusinessEvent { audience, rate, .. } = &journey.entry.kind else {
            continue;
        };
        if let Some(when) = &journey.entry.when {
            let env = EvalEnv {
                now,
                tz: journey.props.time_zone.clone(),
                call: Some(Arc::new(CallInfo {
                    journey_id: journey.id.clone(),
                    version: journey.version,
                    node_id: "entry".into(),
                    ..Default::default()
                })),
            };
            let data = ScopeData {
                event: Some(&doc),
                ..Default::default()
            };
            match exprs.eval_bool(when, &data, &env) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(journey = %journey.id, event = %event.id, error = %e, "entry.when failed on a business event; no fan-out");
                    continue;
                }
            }
        }
        let id = ids::run_id(&journey.id, journey.version, &event.id);
        let mut run = new_run(
            journey,
            "business_event",
            audience,
            event.received_at,
            now,
            *rate,
            &id,
        );
        run.trigger = doc.clone();
        runs.push(run);
    }
    if !shared
        .store
        .ingest_business_event(event, runs.clone())
        .await?
    {
        return Ok(None);
    }
    for run in &runs {
        spawn_run(shared.clone(), run.clone());
    }
    Ok(Some(runs))
}

/// A run that has not read anything yet.
fn new_run(
    journey: &Journey,
    kind: &str,
    audience: &str,
    scheduled_at: Timestamp,
    now: Timestamp,
    rate: u32,
    id: &str,
) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        journey_id: journey.id.clone(),
        version: journey.version,
        kind: kind.to_string(),
        audience: audience.to_string(),
        scheduled_at,
        started_at: now,
        finished_at: None,
        status: RunStatus::Running,
        cursor: None,
        read: 0,
        entered: 0,
        skipped: 0,
        skipped_reasons: BTreeMap::new(),
        rate,
        members_since: None,
        trigger: serde_json::Value::Null,
        ended_early: None,
    }
}

fn spawn_run(shared: Arc<Shared>, run: RunRecord) {
    shared.clone().spawn(async move {
        let mut run = run;
        loop {
            match execute(&shared, &mut run).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(run = %run.id, error = %e, "audience run interrupted; resuming in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

async fn finish(shared: &Shared, run: &mut RunRecord) -> anyhow::Result<()> {
    run.status = RunStatus::Finished;
    run.finished_at = Some(shared.clock.now());
    shared.store.update_run(run.clone()).await?;
    tracing::info!(run = %run.id, read = run.read, entered = run.entered, skipped = run.skipped, "audience run finished");
    Ok(())
}

/// A chunk of entry requests sent to the partitions and not yet all answered.
struct Sent {
    last: String,
    replies: Vec<oneshot::Receiver<super::profile_ops::EnterReply>>,
}

/// Reads the audience after the run's cursor and enters every member, chunk by chunk, at
/// the run's rate. Up to [`IN_FLIGHT`] chunks are sent before the oldest is collected, so
/// the partitions' commits overlap; the saved cursor only ever covers chunks whose every
/// entry is committed.
async fn execute(shared: &Shared, run: &mut RunRecord) -> anyhow::Result<()> {
    let rate = u64::from(run.rate.max(1));
    let chunk = (rate as usize).clamp(1, MAX_CHUNK);
    let trigger = Arc::new(run.trigger.clone());
    let paced_from = shared.clock.now();
    let mut paced = 0u64;
    let mut read_after = run.cursor.clone();
    let mut in_flight: VecDeque<Sent> = VecDeque::new();
    let mut exhausted = false;
    loop {
        if !exhausted && in_flight.len() < IN_FLIGHT {
            let live = shared
                .journeys
                .snapshot()
                .get(&run.journey_id)
                .and_then(|j| j.entry_version())
                .is_some_and(|j| j.version == run.version);
            if !live {
                run.ended_early = Some(Code::JourneyNotLive.into());
                exhausted = true;
                continue;
            }
            let members = shared
                .store
                .audience_members(&run.audience, read_after.clone(), run.members_since, chunk)
                .await?;
            exhausted = members.len() < chunk;
            let Some((last, _)) = members.last() else {
                continue;
            };
            let mut replies = Vec::with_capacity(members.len());
            let mut requests = Vec::with_capacity(members.len());
            for (profile_id, _) in &members {
                let (tx, rx) = oneshot::channel();
                let request = EnterRequest {
                    journey_id: run.journey_id.clone(),
                    version: run.version,
                    profile_id: profile_id.clone(),
                    trigger_id: run.id.clone(),
                    trigger_at: run.started_at,
                    trigger: trigger.clone(),
                };
                requests.push(Msg::Enter(request, tx));
                replies.push(rx);
            }
            // One hand-over per partition for the whole chunk of members.
            shared.send_all(requests, |_| ()).await?;
            read_after = Some(last.clone());
            in_flight.push_back(Sent {
                last: last.clone(),
                replies,
            });
            if !exhausted {
                paced += members.len() as u64;
                let due = paced_from
                    .checked_add(SignedDuration::from_micros(
                        (paced.saturating_mul(1_000_000) / rate) as i64,
                    ))
                    .unwrap_or(paced_from);
                if due > shared.clock.now() {
                    // Ahead of the rate: save what is answered while waiting.
                    while let Some(sent) = in_flight.pop_front() {
                        collect(shared, run, sent).await?;
                    }
                    shared.clock.sleep_until(due).await;
                }
            }
            continue;
        }
        let Some(sent) = in_flight.pop_front() else {
            return finish(shared, run).await;
        };
        collect(shared, run, sent).await?;
    }
}

/// Waits for every answer of a chunk, then saves the run's progress past it.
async fn collect(shared: &Shared, run: &mut RunRecord, sent: Sent) -> anyhow::Result<()> {
    let mut progress = run.clone();
    progress.read += sent.replies.len() as u64;
    for reply in sent.replies {
        match reply.await {
            Ok(Ok(())) => progress.entered += 1,
            Ok(Err(code)) => {
                progress.skipped += 1;
                *progress.skipped_reasons.entry(code).or_default() += 1;
            }
            Err(_) => anyhow::bail!("a partition dropped an entry request"),
        }
    }
    progress.cursor = Some(sent.last);
    shared.store.update_run(progress.clone()).await?;
    *run = progress;
    Ok(())
}
