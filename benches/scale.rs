//! Scale benchmarks, in process, on a temporary SQLite file and a test clock:
//!
//! 1. **Pending timers and reactions**: `PROFILES` profiles (default 100,000; the issue's
//!    scale is 1,000,000) each enter a journey and wait on a reaction with a one-hour
//!    timeout. Reports the time to create them, the process's resident memory, the time
//!    for a second engine to open the same database and be ready (restart to ready), the
//!    processing rate of `MATCHES` events that each match one of the pending reactions
//!    against the same number of events for profiles with nothing pending (the floor, same
//!    run), and the fire rate and lateness (p50, p99 of the wall time from the clock
//!    reaching the due time) of the timeouts when the clock moves past them.
//! 2. **Audience run**: `MEMBERS` profiles (default 100,000) written through their
//!    partitions into a predicate audience, then a read-audience journey with an unbounded
//!    rate, on the wall clock: entries per second.
//!
//! `cargo bench --bench scale` (`PROFILES=1000000 MEMBERS=1000000` for the full scale;
//! `MEMBERS=0` leaves the audience run out).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{Span, Timestamp};
use parcours_engine::model::Event;
use parcours_engine::runtime::ProfileOp;
use parcours_engine::store::Store;
use parcours_engine::{SystemClock, TestClock};
use serde_json::json;
use support::{accept, drained, env_usize, open, publish};

const WAITING: &str = r#"
entry: {type: event, event: ping}
start: wait_pong
nodes:
  wait_pong:
    type: reaction
    events: [{event: pong, next: done}]
    timeout: PT1H
    on_timeout: done
  done: {type: end}
properties: {reentrance: {mode: always}}
"#;

/// Events made and accepted at a time while creating the waiting instances.
const SLICE: usize = 100_000;

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn event(id: String, event_type: &str, profile: String, now: Timestamp) -> Event {
    Event {
        id,
        event_type: event_type.into(),
        profile_id: profile,
        timestamp: now,
        received_at: now,
        data: json!({}),
    }
}

async fn count(store: &Arc<dyn Store>, journey: &str, status: &str) -> anyhow::Result<u64> {
    Ok(store
        .count_instances(journey)
        .await?
        .get(status)
        .copied()
        .unwrap_or(0))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let profiles = env_usize("PROFILES", 100_000);
    let matches = env_usize("MATCHES", 5_000).min(profiles);
    let members = env_usize("MEMBERS", 100_000);
    let dir = tempfile::tempdir()?;
    let start: Timestamp = "2026-03-02T08:00:00Z".parse()?;
    let clock = TestClock::new(start);
    let (engine, store) = open(&dir.path().join("timers.db"), Arc::new(clock.clone())).await?;
    publish(&engine, "waiting", WAITING).await?;
    let rss_before = resident_mib();

    // 1a. Create the waiting instances.
    // The events are made a slice at a time, so that the process's resident memory is
    // the engine's, not the benchmark's input.
    let began = Instant::now();
    for first in (0..profiles).step_by(SLICE) {
        let pings = (first..(first + SLICE).min(profiles))
            .map(|i| event(format!("ping-{i}"), "ping", format!("p{i:07}"), start))
            .collect();
        accept(engine.runtime(), pings, 500).await?;
    }
    drained(&*store).await?;
    let created = began.elapsed();
    let waiting = count(&store, "waiting", "waiting").await?;
    println!(
        "pending: {waiting} instances waiting on a reaction with a timer, created in {:.1} s ({:.0}/s); resident memory {:.0} MiB (was {:.0} MiB before)",
        created.as_secs_f64(),
        profiles as f64 / created.as_secs_f64(),
        resident_mib(),
        rss_before
    );

    // 1b. Restart to ready: a second engine opens the same database (its clock never
    // moves, so it stays idle afterwards).
    let began = Instant::now();
    let idle_clock = TestClock::new(start);
    let (_second, _) = open(&dir.path().join("timers.db"), Arc::new(idle_clock)).await?;
    println!(
        "restart to ready with {waiting} pending: {:.0} ms",
        began.elapsed().as_secs_f64() * 1e3
    );

    // 1c. Reaction matches with everything pending, against events for profiles with
    // nothing pending (the floor).
    let floor_events = (0..matches)
        .map(|i| {
            event(
                format!("pong-free-{i}"),
                "pong",
                format!("free{i:07}"),
                start,
            )
        })
        .collect();
    let began = Instant::now();
    accept(engine.runtime(), floor_events, 500).await?;
    drained(&*store).await?;
    let floor = matches as f64 / began.elapsed().as_secs_f64();
    let step = (profiles / matches).max(1);
    let match_events = (0..matches)
        .map(|i| {
            event(
                format!("pong-{i}"),
                "pong",
                format!("p{:07}", i * step),
                start,
            )
        })
        .collect();
    let began = Instant::now();
    accept(engine.runtime(), match_events, 500).await?;
    drained(&*store).await?;
    let matched = matches as f64 / began.elapsed().as_secs_f64();
    println!(
        "reaction match: {matched:.0} events/s with {waiting} reactions pending ({:.0} µs each) vs {floor:.0} events/s with none (floor): {:.2}x",
        1e6 / matched,
        matched / floor
    );

    // 1d. Fire the timeouts. Progress is read from the engine's count of timers handed
    // to their partitions (counting instances would scan the table); the end from the
    // store: no timer left (then, untimed, every instance ended).
    let due = count(&store, "waiting", "waiting").await?;
    let fired_before = engine.runtime().metrics().timers_fired();
    let began = Instant::now();
    clock.advance(Span::new().hours(1).seconds(1));
    let (mut p50, mut p99) = (None, None);
    loop {
        let fired = engine.runtime().metrics().timers_fired() - fired_before;
        let left = due - fired.min(due);
        let t = began.elapsed();
        if p50.is_none() && fired * 2 >= due {
            p50 = Some(t);
        }
        if p99.is_none() && fired * 100 >= due * 99 {
            p99 = Some(t);
        }
        if left == 0 && store.next_wake().await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = began.elapsed();
    let still = count(&store, "waiting", "waiting").await?;
    anyhow::ensure!(
        still == 0,
        "{still} instances still waiting after their timers"
    );
    println!(
        "timers: {due} fired in {:.1} s ({:.0}/s); lateness p50 {:.2} s, p99 {:.2} s",
        all.as_secs_f64(),
        due as f64 / all.as_secs_f64(),
        p50.unwrap_or(all).as_secs_f64(),
        p99.unwrap_or(all).as_secs_f64()
    );

    if members == 0 {
        return Ok(());
    }

    // 2. A read-audience run, on the wall clock (a run paces itself on the engine clock).
    let (engine, store) = open(&dir.path().join("audience.db"), Arc::new(SystemClock)).await?;
    engine
        .runtime()
        .put_audience("all", json!({"predicate": "profile.n >= 0"}))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let began = Instant::now();
    let ids: Vec<usize> = (0..members).collect();
    for chunk in ids.chunks(4_096) {
        let ops = chunk
            .iter()
            .map(|i| ProfileOp::Put {
                id: format!("m{i:07}"),
                attributes: json!({"n": i}),
                timezone: None,
                aliases: None,
                source: "api",
            })
            .collect();
        for answer in engine.runtime().profile_ops(ops).await? {
            answer?;
        }
    }
    let written = began.elapsed();
    println!(
        "profile writes with audience evaluation: {members} in {:.1} s ({:.0}/s)",
        written.as_secs_f64(),
        members as f64 / written.as_secs_f64()
    );
    let journey = format!(
        "entry: {{type: read_audience, audience: all, rate: 100000000, schedule: {{type: once, at: '{}'}}}}\nstart: e\nnodes:\n  e: {{type: end}}\n",
        Timestamp::now()
    );
    let began = Instant::now();
    publish(&engine, "blast", &journey).await?;
    loop {
        let runs = store.runs_of_journey("blast").await?;
        if let Some(run) = runs.first()
            && run.status == parcours_engine::store::RunStatus::Finished
        {
            let took = began.elapsed();
            println!(
                "audience run: {} of {members} entered in {:.1} s ({:.0} entries/s)",
                run.entered,
                took.as_secs_f64(),
                run.entered as f64 / took.as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
