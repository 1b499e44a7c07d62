//! Deterministic simulation and replay: a journey runs against given profiles and a
//! timeline of events on a virtual clock, with every action in dry run.
//!
//! Owns driving a throw-away runtime (its own scratch store, a test clock, one
//! partition, the dry-run action registry): events are handed over at their times, and
//! between them the clock jumps straight to each next timer, so weeks of waits take
//! milliseconds. The same input always gives the same output. A simulation never writes
//! to the engine's store and never calls an action.

mod input;
mod output;
mod replay;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::actions::{ActionRegistry, DryRun};
use crate::clock::TestClock;
use crate::expr::ExternalFunctions;
use crate::model::{Event, JourneyDef, Problems};
use crate::runtime::{ProfileOp, Published, Runtime};
use crate::settings::Settings;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

pub use input::{DEFAULT_START, SimEvent, SimProfile, parse_list, resolve_times};
pub use output::{NodeTotal, PathStep, ProfilePath, Simulation};
pub use replay::{Moved, Recording, Replay, Side, replay};

/// Timer wake-ups one simulation may go through before it is stopped (a guard against a
/// journey that never ends).
const MAX_WAKES: usize = 1_000_000;
/// Longest time the engine may take to settle one step of a simulation.
const STALL: Duration = Duration::from_secs(30);

/// What a simulation runs with besides its input: the engine's limits, actions (their
/// names and schemas; each is replaced by a dry run), plugin functions and data sources,
/// audiences and capping rules.
#[derive(Clone)]
pub struct Context {
    pub settings: Settings,
    pub actions: ActionRegistry,
    pub external: Option<Arc<dyn ExternalFunctions>>,
    /// (name, definition) of each audience.
    pub audiences: Vec<(String, Value)>,
    /// (id, definition) of each capping rule.
    pub capping_rules: Vec<(String, Value)>,
    /// (id, latest definition) of each message template.
    pub templates: Vec<(String, Value)>,
    /// (id, definition) of each subscription group defined.
    pub subscription_groups: Vec<(String, Value)>,
}

impl Context {
    /// What a simulation of `runtime`'s journeys runs with: its limits, actions (in dry
    /// run), plugin functions and data sources, audiences and capping rules.
    pub async fn of(runtime: &Runtime) -> anyhow::Result<Context> {
        let store = runtime.store();
        let audiences = store
            .list_audiences()
            .await?
            .into_iter()
            .map(|a| (a.name, a.definition))
            .collect();
        Ok(Context {
            settings: runtime.settings().clone(),
            actions: runtime.actions().clone(),
            external: runtime.external().cloned(),
            audiences,
            capping_rules: store.capping_rules().await?,
            templates: store
                .list_templates()
                .await?
                .into_iter()
                .map(|t| (t.id, t.definition))
                .collect(),
            subscription_groups: store.subscription_groups().await?,
        })
    }
}

/// One simulation.
#[derive(Debug, Clone)]
pub struct Request {
    pub journey_id: String,
    pub journey: JourneyDef,
    pub profiles: Vec<SimProfile>,
    pub events: Vec<SimEvent>,
    /// Defaults to the earliest absolute event time, else [`DEFAULT_START`].
    pub start: Option<Timestamp>,
    /// Stop the clock here; by default the simulation runs until no timer is left.
    pub until: Option<Timestamp>,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The profiles or the timeline are wrong, with locations.
    #[error("{0}")]
    Input(Problems),
    /// The journey does not compile.
    #[error("the journey is invalid:\n{0}")]
    Journey(Problems),
    #[error(transparent)]
    Engine(#[from] anyhow::Error),
}

/// Runs a simulation.
pub async fn simulate(cx: &Context, request: Request) -> Result<Simulation, SimError> {
    let settings = &cx.settings;
    let mut problems = Problems::default();
    if request.events.len() > settings.max_simulation_events {
        problems.push(
            "events",
            format!(
                "{} events; the limit is {} (max_simulation_events)",
                request.events.len(),
                settings.max_simulation_events
            ),
        );
    }
    if request.profiles.len() > settings.max_simulation_profiles {
        problems.push(
            "profiles",
            format!(
                "{} profiles; the limit is {} (max_simulation_profiles)",
                request.profiles.len(),
                settings.max_simulation_profiles
            ),
        );
    }
    if !matches!(request.journey.entry.kind(), "event") {
        problems.push(
            "journey.entry.type",
            format!(
                "simulations run journeys entered by events; this one is entered by {}",
                request.journey.entry.kind()
            ),
        );
    }
    if !problems.0.is_empty() {
        return Err(SimError::Input(problems));
    }
    let (start, times) = resolve_times(&request.events, request.start).map_err(SimError::Input)?;

    let dir = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_scratch(&dir.path().join("sim.db"))?);
    let clock = TestClock::new(start);
    let mut sim_settings = settings.clone();
    sim_settings.db_path = dir.path().join("sim.db");
    // One partition with one lane: every message in its order, so that the dry-run
    // calls are listed in the same order on every run.
    sim_settings.partitions = 1;
    sim_settings.partition_lanes = 1;
    sim_settings.plugin_dirs.clear();
    let dry_run = DryRun::default();
    let runtime = Runtime::start(
        store.clone(),
        Arc::new(clock.clone()),
        sim_settings,
        cx.actions.dry_run(&dry_run),
        cx.external.clone(),
    )
    .await?;
    runtime.dry_run_messages(Arc::new(dry_run.clone()));
    let result = drive(cx, &request, &runtime, &clock, start, &times).await;
    runtime.shutdown();
    let end = clock_now(&clock);
    let profiles = result?;
    let order: Vec<String> = request.journey.nodes.keys().cloned().collect();
    Ok(Simulation {
        journey: request.journey_id.clone(),
        start,
        end,
        totals: output::totals(&profiles, &order),
        profiles,
        actions: dry_run.calls(),
    })
}

fn clock_now(clock: &TestClock) -> Timestamp {
    use crate::clock::Clock;
    clock.now()
}

async fn drive(
    cx: &Context,
    request: &Request,
    runtime: &Runtime,
    clock: &TestClock,
    start: Timestamp,
    times: &[Timestamp],
) -> Result<Vec<ProfilePath>, SimError> {
    for (id, def) in &cx.capping_rules {
        runtime
            .put_capping_rule(id, def.clone())
            .await
            .map_err(|e| anyhow::anyhow!("capping rule {id}: {e}"))?;
    }
    for (id, def) in &cx.subscription_groups {
        runtime
            .put_subscription_group(id, def.clone())
            .await
            .map_err(|e| anyhow::anyhow!("subscription group {id}: {e}"))?;
    }
    for (id, def) in &cx.templates {
        runtime
            .put_template(id, def.clone())
            .await
            .map_err(|e| anyhow::anyhow!("template {id}: {e}"))?;
    }
    for (name, def) in &cx.audiences {
        runtime
            .put_audience(name, def.clone())
            .await
            .map_err(|e| anyhow::anyhow!("audience {name}: {e}"))?;
    }
    let ops = request
        .profiles
        .iter()
        .map(|p| ProfileOp::Put {
            id: p.id.clone(),
            attributes: p.attributes.clone(),
            timezone: p.timezone.clone(),
            aliases: None,
            source: "simulation",
        })
        .collect();
    for (i, reply) in runtime.profile_ops(ops).await?.into_iter().enumerate() {
        reply.map_err(|e| {
            SimError::Input(Problems::from(crate::model::Problem {
                path: format!("profiles[{i}]"),
                message: e.to_string(),
            }))
        })?;
    }
    match runtime
        .publish_definition(&request.journey_id, &request.journey)
        .await
    {
        Ok(Published::New(_) | Published::Unchanged(_)) => {}
        Err(crate::runtime::JourneyError::Invalid(p)) => return Err(SimError::Journey(p)),
        Err(e) => return Err(SimError::Engine(anyhow::anyhow!("{e}"))),
    }

    // Events in time order (the timeline's order among equal times).
    let mut order: Vec<usize> = (0..request.events.len()).collect();
    order.sort_by_key(|&i| (times[i], i));
    let mut driver = Driver {
        runtime,
        clock,
        commits: runtime.commits(),
        wakes: 0,
    };
    let mut i = 0;
    while i < order.len() {
        let at = times[order[i]];
        driver.fire_timers_until(at).await?;
        driver.set_clock(at);
        let mut batch = Vec::new();
        while i < order.len() && times[order[i]] == at {
            let e = &request.events[order[i]];
            batch.push(Event {
                id: e.id.clone().unwrap_or_else(|| format!("sim-{}", order[i])),
                event_type: e.event_type.clone(),
                profile_id: e.profile_id.clone(),
                timestamp: at,
                received_at: at,
                data: e.data.clone(),
            });
            i += 1;
        }
        driver.ingest(batch).await?;
    }
    driver
        .fire_timers_until(request.until.unwrap_or(Timestamp::MAX))
        .await?;
    if let Some(until) = request.until {
        driver.set_clock(until.max(start));
    }
    let mut ids: BTreeSet<String> = request.profiles.iter().map(|p| p.id.clone()).collect();
    ids.extend(request.events.iter().map(|e| e.profile_id.clone()));
    let event_ids: Vec<(String, String)> = order
        .iter()
        .map(|&i| {
            let e = &request.events[i];
            (
                e.profile_id.clone(),
                e.id.clone().unwrap_or_else(|| format!("sim-{i}")),
            )
        })
        .collect();
    let store = runtime.store();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let mut steps = Vec::new();
        for (_, event_id) in event_ids.iter().filter(|(p, _)| *p == id) {
            steps.extend(
                store
                    .steps_of_event(event_id)
                    .await?
                    .into_iter()
                    .filter(|s| s.instance_id.is_none() && s.journey_id == request.journey_id),
            );
        }
        let instances: Vec<_> = store
            .instances_of_profile(&id)
            .await?
            .into_iter()
            .filter(|i| i.journey_id == request.journey_id)
            .collect();
        for inst in &instances {
            steps.extend(store.steps_of_instance(&inst.id).await?);
        }
        steps.sort_by_key(|s| (s.at, s.seq));
        out.push(ProfilePath {
            profile_id: id,
            steps: steps.iter().map(output::path_step).collect(),
            instances: instances.iter().map(output::instance_end).collect(),
        });
    }
    Ok(out)
}

/// Moves the virtual clock and waits for the engine to settle.
struct Driver<'a> {
    runtime: &'a Runtime,
    clock: &'a TestClock,
    commits: tokio::sync::watch::Receiver<u64>,
    wakes: usize,
}

impl Driver<'_> {
    fn set_clock(&self, at: Timestamp) {
        if at > clock_now(self.clock) {
            self.clock.set(at);
        }
    }

    /// Waits until `done` holds, checking after every partition commit.
    async fn settle<F, Fut>(&mut self, what: &str, mut done: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        let started = std::time::Instant::now();
        loop {
            self.commits.mark_unchanged();
            if done().await? {
                return Ok(());
            }
            if started.elapsed() > STALL {
                anyhow::bail!("the simulation stalled while {what}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), self.commits.changed()).await;
        }
    }

    async fn ingest(&mut self, events: Vec<Event>) -> anyhow::Result<()> {
        let store = self.runtime.store().clone();
        let all: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let fresh = self.runtime.accept(events).await?;
        let ids: Vec<String> = all
            .into_iter()
            .zip(fresh)
            .filter_map(|(id, new)| new.then_some(id))
            .collect();
        self.settle("processing events", || {
            let store = store.clone();
            let ids = ids.clone();
            async move {
                for id in &ids {
                    if !store.get_event(id).await?.is_some_and(|e| e.processed) {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        })
        .await
    }

    /// Fires every timer due at or before `limit`, moving the clock to each in turn.
    async fn fire_timers_until(&mut self, limit: Timestamp) -> anyhow::Result<()> {
        let store = self.runtime.store().clone();
        loop {
            let Some(wake) = store.next_wake().await? else {
                return Ok(());
            };
            if wake > limit {
                return Ok(());
            }
            self.wakes += 1;
            if self.wakes > MAX_WAKES {
                anyhow::bail!(
                    "more than {MAX_WAKES} timer wake-ups; give the simulation an end (until)"
                );
            }
            self.set_clock(wake);
            let now = clock_now(self.clock);
            self.settle("firing timers", || {
                let store = store.clone();
                async move { Ok(store.next_wake().await?.is_none_or(|w| w > now)) }
            })
            .await?;
        }
    }
}
