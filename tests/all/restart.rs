//! The real binary is killed (SIGKILL) right after its events were accepted, then started
//! again on the same database: no accepted event is lost, each enters exactly once, and
//! pending waits fire after the restart.

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
}

impl Server {
    fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[])
    }

    /// Starts `parcours serve` on `dir/engine.db` with the journeys of `dir/journeys` and
    /// extra arguments.
    pub fn start_with(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parcours"))
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
            .args(extra)
            .env("RUST_LOG", "info")
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
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
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
    let client = reqwest::Client::new();

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
