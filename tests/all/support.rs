//! A test engine on a temporary database, a test clock and a loopback port.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::{Span, Timestamp};
use parcours_engine::actions::{ActionCall, ActionRegistry, BUILTIN_VERSION, LogAction};
use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
use parcours_engine::{Engine, Settings, TestClock};
use serde_json::{Value, json};

pub struct TestEngine {
    pub base: String,
    pub clock: TestClock,
    pub client: reqwest::Client,
    pub log: Arc<LogAction>,
    pub engine: Engine,
    /// The engine's store (to inject failures, and to read or seed what the API does
    /// not show).
    #[allow(dead_code)]
    pub store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

pub const START: &str = "2026-03-02T08:00:00Z";

impl TestEngine {
    /// An engine with the first-party plugins and the test guests installed.
    pub async fn start() -> TestEngine {
        Self::start_with(with_plugins).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Settings)) -> TestEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            db_path: dir.path().join("test.db"),
            partitions: 2,
            // A small cache of profile states (off by default): batches take some from
            // it and read the others, and this debug build checks each one taken against
            // the store's read.
            partition_cache_profiles: 64,
            ..Settings::default()
        };
        settings.plugins.max_concurrent_calls = 16;
        // The tests' receivers listen on loopback, which plugins may not reach by default.
        settings.plugins.allow_internal_networks = vec!["127.0.0.0/8".parse().expect("network")];
        settings.plugins.cache_dir =
            Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache"));
        tune(&mut settings);
        let clock = TestClock::new(START.parse().expect("start time"));
        let log = Arc::new(LogAction::default());
        let actions = ActionRegistry::with_builtins();
        actions.register("log", BUILTIN_VERSION, log.clone(), None);
        let store = Arc::new(
            SqliteStore::open(&settings.db_path, StoreOptions::from(&settings)).expect("store"),
        );
        let engine = Engine::with_parts(settings, Arc::new(clock.clone()), store.clone(), actions)
            .await
            .expect("engine");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let served = engine.clone();
        tokio::spawn(async move {
            let _ = served.serve(listener, std::future::pending()).await;
        });
        TestEngine {
            base,
            clock,
            client: crate::support::client(),
            log,
            engine,
            store,
            _dir: dir,
        }
    }

    /// The engine's database file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("test.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(body) = body {
            req = req.header("content-type", content_type).body(body.to_vec());
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/journeys/validate` with a YAML definition.
    pub async fn validate(&self, definition: &str) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/v1/journeys/validate",
            Some(definition.as_bytes()),
            "",
        )
        .await
    }

    pub async fn post_or_put(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(method, path, Some(&bytes), "application/json")
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("json");
        self.send(
            reqwest::Method::POST,
            path,
            Some(&bytes),
            "application/json",
        )
        .await
    }

    /// Stores a definition (JSON or YAML text) as the draft of `id` and publishes it.
    pub async fn publish(&self, id: &str, definition: &str) -> u32 {
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                &format!("/v1/journeys/{id}"),
                Some(definition.as_bytes()),
                "",
            )
            .await;
        assert_eq!(status, 200, "draft of {id}: {body}");
        assert_eq!(body["valid"], true, "draft of {id}: {body}");
        let (status, body) = self
            .post_json(&format!("/v1/journeys/{id}/publish"), &json!({}))
            .await;
        assert_eq!(status, 201, "publish {id}: {body}");
        body["version"].as_u64().expect("version") as u32
    }

    /// Applies the example resources and publishes the example journeys of the repository.
    pub async fn publish_examples(&self) {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        self.engine
            .apply_resources(&examples.join("resources.yaml"))
            .await
            .expect("example resources");
        let dir = examples.join("journeys");
        self.engine
            .publish_folder(&dir)
            .await
            .expect("examples publish");
    }

    pub async fn event(&self, event_type: &str, profile: &str, data: Value) -> String {
        let (status, body) = self
            .post_json(
                "/v1/events",
                &json!({"type": event_type, "profile_id": profile, "data": data}),
            )
            .await;
        assert_eq!(status, 202, "event: {body}");
        body["events"][0]["id"]
            .as_str()
            .expect("event id")
            .to_string()
    }

    /// Waits until the event has been processed; returns its record with its steps.
    pub async fn processed(&self, event_id: &str) -> Value {
        eventually(|| async {
            let (status, body) = self.get(&format!("/v1/events/{event_id}")).await;
            (status == 200 && body["processed"] == true).then_some(body)
        })
        .await
    }

    pub async fn instances(&self, profile: &str) -> Vec<Value> {
        self.all(&format!("/v1/profiles/{profile}/instances"), "instances")
            .await
    }

    /// Every item of a list endpoint, following its pages (`next`) to the last.
    pub async fn all(&self, path: &str, list: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut url = format!("{path}?limit=1000");
        loop {
            let (status, body) = self.get(&url).await;
            assert_eq!(status, 200, "{url}: {body}");
            items.extend(body[list].as_array().cloned().unwrap_or_default());
            match body["next"].as_str() {
                Some(next) => url = format!("{path}?limit=1000&after={next}"),
                None => return items,
            }
        }
    }

    /// Waits until the profile's instance of `journey` has `status`; returns it. On a
    /// time-out, panics with what the profile's instances and their steps are.
    pub async fn instance_in(&self, profile: &str, journey: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let instances = self.instances(profile).await;
            if let Some(i) = instances
                .iter()
                .find(|i| i["journey_id"] == journey && i["status"] == status)
            {
                return i.clone();
            }
            if tokio::time::Instant::now() > deadline {
                let mut report = String::new();
                for i in &instances {
                    let steps = self.steps(i["id"].as_str().unwrap_or_default()).await;
                    report.push_str(&format!("{i}\n  steps: {}\n", Value::Array(steps)));
                }
                panic!("{profile} never had a {status} instance of {journey}:\n{report}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The messages the outbox provider kept for a profile, oldest first.
    pub async fn outbox(&self, profile: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/outbox?profile_id={profile}")).await;
        assert_eq!(status, 200, "outbox: {body}");
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    pub async fn steps(&self, instance_id: &str) -> Vec<Value> {
        self.all(&format!("/v1/instances/{instance_id}/steps"), "steps")
            .await
    }

    /// The first failed step of an instance (`instance` as the API shows it).
    pub async fn failed_step(&self, instance: &Value) -> Value {
        let steps = self
            .steps(instance["id"].as_str().unwrap_or_default())
            .await;
        steps
            .into_iter()
            .find(|s| s["status"] == "failed")
            .unwrap_or_else(|| panic!("no failed step in {instance}"))
    }

    /// Moves the test clock forward.
    pub fn advance(&self, span: Span) {
        self.clock.advance(span);
    }

    /// The Prometheus text of `/metrics`.
    #[allow(dead_code)]
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        r.text().await.expect("metrics text")
    }

    pub fn log_calls(&self) -> Vec<ActionCall> {
        self.log.recent_calls()
    }

    #[allow(dead_code)]
    pub fn now(&self) -> Timestamp {
        use parcours_engine::Clock;
        self.clock.now()
    }
}

/// Settings that install the first-party plugins and the test guests.
pub fn with_plugins(s: &mut Settings) {
    s.plugin_dirs
        .push(env!("PARCOURS_BUILTIN_PLUGINS_DIR").into());
    s.plugin_dirs.push(env!("PARCOURS_TEST_PLUGINS_DIR").into());
}

/// Serves `app` on a free local port; returns its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    base
}

/// Polls `check` until it gives a value; panics after 20 s (a hang, not a slow machine).
/// An HTTP client for the tests. The command line's client speaks TLS with rustls' ring
/// provider, which makes it the process's provider; the tests install it the same way.
pub fn client() -> reqwest::Client {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The nodes of the steps, with their status, as `node:status`.
pub fn path(steps: &[Value]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["node"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The Python and JavaScript plugins (examples and test guests), built once per test run
/// by `examples/plugins/build.sh` with their own toolchains (componentize-py from PyPI,
/// componentize-js from npm); the script does nothing when no source changed.
pub fn polyglot_plugins() -> &'static Path {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = root.join("target").join("polyglot-plugins");
        let output = std::process::Command::new("bash")
            .arg(root.join("examples/plugins/build.sh"))
            .arg(&out)
            .output()
            .expect("running examples/plugins/build.sh");
        assert!(
            output.status.success(),
            "building the Python and JavaScript plugins failed (they need python3 and node \
             with npm, and the PyPI and npm registries):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        out
    })
}

/// A folder of plugins for one test: each entry is the folder of a built plugin and the
/// manifest the test gives it (pointing it at a local server, opting in to reuse, ...);
/// the component is linked, not copied.
pub fn plugin_folder(plugins: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (folder, manifest) in plugins {
        let built = polyglot_plugins().join(folder);
        let target = dir.path().join(folder);
        std::fs::create_dir_all(&target).expect("plugin folder");
        std::fs::write(target.join("plugin.toml"), manifest).expect("manifest");
        for entry in std::fs::read_dir(&built).expect("built plugin") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "wasm") {
                std::os::unix::fs::symlink(&path, target.join(path.file_name().expect("name")))
                    .expect("link the component");
            }
        }
    }
    dir
}
