//! Reaction matching while many reactions wait, beside its floors (same run):
//!
//! The store holds `pending` profiles (10,000 and 1,000,000), each with one instance
//! waiting on a reaction (`pong` with a condition, or `cancel`) with a timeout, written
//! directly as the engine stores them. Events arrive for waiting profiles chosen across
//! the whole range, 512 at a time (a partition batch):
//! - `match_loaded`: the matching itself, on profile states already in memory (as a
//!   partition holds them after reading its batch): the engine's choice of candidates
//!   (`runtime::matching::candidates`, exported as `bench::candidates`), then the reaction's branch with its condition
//!   evaluated (`Reaction::branch`, `ExprEngine::eval_bool`);
//! - `match_loaded_floor`: a hand-written in-memory matcher over the same states (a hash
//!   look-up of the profile, its instance's node and the event's field compared
//!   natively);
//! - `read_and_match`: the batch's profile states read from the store
//!   (`Store::profile_states`, as a partition does), then matched;
//! - `read_floor`: the same read for profiles of the same database with nothing pending;
//! - `read_with_history`: the read for profiles with a long history (100 ended instances
//!   each of an always-reentrant journey, nothing live), beside `read_history_floor`, the
//!   same read in the same database for profiles with none.
//!
//! Moving the matched instance on (its step, the durable commit) is not part of the
//! match; `benches/scale.rs` measures matches end to end.
//!
//! `cargo bench --bench reaction`

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use divan::counter::ItemsCount;
use jiff::{Span, Timestamp};
use parcours_engine::bench::{JourneySet, NodeKind, candidates};
use parcours_engine::compile::{Journey, Node};
use parcours_engine::expr::{EvalEnv, ExprEngine, ScopeData};
use parcours_engine::journal::{Instance, InstanceData, Status};
use parcours_engine::model::Profile;
use parcours_engine::settings::ExprLimits;
use parcours_engine::store::{ProfileState, ProfileWrite, Store, WriteBatch};
use parcours_engine::{Engine, TestClock};
use serde_json::{Value, json};

mod support;

fn main() {
    divan::main();
}

const WAITING: &str = r#"
entry: {type: event, event: ping}
start: wait_pong
nodes:
  wait_pong:
    type: reaction
    events:
      - {event: pong, when: 'events.pong.data.ok == true', next: done}
      - {event: cancel, next: done}
    timeout: P3D
    on_timeout: done
  done: {type: end}
"#;

/// Events per batch, as a partition reads them.
const BATCH: usize = 512;
const PENDING: &[usize] = &[10_000, 1_000_000];

struct World {
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    _engine: Engine,
    store: Arc<dyn Store>,
    set: Arc<JourneySet>,
    journey: Arc<Journey>,
    pending: usize,
    /// Where the next batch starts in the profile range.
    cursor: std::sync::atomic::AtomicUsize,
}

fn world(pending: usize) -> &'static World {
    static WORLDS: OnceLock<std::sync::Mutex<HashMap<usize, &'static World>>> = OnceLock::new();
    let worlds = WORLDS.get_or_init(Default::default);
    let mut worlds = worlds.lock().expect("worlds");
    worlds
        .entry(pending)
        .or_insert_with(|| Box::leak(Box::new(build(pending).expect("benchmark world"))))
}

fn build(pending: usize) -> anyhow::Result<World> {
    let (rt, dir) = runtime_and_dir()?;
    let path = dir.path().join("reaction.db");
    let start: Timestamp = "2026-03-02T08:00:00Z".parse()?;
    let (engine, store, journey) = rt.block_on(async {
        let (engine, store, journey) = open_waiting(&path, start).await?;
        // The waiting instances and their profiles, and as many profiles with nothing
        // pending (the read floor), 10,000 per commit.
        let ids: Vec<usize> = (0..pending).collect();
        for chunk in ids.chunks(10_000) {
            let mut batch = WriteBatch::default();
            for &i in chunk {
                for id in [waiting_profile(i), free_profile(i)] {
                    batch.profiles.push(profile_write(id, i, start));
                }
                batch.instances.push(ping_instance(
                    format!("i{i:08}"),
                    &journey,
                    waiting_profile(i),
                    i,
                    start,
                )?);
            }
            store.commit(Arc::new(batch)).await?;
        }
        anyhow::Ok((engine, store, journey))
    })?;
    Ok(World::new(rt, dir, engine, store, journey, pending))
}

impl World {
    fn new(
        rt: tokio::runtime::Runtime,
        dir: tempfile::TempDir,
        engine: Engine,
        store: Arc<dyn Store>,
        journey: Arc<Journey>,
        pending: usize,
    ) -> World {
        World {
            rt,
            _dir: dir,
            set: engine.runtime().journeys(),
            _engine: engine,
            store,
            journey,
            pending,
            cursor: Default::default(),
        }
    }
}

/// Profile `profile`'s instance (number `i`) of the waiting journey, entered at `at`
/// and waiting on the reaction with a timer.
fn ping_instance(
    id: String,
    journey: &Journey,
    profile: String,
    i: usize,
    at: Timestamp,
) -> anyhow::Result<Instance> {
    Ok(Instance {
        id,
        journey_id: "waiting".into(),
        version: journey.version,
        profile_id: profile,
        status: Status::Waiting,
        node: Some("wait_pong".into()),
        entered_at: at,
        updated_at: at,
        ended_at: None,
        wake_at: Some(at.checked_add(Span::new().hours(72))?),
        deadline: at.checked_add(Span::new().hours(24 * 30))?,
        end_reason: None,
        data: InstanceData {
            event: json!({"type": "ping", "data": {"n": i}}),
            step: 1,
            ..Default::default()
        },
    })
}

/// The runtime and the temporary folder of a world.
fn runtime_and_dir() -> anyhow::Result<(tokio::runtime::Runtime, tempfile::TempDir)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok((rt, tempfile::tempdir()?))
}

/// An engine on a new database at `path` with the waiting journey published, its store
/// and the journey's compiled version.
async fn open_waiting(
    path: &std::path::Path,
    start: Timestamp,
) -> anyhow::Result<(Engine, Arc<dyn Store>, Arc<Journey>)> {
    let (engine, store) = support::open(path, Arc::new(TestClock::new(start))).await?;
    support::publish(&engine, "waiting", WAITING).await?;
    let journey = engine
        .runtime()
        .compiled_versions("waiting")
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no compiled version"))?;
    Ok((engine, store, journey))
}

/// Profile `id` (number `i`) as the worlds write it.
fn profile_write(id: String, i: usize, start: Timestamp) -> ProfileWrite {
    ProfileWrite {
        profile: Profile {
            id,
            attributes: json!({"tier": "gold", "n": i}),
            timezone: None,
            aliases: Default::default(),
            created_at: start,
            updated_at: start,
        },
        aliases_changed: false,
    }
}

fn waiting_profile(i: usize) -> String {
    format!("p{i:08}")
}

fn free_profile(i: usize) -> String {
    format!("f{i:08}")
}

impl World {
    /// The next batch's profile numbers: spread over the whole range, never twice in a
    /// batch.
    fn next_batch(&self) -> Vec<usize> {
        let first = self
            .cursor
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A stride coprime with both sizes (an odd number not divisible by 5) visits
        // the whole range.
        (0..BATCH)
            .map(|k| (first * BATCH + k).wrapping_mul(7_919) % self.pending)
            .collect()
    }

    fn read(&self, ids: Vec<String>) -> HashMap<String, ProfileState> {
        self.rt
            .block_on(self.store.profile_states(ids))
            .expect("profile states")
    }
}

/// An arriving `pong` event as the reaction's condition sees it.
fn pong(n: usize) -> Value {
    json!({"id": format!("e{n}"), "type": "pong", "data": {"ok": true}})
}

struct Matcher {
    ee: ExprEngine,
    env: EvalEnv,
}

impl Matcher {
    fn new() -> Matcher {
        Matcher {
            ee: ExprEngine::new(&ExprLimits::default()),
            env: EvalEnv {
                now: "2026-03-02T09:00:00Z".parse().expect("time"),
                tz: jiff::tz::TimeZone::UTC,
                call: None,
            },
        }
    }

    /// What a partition does for one event of a profile it has read: the candidates,
    /// then each one's reaction branch with the event as `events.pong`. Returns the
    /// branches taken.
    fn matches(
        &mut self,
        set: &JourneySet,
        journey: &Journey,
        state: &ProfileState,
        profile: &Value,
        event: &Value,
    ) -> usize {
        let mut taken = 0;
        for id in candidates(set, &state.live, "pong") {
            let Some(inst) = state.live.iter().find(|i| i.id == id) else {
                continue;
            };
            let node = inst.node.as_deref().and_then(|n| journey.node(n));
            let Some((
                _,
                Node {
                    kind: NodeKind::Reaction(reaction),
                    ..
                },
            )) = node
            else {
                panic!("a candidate awaits pong on a reaction");
            };
            let mut events = inst.data.events.clone();
            events.insert("pong".into(), event.clone());
            let events = Value::Object(events);
            let data = ScopeData {
                event: Some(&inst.data.event),
                events: Some(&events),
                profile: Some(profile),
                ..Default::default()
            };
            let (ee, env) = (&mut self.ee, &self.env);
            if let Some(Ok(_)) = reaction.branch("pong", |expr| ee.eval_bool(expr, &data, env)) {
                taken += 1;
            }
        }
        taken
    }
}

/// Matching on states already read (what a partition does after its batch read).
#[divan::bench(args = PENDING, sample_size = 1)]
fn match_loaded(bencher: divan::Bencher, pending: usize) {
    let w = world(pending);
    let batch = w.next_batch();
    let states = w.read(batch.iter().map(|&i| waiting_profile(i)).collect());
    let loaded: Vec<(&ProfileState, Value, Value)> = batch
        .iter()
        .map(|&i| {
            let state = &states[&waiting_profile(i)];
            let doc = state.profile.as_ref().expect("profile").to_json();
            (state, doc, pong(i))
        })
        .collect();
    let mut m = Matcher::new();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut taken = 0;
        for (state, doc, event) in &loaded {
            taken += m.matches(&w.set, &w.journey, state, doc, event);
        }
        assert_eq!(taken, BATCH);
    });
}

/// The floor of matching on states in memory: a hand-written matcher (hash look-up,
/// the node and the event's field compared natively).
#[divan::bench(args = PENDING, sample_size = 1)]
fn match_loaded_floor(bencher: divan::Bencher, pending: usize) {
    let w = world(pending);
    let batch = w.next_batch();
    let states = w.read(batch.iter().map(|&i| waiting_profile(i)).collect());
    let events: Vec<(String, Value)> = batch
        .iter()
        .map(|&i| (waiting_profile(i), pong(i)))
        .collect();
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let mut taken = 0;
        for (profile, event) in &events {
            let state = &states[divan::black_box(profile)];
            taken += state
                .live
                .iter()
                .filter(|i| {
                    i.status == Status::Waiting
                        && i.node.as_deref() == Some("wait_pong")
                        && event["data"]["ok"] == Value::Bool(true)
                })
                .count();
        }
        assert_eq!(taken, BATCH);
    });
}

/// A batch's profile states read from the store, then matched.
#[divan::bench(args = PENDING, sample_size = 1)]
fn read_and_match(bencher: divan::Bencher, pending: usize) {
    let w = world(pending);
    let mut m = Matcher::new();
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| w.next_batch())
        .bench_local_values(|batch| {
            let states = w.read(batch.iter().map(|&i| waiting_profile(i)).collect());
            let mut taken = 0;
            for &i in &batch {
                let state = &states[&waiting_profile(i)];
                let doc = state.profile.as_ref().expect("profile").to_json();
                taken += m.matches(&w.set, &w.journey, state, &doc, &pong(i));
            }
            assert_eq!(taken, BATCH);
        });
}

/// The floor of the read: the same read for profiles of the same database with nothing
/// pending.
#[divan::bench(args = PENDING, sample_size = 1)]
fn read_floor(bencher: divan::Bencher, pending: usize) {
    let w = world(pending);
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| w.next_batch())
        .bench_local_values(|batch| {
            let states = w.read(batch.iter().map(|&i| free_profile(i)).collect());
            assert!(states.values().all(|s| s.live.is_empty()));
        });
}

/// Profiles of the history world, each with `HISTORY` ended instances.
const HISTORY_PROFILES: usize = 10_240;
/// Ended instances per profile: an always-reentrant journey's past entries.
const HISTORY: usize = 100;

/// A database of `HISTORY_PROFILES` profiles with `HISTORY` ended instances each of one
/// journey (`h…`), and as many profiles with none (`f…`, the floor).
fn history_world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| build_history().expect("history world"))
}

fn build_history() -> anyhow::Result<World> {
    let (rt, dir) = runtime_and_dir()?;
    let path = dir.path().join("history.db");
    let start: Timestamp = "2026-03-02T08:00:00Z".parse()?;
    let (engine, store, journey) = rt.block_on(async {
        let (engine, store, journey) = open_waiting(&path, start).await?;
        // One commit per round of entries, so that each profile's instances are spread
        // over the table as a long-lived profile's are.
        for round in 0..HISTORY {
            let at = start.checked_add(Span::new().minutes(round as i64))?;
            let mut batch = WriteBatch::default();
            for i in 0..HISTORY_PROFILES {
                if round == 0 {
                    for id in [history_profile(i), free_profile(i)] {
                        batch.profiles.push(profile_write(id, i, start));
                    }
                }
                let mut ended = ping_instance(
                    format!("i{round:04}{i:08}"),
                    &journey,
                    history_profile(i),
                    i,
                    at,
                )?;
                ended.status = Status::Completed;
                ended.node = Some("done".into());
                ended.ended_at = Some(at);
                ended.wake_at = None;
                ended.data.step = 2;
                ended.data.entry_at = Some(at);
                batch.instances.push(ended);
            }
            store.commit(Arc::new(batch)).await?;
        }
        anyhow::Ok((engine, store, journey))
    })?;
    Ok(World::new(
        rt,
        dir,
        engine,
        store,
        journey,
        HISTORY_PROFILES,
    ))
}

fn history_profile(i: usize) -> String {
    format!("h{i:08}")
}

/// A batch's profile states read for profiles with a long history (`HISTORY` ended
/// instances each, nothing live): what a partition reads for the regular customers of
/// an always-reentrant journey. Its floor is `read_history_floor`.
#[divan::bench(sample_size = 1)]
fn read_with_history(bencher: divan::Bencher) {
    let w = history_world();
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| w.next_batch())
        .bench_local_values(|batch| {
            let states = w.read(batch.iter().map(|&i| history_profile(i)).collect());
            assert!(states.values().all(|s| s.live.is_empty()));
            // The latest of the history, whatever the read walks.
            assert!(states.values().all(|s| {
                s.last_entered.len() == 1
                    && s.last_entered["waiting"]
                        .id
                        .starts_with(&format!("i{:04}", HISTORY - 1))
            }));
        });
}

/// The floor of `read_with_history`: the same read for profiles of the same database
/// with no instances.
#[divan::bench(sample_size = 1)]
fn read_history_floor(bencher: divan::Bencher) {
    let w = history_world();
    bencher
        .counter(ItemsCount::new(BATCH))
        .with_inputs(|| w.next_batch())
        .bench_local_values(|batch| {
            let states = w.read(batch.iter().map(|&i| free_profile(i)).collect());
            assert!(states.values().all(|s| s.last_entered.is_empty()));
        });
}
