//! Durable end-to-end throughput, in process: an engine on a temporary SQLite file, a
//! 3-node journey (entry -> condition -> action -> end), events accepted the way
//! `POST /v1/events` accepts them (a durable store write, then dispatch) in batches, until
//! every event is processed. The journey runs twice, each time on a new database: with
//! the built-in `log` action, then with a WebAssembly test guest as the action (the
//! `hostile` guest answering at once, a fresh isolated instance per call). The floor,
//! measured in the same run: the same events only accepted durably (no processing).
//!
//! `cargo bench --bench throughput` (`EVENTS=50000 BATCH=100` to change the load)

mod support;

use std::sync::Arc;
use std::time::Instant;

use parcours_engine::actions::ActionRegistry;
use parcours_engine::model::Event;
use parcours_engine::settings::PluginSettings;
use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
use parcours_engine::store::{EventStore, PartitionStore};
use parcours_engine::{Settings, SystemClock};
use serde_json::json;
use support::{accept, drained, env_usize, install_plugins, open_with, publish};

/// The 3-node journey of every throughput benchmark.
const JOURNEY: &str = include_str!("journey.yaml");

/// The action of [`JOURNEY`], which the guest run replaces.
const LOG_ACTION: &str = "action: log, params: {amount: event.data.amount}";

/// The test guest's action: it answers at once.
const GUEST_ACTION: &str = r#"action: hostile, params: {mode: '"ok"'}"#;

/// The built-in actions and the test guests (built by build.rs) installed as plugins.
async fn with_test_guests() -> anyhow::Result<ActionRegistry> {
    let actions = ActionRegistry::with_builtins();
    install_plugins(
        &actions,
        std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")),
        PluginSettings::default(),
    )
    .await?;
    Ok(actions)
}

/// Runs `journey` over `n` new events accepted `batch` at a time on a new database in
/// `dir` (events and database named after `name`), and prints its events/s until all
/// were processed, against `floor`.
async fn run(
    dir: &std::path::Path,
    (name, label): (&str, &str),
    journey: &str,
    actions: ActionRegistry,
    (n, batch, floor): (usize, usize, f64),
) -> anyhow::Result<()> {
    let (engine, store) = open_with(
        &dir.join(format!("{name}.db")),
        Arc::new(SystemClock),
        actions,
    )
    .await?;
    publish(&engine, "bench", journey).await?;
    let all = events(name, n);
    let written = support::bytes_written();
    let rows = store.rows_written().unwrap_or(0);
    let started = Instant::now();
    accept(engine.runtime(), all, batch).await?;
    let accepted = started.elapsed().as_secs_f64();
    drained(&*store).await?;
    let processed = started.elapsed().as_secs_f64();
    let rate = n as f64 / processed;
    println!(
        "{:<38} {rate:>10.0} events/s  ({:.2}x floor; accepted in {accepted:.2}s, processed in {processed:.2}s; {}, {})",
        format!("engine, {label}:"),
        rate / floor,
        support::per_event(written, n),
        support::rows_per_event(&store, rows, n),
    );
    Ok(())
}

/// `n` events over 10,000 profiles. Their ids are spread like the UUIDs clients send
/// (a hash of the position), not increasing: an index on them takes each insert at a
/// random page, as it does in production.
fn events(run: &str, n: usize) -> Vec<Event> {
    let now = jiff::Timestamp::now();
    (0..n)
        .map(|i| Event {
            id: format!("{run}-{:016x}", spread(i as u64)),
            event_type: "order".into(),
            profile_id: format!("p{}", i % 10_000),
            timestamp: now,
            received_at: now,
            data: json!({"amount": (i % 300) as i64}),
        })
        .collect()
}

/// SplitMix64's finalizer: a bijection that scatters consecutive numbers.
fn spread(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("EVENTS", 20_000);
    let batch = env_usize("BATCH", 100);
    let dir = tempfile::tempdir()?;

    // Floor: durable accept only.
    let floor_store = SqliteStore::open(
        &dir.path().join("floor.db"),
        StoreOptions::from(&Settings::default()),
    )?;
    let all = events("floor", n);
    let written = support::bytes_written();
    let started = Instant::now();
    let mut pending = Vec::new();
    let floor_store = Arc::new(floor_store);
    for chunk in all.chunks(batch) {
        let store = floor_store.clone();
        let chunk = chunk.to_vec();
        pending.push(tokio::spawn(async move { store.ingest(&chunk).await }));
        if pending.len() >= 16 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending.drain(..) {
        p.await??;
    }
    let floor = n as f64 / started.elapsed().as_secs_f64();

    println!("events: {n}, batch: {batch}");
    println!(
        "floor (durable accept only):           {floor:>10.0} events/s  ({}, {})",
        support::per_event(written, n),
        support::rows_per_event(&floor_store, 0, n),
    );

    // The engine, with the built-in action, then with the test guest.
    anyhow::ensure!(
        JOURNEY.contains(LOG_ACTION),
        "benches/journey.yaml no longer has the action `{LOG_ACTION}` to replace"
    );
    let load = (n, batch, floor);
    let builtins = ActionRegistry::with_builtins();
    run(
        dir.path(),
        ("log", "built-in action"),
        JOURNEY,
        builtins,
        load,
    )
    .await?;
    let guest_journey = JOURNEY.replace(LOG_ACTION, GUEST_ACTION);
    let guests = with_test_guests().await?;
    run(
        dir.path(),
        ("guest", "WebAssembly test guest"),
        &guest_journey,
        guests,
        load,
    )
    .await?;
    Ok(())
}
