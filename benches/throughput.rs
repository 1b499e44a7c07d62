//! Durable end-to-end throughput, in process: an engine on a temporary SQLite file, a
//! 3-node journey (entry -> condition -> action `log` -> end), events accepted the way
//! `POST /v1/events` accepts them (a durable store write, then dispatch) in batches, until
//! every event is processed. The floor, measured in the same run: the same events only
//! accepted durably (no processing).
//!
//! `cargo bench --bench throughput` (`EVENTS=50000 BATCH=100` to change the load)

mod support;

use std::sync::Arc;
use std::time::Instant;

use parcours_engine::model::Event;
use parcours_engine::store::Store;
use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
use parcours_engine::{Settings, SystemClock};
use serde_json::json;
use support::{accept, drained, env_usize, open, publish};

/// The 3-node journey of every throughput benchmark.
const JOURNEY: &str = include_str!("journey.yaml");

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

    // The engine.
    let (engine, store) = open(&dir.path().join("engine.db"), Arc::new(SystemClock)).await?;
    publish(&engine, "bench", JOURNEY).await?;

    let all = events("run", n);
    let started = Instant::now();
    accept(engine.runtime(), all, batch).await?;
    let accepted = started.elapsed();
    drained(&store).await?;
    let processed = started.elapsed();
    let rate = n as f64 / processed.as_secs_f64();
    println!("events: {n}, batch: {batch}");
    println!("floor (durable accept only):           {floor:>10.0} events/s");
    println!(
        "engine (accept + 3-node journey):      {rate:>10.0} events/s  ({:.2}x floor; accepted in {:.2}s, processed in {:.2}s)",
        rate / floor,
        accepted.as_secs_f64(),
        processed.as_secs_f64()
    );
    Ok(())
}
