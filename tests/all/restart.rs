//! The real binary is killed (SIGKILL) right after its events were accepted, then started
//! again on the same database: no accepted event is lost, each enters exactly once, and
//! pending waits fire after the restart. The crash test does it six times at random
//! moments while 20,000 events arrive at a steady rate (docs/guarantees.md).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::support::eventually;

const JOURNEY: &str = r#"{
  "entry": {"type": "event", "event": "order"},
  "start": "pause",
  "nodes": {
    "pause": {"type": "wait", "duration": "PT2S", "next": "notify"},
    "notify": {"type": "action", "action": "log", "params": {"order": "event.data.n"}, "next": "done"},
    "done": {"type": "end"}
  },
  "properties": {"reentrance": {"mode": "always"}}
}"#;

pub struct Server {
    child: Child,
    pub base: String,
    /// Its log (stderr) so far.
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// Starts `parcours serve` on `dir/engine.db` with the journeys of `dir/journeys` and
    /// extra arguments.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_parcours"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--partitions",
                "4",
                "--db",
            ])
            .arg(dir.join("engine.db"))
            .arg("--journeys")
            .arg(dir.join("journeys"))
            .args(extra);
        Self::spawn(command)
    }

    /// Runs a `parcours serve` command and waits until it listens.
    pub fn spawn(mut command: Command) -> Server {
        let mut child = command
            .env("RUST_LOG", "info")
            // A small cache of profile states: batches take some from it and read the
            // others, and this debug build checks each one taken against the store.
            .env("PARCOURS_PARTITION_CACHE_PROFILES", "64")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parcours");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("parcours exited before listening")
                .expect("read");
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                break rest.split_whitespace().next().unwrap_or(rest).to_string();
            }
        };
        // Keep draining the log so the process never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut kept = kept.lock().unwrap_or_else(|p| p.into_inner());
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Server { child, base, log }
    }

    /// Sends SIGTERM and waits for the process to exit: whether it exited with success,
    /// how long it took, and its log.
    pub fn terminate(mut self) -> (bool, std::time::Duration, String) {
        let started = std::time::Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(120),
                "parcours still running 120 s after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let elapsed = started.elapsed();
        // The log thread ends with the pipe.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (status.success(), elapsed, log)
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Server {
    /// A failing test must not leave its engine running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/journeys/orders.json`: every `order` event enters (re-entrance always),
/// calls `log` and ends.
pub fn order_journey_in(dir: &Path) {
    std::fs::create_dir(dir.join("journeys")).expect("mkdir");
    let journey = json!({
        "entry": {"type": "event", "event": "order"},
        "start": "notify",
        "nodes": {
            "notify": {"type": "action", "action": "log", "params": {"n": "event.data.n"}, "next": "done"},
            "done": {"type": "end"}
        },
        "properties": {"reentrance": {"mode": "always"}}
    });
    std::fs::write(dir.join("journeys/orders.json"), journey.to_string()).expect("write");
}

pub async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    match client.get(url).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_accepting_loses_nothing_and_waits_fire_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("journeys")).expect("mkdir");
    std::fs::write(dir.path().join("journeys/orders.json"), JOURNEY).expect("write journey");
    let client = crate::support::client();

    let server = Server::start(dir.path());
    let mut ids = Vec::new();
    for batch in 0..10 {
        let events: Vec<Value> = (0..40)
            .map(|i| {
                let n = batch * 40 + i;
                json!({"id": format!("order-{n}"), "type": "order", "profile_id": format!("p{n}"), "data": {"n": n}})
            })
            .collect();
        let r = client
            .post(format!("{}/v1/events", server.base))
            .json(&json!({"events": events}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 202);
        ids.extend((0..40).map(|i| format!("order-{}", batch * 40 + i)));
    }
    // Killed at once: some events are not yet processed, every wait is pending.
    server.kill();

    let server = Server::start(dir.path());
    let base = server.base.clone();
    for id in &ids {
        let record = eventually(|| async {
            let (s, body) = get(&client, format!("{base}/v1/events/{id}")).await;
            (s == 200 && body["processed"] == true).then_some(body)
        })
        .await;
        let entered = record["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["status"] == "entered")
            .count();
        assert_eq!(entered, 1, "{id} entered {entered} times: {record}");
    }
    for n in 0..ids.len() {
        let instances = eventually(|| async {
            let (_, body) = get(&client, format!("{base}/v1/profiles/p{n}/instances")).await;
            let list = body["instances"].as_array().cloned().unwrap_or_default();
            list.iter()
                .all(|i| i["status"] == "completed")
                .then_some(list)
                .filter(|l| !l.is_empty())
        })
        .await;
        assert_eq!(instances.len(), 1, "p{n}: {instances:?}");
        let steps = get(
            &client,
            format!(
                "{base}/v1/instances/{}/steps",
                instances[0]["id"].as_str().unwrap()
            ),
        )
        .await
        .1;
        let notified = steps["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["node"] == "notify" && s["status"] == "passed")
            .count();
        assert_eq!(notified, 1, "p{n}: {steps}");
    }
    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_commits_what_it_holds_and_exits_in_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    order_journey_in(dir.path());
    let server = Server::start_with(dir.path(), &["--shutdown-grace-seconds", "30"]);
    let base = server.base.clone();
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = batches.clone();
    // Batches are sent until the server stops answering; the ids of accepted ones are kept.
    let driver = tokio::spawn(async move {
        let client = crate::support::client();
        let mut accepted = Vec::new();
        for b in 0..200 {
            let ids: Vec<String> = (0..25).map(|i| format!("t-{}", b * 25 + i)).collect();
            let events: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "type": "order", "profile_id": format!("p-{id}"), "data": {"n": 1}}))
                .collect();
            match client
                .post(format!("{base}/v1/events"))
                .json(&json!({"events": events}))
                .send()
                .await
            {
                Ok(r) if r.status().as_u16() == 202 => {
                    accepted.extend(ids);
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(r) => panic!("refused: {}", r.status()),
                Err(_) => break,
            }
        }
        accepted
    });
    // SIGTERM lands while batches are coming in (after a few were accepted, however
    // slow the machine is).
    eventually(|| async { (batches.load(std::sync::atomic::Ordering::SeqCst) >= 4).then_some(()) })
        .await;
    let (ok, took, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    let accepted = driver.await.expect("driver");
    assert!(
        ok,
        "parcours did not exit with success after SIGTERM:\n{log}"
    );
    assert!(
        took < std::time::Duration::from_secs(30),
        "took {took:?} to stop:\n{log}"
    );
    assert!(
        log.contains("stopped: every partition committed its work"),
        "{log}"
    );
    assert!(!accepted.is_empty(), "nothing was accepted before SIGTERM");

    // On the same database, every accepted event was processed, and entered once.
    let server = Server::start(dir.path());
    let client = crate::support::client();
    for id in &accepted {
        let (_, record) = get(&client, format!("{}/v1/events/{id}", server.base)).await;
        let entered = record["steps"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["status"] == "entered").count());
        assert_eq!(
            (record["processed"].clone(), entered),
            (json!(true), 1),
            "{id} after a graceful stop: {record}"
        );
    }
    server.kill();
}

/// Events of the crash test (one profile each), and kills during their delivery.
const CRASH_EVENTS: usize = 20_000;
const CRASH_BATCH: usize = 10;
const CRASH_KILLS: usize = 6;
/// Events per second the client aims at.
const CRASH_RATE: f64 = 500.0;

/// A tiny deterministic generator, seeded from the clock and printed, so a failing run
/// can be replayed with `PARCOURS_CRASH_SEED`.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the third party behind the webhook saw: idempotency keys, with how often each came.
type Deliveries = std::sync::Arc<std::sync::Mutex<HashMap<String, u32>>>;

async fn delivery_server() -> (String, Deliveries) {
    let seen: Deliveries = Default::default();
    /// Counts the call's key at once, then answers after `?delay_ms=` (a slow third
    /// party: its calls are in flight when the engine is killed).
    async fn hook(
        axum::extract::State(seen): axum::extract::State<Deliveries>,
        axum::extract::Query(query): axum::extract::Query<HashMap<String, u64>>,
        headers: axum::http::HeaderMap,
    ) -> axum::Json<Value> {
        if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
            *seen.lock().unwrap().entry(key.to_string()).or_default() += 1;
        }
        if let Some(ms) = query.get("delay_ms") {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
        }
        axum::Json(json!({"ok": true}))
    }
    let app = axum::Router::new()
        .route("/deliver", axum::routing::post(hook))
        .with_state(seen.clone());
    (crate::support::serve(app).await, seen)
}

/// Sends one batch until an answer is 2xx, following the server across restarts.
async fn deliver(client: &reqwest::Client, base: &std::sync::Mutex<String>, events: &Value) {
    loop {
        let url = format!("{}/v1/events", base.lock().unwrap());
        match client.post(url).json(events).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => panic!("refused: {}", r.status()),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_six_times_under_steady_load_loses_and_duplicates_nothing() {
    crash_under_load(CRASH_EVENTS, CRASH_KILLS, 0).await;
}

/// The third party answers in 400 ms: at each kill about 200 calls are in flight outside
/// their batches (their instances committed as calling, their answers lost with the
/// process). After the restart each is made again, with the same key, and no instance
/// stays calling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_slow_actions_in_flight_calls_them_again_with_the_same_key() {
    crash_under_load(6_000, 3, 400).await;
}

/// Sends `events` (one profile each) at [`CRASH_RATE`] through a wait and a webhook that
/// answers after `delay_ms`, SIGKILLs the engine `kills` times at random moments, and
/// checks that every event entered once, every instance completed with its action
/// passed once, and every action reached the third party with one key.
async fn crash_under_load(events: usize, kills: usize, delay_ms: u64) {
    let seed = std::env::var("PARCOURS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test seed: PARCOURS_CRASH_SEED={seed}");
    let mut rng = XorShift(seed);
    let (hooks, delivered) = delivery_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("journeys")).expect("mkdir");
    let journey = json!({
        "entry": {"type": "event", "event": "order"},
        "start": "pause",
        "nodes": {
            "pause": {"type": "wait", "duration": "PT1S", "next": "notify"},
            "notify": {"type": "action", "action": "webhook", "next": "done",
                       "retry": {"max_attempts": 10, "backoff": "PT0.2S"},
                       "params": {"url": format!("\"{hooks}/deliver?delay_ms={delay_ms}\""), "body": "#{n: event.data.n}"}},
            "done": {"type": "end"}
        },
        "properties": {"reentrance": {"mode": "always"}}
    });
    std::fs::write(dir.path().join("journeys/orders.json"), journey.to_string()).expect("write");
    let plugins = env!("PARCOURS_BUILTIN_PLUGINS_DIR");
    // The receiver listens on loopback, which plugins reach only when allowed.
    let args = [
        "--plugins",
        plugins,
        "--plugin-allow-network",
        "127.0.0.0/8",
    ];

    let server = Server::start_with(dir.path(), &args);
    let base = std::sync::Arc::new(std::sync::Mutex::new(server.base.clone()));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let driver = {
        let (base, sent) = (base.clone(), sent.clone());
        tokio::spawn(async move {
            let client = crate::support::client();
            let started = tokio::time::Instant::now();
            for b in 0..events / CRASH_BATCH {
                let events: Vec<Value> = (b * CRASH_BATCH..(b + 1) * CRASH_BATCH)
                    .map(|n| json!({"id": format!("e-{n}"), "type": "order", "profile_id": format!("p{n}"), "data": {"n": n}}))
                    .collect();
                deliver(&client, &base, &json!({"events": events})).await;
                let done = (b + 1) * CRASH_BATCH;
                sent.store(done, std::sync::atomic::Ordering::SeqCst);
                // A steady rate: ahead of schedule, wait.
                let due = started + std::time::Duration::from_secs_f64(done as f64 / CRASH_RATE);
                tokio::time::sleep_until(due).await;
            }
        })
    };

    // One kill at a random moment within each sixth of the delivery.
    let mut server = server;
    let slice = events / (kills + 1);
    for k in 1..=kills {
        let at = k * slice + (rng.next() as usize % (slice / 2));
        while sent.load(std::sync::atomic::Ordering::SeqCst) < at {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // A random delay within a few milliseconds, so kills land inside commits too.
        tokio::time::sleep(std::time::Duration::from_micros(rng.next() % 5_000)).await;
        server.kill();
        server = Server::start_with(dir.path(), &args);
        *base.lock().unwrap() = server.base.clone();
    }
    driver.await.expect("driver");
    let base = server.base.clone();
    let client = crate::support::client();

    // Every event accepted entered its journey exactly once; in that instance, the wait
    // fired once and the action passed once, and the instance completed.
    let mut checks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (client, base) = (client.clone(), base.clone());
        checks.spawn(async move {
            let mut instances = Vec::new();
            for n in (worker..events).step_by(8) {
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(180);
                let (instance, steps) = loop {
                    let (_, record) = get(&client, format!("{base}/v1/events/e-{n}")).await;
                    let entered: Vec<&Value> = record["steps"]
                        .as_array()
                        .map(|s| s.iter().filter(|s| s["node"] == "entry").collect())
                        .unwrap_or_default();
                    if record["processed"] == true {
                        assert_eq!(
                            entered.len(),
                            1,
                            "e-{n} entered {} times: {record}",
                            entered.len()
                        );
                        assert_eq!(entered[0]["status"], "entered", "e-{n}: {record}");
                        let id = entered[0]["instance_id"].as_str().unwrap_or("").to_string();
                        let (_, instance) = get(&client, format!("{base}/v1/instances/{id}")).await;
                        let (_, steps) =
                            get(&client, format!("{base}/v1/instances/{id}/steps")).await;
                        if instance["status"] == "completed" {
                            break (id, steps["steps"].as_array().cloned().unwrap_or_default());
                        }
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "e-{n} not completed in 180 s: {instance}\n{steps}"
                        );
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "e-{n} not processed in 180 s: {record}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                };
                let passed = |node: &str| {
                    steps
                        .iter()
                        .filter(|s| s["node"] == node && s["status"] == "passed")
                        .count()
                };
                assert_eq!(
                    passed("pause"),
                    1,
                    "e-{n}: the wait fired {} times: {steps:?}",
                    passed("pause")
                );
                assert_eq!(passed("notify"), 1, "e-{n}: {steps:?}");
                instances.push(instance);
            }
            instances
        });
    }
    let mut instance_ids = Vec::new();
    while let Some(r) = checks.join_next().await {
        instance_ids.extend(r.expect("checks"));
    }
    instance_ids.sort();
    instance_ids.dedup();
    assert_eq!(instance_ids.len(), events, "one instance per event");

    // Each action reached the third party at least once, always with the same key.
    let delivered = delivered.lock().unwrap().clone();
    let mut repeats = 0;
    for id in &instance_ids {
        let keys: Vec<(&String, &u32)> = delivered
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{id}:notify:")))
            .collect();
        assert_eq!(keys.len(), 1, "{id}: keys {keys:?}");
        repeats += keys[0].1 - 1;
    }
    eprintln!(
        "crash test: {events} events, {kills} kills, calls answering in {delay_ms} ms, {} deliveries, {repeats} repeated (after a kill or a transport failure)",
        delivered.values().sum::<u32>()
    );
    if delay_ms > 0 {
        // The calls left their batches, and those in flight at a kill were made again.
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        let left: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("parcours_action_calls_left_batch_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(left > 0.0, "no call left its batch:\n{metrics}");
        assert!(repeats > 0, "no call in flight at a kill was made again");
    }
    server.kill();
}

/// A restart loads compiled plugins from `<db>.plugin-cache` (by content hash) instead of
/// compiling them again: the cached artifacts are neither rewritten nor added to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_compiled_plugins_from_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("engine.db");
    let start = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parcours"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--plugins")
            .arg(env!("PARCOURS_BUILTIN_PLUGINS_DIR"));
        tokio::task::spawn_blocking(move || Server::spawn(c))
    };
    let cached = || {
        let mut files: Vec<(std::path::PathBuf, std::time::SystemTime)> =
            std::fs::read_dir(dir.path().join("engine.db.plugin-cache"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
                        .collect()
                })
                .unwrap_or_default();
        files.sort();
        files
    };
    start().await.expect("join").terminate();
    let first = cached();
    assert!(first.len() >= 3, "one artifact per plugin: {first:?}");
    start().await.expect("join").terminate();
    assert_eq!(cached(), first, "the restart compiled again");
}
