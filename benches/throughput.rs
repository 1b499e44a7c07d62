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
use parcours_engine::plugins::{PluginHost, PluginRegistry};
use parcours_engine::settings::PluginSettings;
use parcours_engine::store::Store;
use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
use parcours_engine::{Settings, SystemClock};
use serde_json::json;
use support::{accept, drained, env_usize, open_with, publish};

/// The 3-node journey of every throughput benchmark.
const JOURNEY: &str = include_str!("journey.yaml");

/// The action of [`JOURNEY`], which the guest run replaces.
const LOG_ACTION: &str = "action: log, params: {amount: event.data.amount}";

/// The test guest's action: it answers at once.
const GUEST_ACTION: &str = r#"action: hostile, params: {mode: '"ok"'}"#;

/// The built-in actions and the test guests (built by build.rs) installed as plugins;
/// the registry is kept alive with them.
async fn with_test_guests() -> anyhow::Result<(ActionRegistry, Arc<PluginRegistry>)> {
    let actions = ActionRegistry::with_builtins();
    let settings = PluginSettings {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        ..PluginSettings::default()
    };
    let registry = PluginRegistry::new(Arc::new(PluginHost::new(&settings)?), actions.clone());
    registry
        .load_dir(std::path::Path::new(env!("PARCOURS_TEST_PLUGINS_DIR")))
        .await?;
    Ok((actions, registry))
}

/// Runs `journey` over `n` new events accepted `batch` at a time on a new database in
/// `dir`; returns the events/s until all were processed, and the seconds to accept them
/// and to process them.
async fn run(
    dir: &std::path::Path,
    name: &str,
    journey: &str,
    actions: ActionRegistry,
    n: usize,
    batch: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let (engine, store) = open_with(
        &dir.join(format!("{name}.db")),
        Arc::new(SystemClock),
        actions,
    )
    .await?;
    publish(&engine, "bench", journey).await?;
    let all = events(name, n);
    let started = Instant::now();
    accept(engine.runtime(), all, batch).await?;
    let accepted = started.elapsed();
    drained(&store).await?;
    let processed = started.elapsed();
    Ok((
        n as f64 / processed.as_secs_f64(),
        accepted.as_secs_f64(),
        processed.as_secs_f64(),
    ))
}

fn events(run: &str, n: usize) -> Vec<Event> {
    let now = jiff::Timestamp::now();
    (0..n)
        .map(|i| Event {
            id: format!("{run}-{i}"),
            event_type: "order".into(),
            profile_id: format!("p{}", i % 10_000),
            timestamp: now,
            received_at: now,
            data: json!({"amount": (i % 300) as i64}),
        })
        .collect()
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
    let started = Instant::now();
    let all = events("floor", n);
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

    // The engine, with the built-in action, then with the test guest.
    anyhow::ensure!(
        JOURNEY.contains(LOG_ACTION),
        "benches/journey.yaml no longer has the action `{LOG_ACTION}` to replace"
    );
    let (log, log_accepted, log_processed) = run(
        dir.path(),
        "log",
        JOURNEY,
        ActionRegistry::with_builtins(),
        n,
        batch,
    )
    .await?;
    let (actions, _plugins) = with_test_guests().await?;
    let guest_journey = JOURNEY.replace(LOG_ACTION, GUEST_ACTION);
    let (guest, guest_accepted, guest_processed) =
        run(dir.path(), "guest", &guest_journey, actions, n, batch).await?;

    println!("events: {n}, batch: {batch}");
    println!("floor (durable accept only):           {floor:>10.0} events/s");
    for (label, rate, accepted, processed) in [
        ("engine, built-in action:", log, log_accepted, log_processed),
        (
            "engine, WebAssembly test guest:",
            guest,
            guest_accepted,
            guest_processed,
        ),
    ] {
        println!(
            "{label:<38} {rate:>10.0} events/s  ({:.2}x floor; accepted in {accepted:.2}s, processed in {processed:.2}s)",
            rate / floor,
        );
    }
    Ok(())
}
