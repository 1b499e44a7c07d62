//! `parcours bench`: an HTTP load tool. It drives events at a target with many
//! connections, as fast as they go or at a fixed rate (`--rate`, open loop: latency counts
//! from when a request was due, so a slow server cannot hide its queue), and reports
//! accepted events/s and request latency; without a target it starts an engine on a
//! temporary database (a 3-node journey published) and, in the same run, a bare HTTP
//! server that only parses and answers 202 (the floor), and prints the ratio. For a
//! Parcours engine it also reports the trigger-to-started latency (an event's receipt to
//! the durable commit of the instance it started), from the engine's
//! `parcours_event_latency_seconds` histogram read before and after the run. With
//! `--action-latency MS` the local engine's journey calls the `webhook` plugin, to a
//! local server that answers after MS milliseconds, and the run reports how many calls
//! were in flight on average (rate x latency). The body template takes `{seq}` (request
//! number; `{n}` is the same, kept for older scripts but unusable in clap's help, where it
//! means a line break), `{id}` (a unique id) and `{profile}` (one of `--profiles` keys),
//! so the same client can drive another engine's HTTP ingress.

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
    /// Events per second to send at (an open loop: requests are sent when due, whether or
    /// not earlier ones were answered, up to `--connections` at once); as fast as the
    /// connections go when absent.
    #[arg(long, value_parser = positive_rate)]
    rate: Option<f64>,
    /// The local engine's journey calls the `webhook` plugin instead of the built-in
    /// `log` action, to a local server that answers after this many milliseconds: how
    /// many slow calls the engine keeps in flight.
    #[arg(long, value_name = "MS")]
    action_latency: Option<u64>,
    /// Beside the load, another journey (`noisy`, entered by `noisy` events sent 20
    /// times a second to profiles of their own) calls the `webhook` plugin on a server
    /// that answers after this many milliseconds, with a 5 s timeout: whether one
    /// journey's slow endpoint holds up the others (compare the trigger-to-started
    /// latency with and without it).
    #[arg(long, value_name = "MS")]
    noisy_latency: Option<u64>,
    /// The local engine's `action_wait_ms` (its default when absent): how long a batch
    /// waits for an action call before the call leaves it.
    #[arg(long, value_name = "MS")]
    action_wait_ms: Option<u64>,
    /// The local engine's `plugins.max_concurrent_calls` (its default when absent), with
    /// `plugins.memory_budget_mb` raised to fit that many 32 MiB calls: how many slow
    /// webhook calls may run at once.
    #[arg(long, value_name = "N")]
    plugin_concurrency: Option<u32>,
    /// Partitions of the local engine (its default when absent).
    #[arg(long, env = "PARCOURS_PARTITIONS")]
    partitions: Option<usize>,
    /// Lanes of the local engine's partition batches (its default when absent).
    #[arg(long, env = "PARCOURS_PARTITION_LANES")]
    partition_lanes: Option<usize>,
    /// Profile states each partition of the local engine keeps in memory (its default
    /// when absent).
    #[arg(long, env = "PARCOURS_PARTITION_CACHE_PROFILES")]
    partition_cache_profiles: Option<usize>,
    /// An API token for the target (sent as `Authorization: Bearer`; the events need the
    /// `ingest` scope, the latency read from `/metrics` the `read` scope; an `admin` token
    /// does both).
    #[arg(long, env = "PARCOURS_TOKEN")]
    token: Option<String>,
    /// A URL to drive instead of a local engine (no floor is measured then).
    #[arg(long)]
    target: Option<String>,
    /// The JSON of one event, with `{seq}` (the request's number), `{id}` (a unique id) and
    /// `{profile}` (one of `--profiles` ids) substituted.
    #[arg(
        long,
        default_value = r#"{"id": "{id}", "type": "order", "profile_id": "{profile}", "data": {"amount": 150}}"#
    )]
    body: String,
    /// Print the measurements as one line of JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of events per second"
        )),
    }
}

/// The 3-node journey of every throughput benchmark.
const JOURNEY: &str = include_str!("../../benches/journey.yaml");

/// The action of [`JOURNEY`], which `--action-latency` replaces.
const LOG_ACTION: &str = "action: log, params: {amount: event.data.amount}";

/// [`JOURNEY`] with its action a webhook to `server`.
fn webhook_journey(server: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        JOURNEY.contains(LOG_ACTION),
        "benches/journey.yaml no longer has the action `{LOG_ACTION}` to replace"
    );
    Ok(JOURNEY.replace(
        LOG_ACTION,
        &format!(
            r#"action: webhook, params: {{url: '"{server}/hook"', body: '#{{ amount: event.data.amount }}'}}"#
        ),
    ))
}

/// The benchmark journey entered by `noisy` events, calling `server` with a 5 s timeout.
fn noisy_journey(server: &str) -> anyhow::Result<String> {
    Ok(webhook_journey(server)?
        .replace("event: order", "event: noisy")
        .replace("action: webhook,", "action: webhook, timeout: PT5S,"))
}

/// Sends a `noisy` event (a new profile each) 20 times a second until the task is
/// aborted.
async fn send_noise(url: String) {
    let client = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for n in 0u64.. {
        tick.tick().await;
        let body = serde_json::json!({"id": format!("noisy-{n}"), "type": "noisy",
            "profile_id": format!("noisy-{n}"), "data": {"amount": 150}});
        let _ = client.post(&url).json(&body).send().await;
    }
}

/// Serves `app` on a free local port; returns its base URL.
async fn spawn_server(app: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// A server that answers every request with 200 after `latency`: a slow third party.
async fn slow_server(latency: Duration) -> anyhow::Result<String> {
    spawn_server(axum::Router::new().fallback(move || async move {
        tokio::time::sleep(latency).await;
        axum::Json(serde_json::json!({"ok": true}))
    }))
    .await
}

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

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "events": self.events,
            "events_per_second": self.rate(),
            "p50_ms": self.p50.as_secs_f64() * 1e3,
            "p99_ms": self.p99.as_secs_f64() * 1e3,
            "errors": self.errors,
        })
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
        .replace("{seq}", &n.to_string())
        .replace("{n}", &n.to_string())
        .replace("{id}", &format!("{run}-{n}"))
        .replace("{profile}", &format!("p{}", n % profiles.max(1)))
}

/// The HTTP client of a run: `--connections` kept open, the token on every request.
fn client(args: &BenchArgs) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = &args.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow::anyhow!("--token: not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .default_headers(headers)
        .build()?)
}

async fn drive(url: &str, args: &BenchArgs, run: &str) -> anyhow::Result<Report> {
    let client = client(args)?;
    let next = Arc::new(AtomicUsize::new(0));
    // With a rate, request i is due at `started + i * interval`.
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.batch.max(1) as f64 / r));
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
                // Latency counts from when the request was due, not from when a free
                // connection got to it.
                let due = match interval {
                    Some(interval) => {
                        let due = started + interval.mul_f64(i as f64);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(payload)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                latencies.push(due.elapsed());
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

/// One histogram read from a Prometheus text exposition: cumulative counts by upper
/// bound, `+Inf` last.
#[derive(Debug, Default, PartialEq)]
struct Buckets(Vec<(f64, u64)>);

impl Buckets {
    /// The buckets of histogram `name` in `text` (empty when it is not there).
    fn parse(text: &str, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, u64)> = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix(&prefix)?;
                let (le, rest) = rest.split_once("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, rest.trim().parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Buckets(buckets)
    }

    fn count(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// What was observed between `before` and `self` (the same histogram read later).
    fn since(&self, before: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(le, n)| {
                    let earlier = before.0.iter().find(|b| b.0 == *le).map_or(0, |b| b.1);
                    (*le, n.saturating_sub(earlier))
                })
                .collect(),
        )
    }

    /// The quantile `q`, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does, with the bucket's bounds; `None` when nothing was
    /// observed. In the `+Inf` bucket the answer is the last finite bound.
    fn quantile(&self, q: f64) -> Option<(f64, f64, f64)> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for &(le, n) in &self.0 {
            if n as f64 >= rank {
                if le.is_infinite() {
                    return Some((lower.0, lower.0, le));
                }
                let inside = (n - lower.1) as f64;
                let share = if inside > 0.0 {
                    (rank - lower.1 as f64) / inside
                } else {
                    1.0
                };
                return Some((lower.0 + (le - lower.0) * share, lower.0, le));
            }
            lower = (le, n);
        }
        None
    }
}

/// The sum of counter `name` over all its labels in `text` (0 when it is not there).
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What an engine's `/metrics` says of a run: its event latency histogram, the
/// entries it started and the rows its store wrote.
#[derive(Debug, Default)]
struct Observed {
    latency: Buckets,
    entries: f64,
    rows: f64,
}

impl Observed {
    fn parse(text: &str) -> Observed {
        Observed {
            latency: Buckets::parse(text, "parcours_event_latency_seconds"),
            entries: counter_sum(text, "parcours_entries_total"),
            rows: counter_sum(text, "parcours_store_rows_written_total"),
        }
    }
}

/// The engine's metrics, read from `/metrics` beside `events_url`.
async fn observe(client: &reqwest::Client, events_url: &str) -> anyhow::Result<Observed> {
    let origin = events_url
        .find("/v1/")
        .map_or(events_url, |at| &events_url[..at]);
    let text = client
        .get(format!("{origin}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Observed::parse(&text))
}

/// Trigger-to-started p50 and p99 from what the histogram gained in the run.
fn event_latency_json(observed: &Buckets) -> serde_json::Value {
    let ms = |q: f64| observed.quantile(q).map(|(v, _, _)| v * 1e3);
    serde_json::json!({"p50_ms": ms(0.5), "p99_ms": ms(0.99), "events": observed.count()})
}

/// Prints trigger-to-started p50 and p99 from what the histogram gained in the run.
fn print_event_latency(observed: &Buckets) {
    let show = |q: f64| match observed.quantile(q) {
        Some((_, lo, hi)) if hi.is_infinite() => format!("> {:.1} ms", lo * 1e3),
        Some((v, lo, hi)) => format!("{:.1} ms (in {:.1}-{:.1})", v * 1e3, lo * 1e3, hi * 1e3),
        None => "n/a".to_string(),
    };
    println!(
        "{:<28} p50 {}  p99 {}  ({} events)",
        "trigger to started",
        show(0.5),
        show(0.99),
        observed.count()
    );
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
    Ok(format!("{}/v1/events", spawn_server(app).await?))
}

/// Waits until the engine at `url` has observed the latency of `events` events beyond
/// `before`, or its count stops growing for two seconds; then prints the latencies, and
/// the entries started since `before` with their rate from `started` to the last event
/// observed.
async fn report_engine(
    client: &reqwest::Client,
    url: &str,
    before: &Observed,
    events: usize,
    started: Instant,
    json: bool,
) -> serde_json::Value {
    let mut last = (0, Instant::now());
    loop {
        let Ok(now) = observe(client, url).await else {
            if !json {
                println!(
                    "{:<28} n/a (no Parcours metrics at the target)",
                    "trigger to started"
                );
            }
            return serde_json::Value::Null;
        };
        let observed = now.latency.since(&before.latency);
        let count = observed.count();
        let complete = count as usize >= events;
        if complete || last.1.elapsed() > Duration::from_secs(2) {
            let entries = now.entries - before.entries;
            let until = if complete { Instant::now() } else { last.1 };
            let seconds = until.duration_since(started).as_secs_f64();
            // Every row of the run's commits, whatever else the engine wrote meanwhile.
            let rows_per_event = (now.rows - before.rows) / events.max(1) as f64;
            if !json {
                print_event_latency(&observed);
                println!(
                    "{:<28} {:>10.0} entries/s  ({entries:.0} journey entries started in {seconds:.2} s)",
                    "entries",
                    entries / seconds.max(1e-9),
                );
                println!(
                    "{:<28} {rows_per_event:>10.2} rows/event  (parcours_store_rows_written_total)",
                    "store rows written",
                );
            }
            return serde_json::json!({
                "trigger_to_started": event_latency_json(&observed),
                "entries": entries,
                "entries_per_second": entries / seconds.max(1e-9),
                "rows_per_event": rows_per_event,
            });
        }
        if count != last.0 {
            last = (count, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let json = args.json;
    let mut out = serde_json::Map::new();
    out.insert(
        "load".into(),
        serde_json::json!({"requests": args.requests, "batch": args.batch, "connections": args.connections, "profiles": args.profiles, "rate": args.rate}),
    );
    if !json {
        println!(
            "{} requests x {} events, {} connections, {} profiles, {}",
            args.requests,
            args.batch,
            args.connections,
            args.profiles,
            args.rate
                .map_or("as fast as they go".to_string(), |r| format!(
                    "at {r} events/s"
                ))
        );
    }
    if let Some(target) = &args.target {
        let metrics = client(&args)?;
        let before = observe(&metrics, target).await.unwrap_or_default();
        let started = Instant::now();
        let report = drive(target, &args, "bench").await?;
        out.insert("target".into(), report.to_json());
        if !json {
            report.print("target");
        }
        let engine = report_engine(&metrics, target, &before, report.events, started, json).await;
        out.insert("engine".into(), engine);
        if json {
            println!("{}", serde_json::Value::Object(out));
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let floor_url = bare_server().await?;
    let floor = drive(&floor_url, &args, "floor").await?;
    out.insert("floor".into(), floor.to_json());
    if !json {
        floor.print("bare HTTP server (floor)");
    }

    let dir = tempfile::tempdir()?;
    let mut settings = Settings {
        db_path: dir.path().join("bench.db"),
        ..Settings::default()
    };
    if let Some(partitions) = args.partitions {
        settings.partitions = partitions;
    }
    if let Some(lanes) = args.partition_lanes {
        settings.partition_lanes = lanes;
    }
    if let Some(profiles) = args.partition_cache_profiles {
        settings.partition_cache_profiles = profiles;
    }
    if let Some(ms) = args.action_wait_ms {
        settings.action_wait_ms = ms;
    }
    if let Some(n) = args.plugin_concurrency {
        settings.plugins.max_concurrent_calls = n;
        settings.plugins.memory_budget_mb =
            settings.plugins.memory_budget_mb.max(u64::from(n) * 32);
    }
    if args.action_latency.is_some() || args.noisy_latency.is_some() {
        settings.plugin_dirs.push(super::builtin_plugins_dir()?);
        // The slow server listens on loopback, which plugins may not reach by default.
        settings.plugins.allow_internal_networks = vec!["127.0.0.0/8".parse()?];
    }
    let journey = match args.action_latency {
        Some(ms) => webhook_journey(&slow_server(Duration::from_millis(ms)).await?)?,
        None => JOURNEY.to_string(),
    };
    let engine = Engine::open(settings, Arc::new(SystemClock)).await?;
    let def =
        parse_journey(journey.as_bytes(), Format::Yaml).map_err(|p| anyhow::anyhow!("{p}"))?;
    engine.runtime().publish_definition("bench", &def).await?;
    if let Some(ms) = args.noisy_latency {
        let noisy = noisy_journey(&slow_server(Duration::from_millis(ms)).await?)?;
        let def =
            parse_journey(noisy.as_bytes(), Format::Yaml).map_err(|p| anyhow::anyhow!("{p}"))?;
        engine.runtime().publish_definition("noisy", &def).await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/events", listener.local_addr()?);
    let served = engine.clone();
    tokio::spawn(async move {
        let _ = served.serve(listener, std::future::pending()).await;
    });
    let metrics = client(&args)?;
    let before = observe(&metrics, &url).await?;
    let noise = args
        .noisy_latency
        .map(|_| tokio::spawn(send_noise(url.clone())));
    let started = Instant::now();
    let accepted = drive(&url, &args, "run").await?;
    if let Some(noise) = noise {
        noise.abort();
    }
    out.insert("accepted".into(), accepted.to_json());
    if !json {
        accepted.print("parcours (accepted, durable)");
    }
    // Entries: wait until every accepted event has been processed and every action call
    // that left its batch has answered (its instance moved on).
    // (The noisy journey's calls are not waited for.)
    while !engine.runtime().all_processed().await?
        || (args.action_latency.is_some() && engine.runtime().calls_in_flight() > 0)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let processed = started.elapsed();
    let processed_rate = accepted.events as f64 / processed.as_secs_f64();
    out.insert(
        "processed".into(),
        serde_json::json!({"events": accepted.events, "seconds": processed.as_secs_f64(), "events_per_second": processed_rate}),
    );
    if !json {
        println!(
            "{:<28} {:>10.0} events/s  (all {} processed in {:.2} s)",
            "parcours (processed)",
            processed_rate,
            accepted.events,
            processed.as_secs_f64()
        );
    }
    let seen = report_engine(&metrics, &url, &before, accepted.events, started, json).await;
    out.insert("engine".into(), seen);
    if let Some(ms) = args.action_latency {
        // Little's law: calls in flight on average = call rate x call time.
        let in_flight = processed_rate * ms as f64 / 1e3;
        out.insert(
            "action_calls_in_flight".into(),
            serde_json::json!(in_flight),
        );
        if !json {
            println!(
                "{:<28} {:>10.1} on average (webhook calls of {ms} ms at {processed_rate:.0}/s)",
                "action calls in flight", in_flight
            );
        }
    }
    let ratio = accepted.rate() / floor.rate();
    out.insert("accepted_over_floor".into(), serde_json::json!(ratio));
    if json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!("accepted / floor: {ratio:.2}x");
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE parcours_event_latency_seconds histogram
parcours_event_latency_seconds_sum 1.5
parcours_event_latency_seconds_count 100
parcours_event_latency_seconds_bucket{le=\"0.01\"} 50
parcours_event_latency_seconds_bucket{le=\"0.005\"} 10
parcours_event_latency_seconds_bucket{le=\"0.015\"} 100
parcours_event_latency_seconds_bucket{le=\"+Inf\"} 100
parcours_timer_lateness_seconds_bucket{le=\"0.01\"} 7
";

    #[test]
    fn reads_one_histogram_in_bound_order() {
        let b = Buckets::parse(TEXT, "parcours_event_latency_seconds");
        assert_eq!(
            b,
            Buckets(vec![
                (0.005, 10),
                (0.01, 50),
                (0.015, 100),
                (f64::INFINITY, 100)
            ])
        );
        assert_eq!(b.count(), 100);
        assert_eq!(Buckets::parse(TEXT, "missing").count(), 0);
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let b = Buckets::parse(TEXT, "parcours_event_latency_seconds");
        // Rank 50 is the last of the (5, 10] ms bucket.
        let (p50, lo, hi) = b.quantile(0.5).expect("observed");
        assert!((p50 - 0.01).abs() < 1e-12 && lo == 0.005 && hi == 0.01);
        // Rank 99: 49 of the 50 in (10, 15] ms.
        let (p99, lo, hi) = b.quantile(0.99).expect("observed");
        assert!((p99 - (0.01 + 0.005 * 49.0 / 50.0)).abs() < 1e-12);
        assert_eq!((lo, hi), (0.01, 0.015));
        // Rank 5: half of the first bucket, which starts at 0.
        let (p5, _, _) = b.quantile(0.05).expect("observed");
        assert!((p5 - 0.0025).abs() < 1e-12);
        assert_eq!(Buckets::default().quantile(0.5), None);
    }

    #[test]
    fn a_counter_is_summed_over_its_labels() {
        let text = "# TYPE parcours_entries_total counter
parcours_entries_total{journey=\"a\"} 3
parcours_entries_total{journey=\"b\"} 4.5
parcours_entries_total_created 99
parcours_entries_discarded_total{code=\"X\"} 7
";
        assert_eq!(counter_sum(text, "parcours_entries_total"), 7.5);
        assert_eq!(
            counter_sum("parcours_entries_total 2\n", "parcours_entries_total"),
            2.0
        );
        assert_eq!(counter_sum(text, "missing_total"), 0.0);
        assert_eq!(Observed::parse(text).entries, 7.5);
    }

    #[test]
    fn a_body_template_takes_its_placeholders() {
        let body = render(
            r#"{"s": {seq}, "n": {n}, "id": "{id}", "p": "{profile}"}"#,
            "r",
            12,
            10,
        );
        assert_eq!(body, r#"{"s": 12, "n": 12, "id": "r-12", "p": "p2"}"#);
    }

    #[test]
    fn a_rate_is_a_positive_number() {
        assert_eq!(positive_rate("2500"), Ok(2500.0));
        for bad in ["0", "-3", "NaN", "inf", "fast"] {
            let e = positive_rate(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_run_counts_only_what_it_added() {
        let before = Buckets(vec![(0.01, 5), (f64::INFINITY, 8)]);
        let after = Buckets(vec![(0.01, 15), (f64::INFINITY, 30)]);
        let run = after.since(&before);
        assert_eq!(run, Buckets(vec![(0.01, 10), (f64::INFINITY, 22)]));
        // 12 of the 22 are past the last finite bound.
        assert_eq!(run.quantile(0.99), Some((0.01, 0.01, f64::INFINITY)));
    }
}
