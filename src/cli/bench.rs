//! `parcours bench`: an HTTP load tool. It drives events at a target with many
//! connections and reports accepted events/s and request latency; without a target it
//! starts an engine on a temporary database (a 3-node journey published) and, in the same
//! run, a bare HTTP server that only parses and answers 202 (the floor), and prints the
//! ratio. The body template takes `{n}` (request number), `{id}` (a unique id) and
//! `{profile}` (one of `--profiles` keys), so the same client can drive another engine's
//! HTTP ingress.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use parcours_engine::model::{Format, parse_journey};
use parcours_engine::{Engine, Settings, SystemClock};

#[derive(Args)]
pub struct BenchArgs {
    /// Requests to send in all.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Connections (concurrent requests).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Events per request (a batch when above 1).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Distinct profiles the events spread over.
    #[arg(long, default_value_t = 10_000)]
    profiles: usize,
    /// A URL to drive instead of a local engine (no floor is measured then).
    #[arg(long)]
    target: Option<String>,
    /// The JSON of one event, with `{n}`, `{id}` and `{profile}` substituted.
    #[arg(
        long,
        default_value = r#"{"id": "{id}", "type": "order", "profile_id": "{profile}", "data": {"amount": 150}}"#
    )]
    body: String,
}

/// The 3-node journey of every throughput benchmark.
const JOURNEY: &str = include_str!("../../benches/journey.yaml");

/// What one load run measured.
struct Report {
    events: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: usize,
}

impl Report {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<28} {:>10.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.rate(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.errors
        );
    }
}

fn render(template: &str, run: &str, n: usize, profiles: usize) -> String {
    template
        .replace("{n}", &n.to_string())
        .replace("{id}", &format!("{run}-{n}"))
        .replace("{profile}", &format!("p{}", n % profiles.max(1)))
}

async fn drive(url: &str, args: &BenchArgs, run: &str) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections.max(1) {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        let (body, batch, requests, profiles, run) = (
            args.body.clone(),
            args.batch.max(1),
            args.requests,
            args.profiles,
            run.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let payload = if batch == 1 {
                    render(&body, &run, i, profiles)
                } else {
                    let events: Vec<String> = (0..batch)
                        .map(|k| render(&body, &run, i * batch + k, profiles))
                        .collect();
                    format!("{{\"events\": [{}]}}", events.join(","))
                };
                let sent = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                latencies.push(sent.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(args.requests);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Report {
        events: args.requests * args.batch.max(1),
        elapsed,
        p50: at(0.5),
        p99: at(0.99),
        errors,
    })
}

/// A server that parses the JSON body and answers 202: the HTTP floor.
async fn bare_server() -> anyhow::Result<String> {
    async fn accept(body: axum::body::Bytes) -> axum::http::StatusCode {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(_) => axum::http::StatusCode::ACCEPTED,
            Err(_) => axum::http::StatusCode::BAD_REQUEST,
        }
    }
    let app = axum::Router::new().route("/v1/events", axum::routing::post(accept));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/events", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    println!(
        "{} requests x {} events, {} connections, {} profiles",
        args.requests, args.batch, args.connections, args.profiles
    );
    if let Some(target) = &args.target {
        drive(target, &args, "bench").await?.print("target");
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let floor_url = bare_server().await?;
    let floor = drive(&floor_url, &args, "floor").await?;
    floor.print("bare HTTP server (floor)");

    let dir = tempfile::tempdir()?;
    let settings = Settings {
        db_path: dir.path().join("bench.db"),
        ..Settings::default()
    };
    let engine = Engine::open(settings, Arc::new(SystemClock)).await?;
    let def =
        parse_journey(JOURNEY.as_bytes(), Format::Yaml).map_err(|p| anyhow::anyhow!("{p}"))?;
    engine.runtime().publish_definition("bench", &def).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/events", listener.local_addr()?);
    let served = engine.clone();
    tokio::spawn(async move {
        let _ = served.serve(listener, std::future::pending()).await;
    });
    let started = Instant::now();
    let accepted = drive(&url, &args, "run").await?;
    accepted.print("parcours (accepted, durable)");
    // Entries: wait until every accepted event has been processed.
    let store = engine.runtime().store().clone();
    while !store.unprocessed_events(0, 1).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let processed = started.elapsed();
    println!(
        "{:<28} {:>10.0} events/s  (all {} processed in {:.2} s)",
        "parcours (processed)",
        accepted.events as f64 / processed.as_secs_f64(),
        accepted.events,
        processed.as_secs_f64()
    );
    println!("accepted / floor: {:.2}x", accepted.rate() / floor.rate());
    Ok(std::process::ExitCode::SUCCESS)
}
