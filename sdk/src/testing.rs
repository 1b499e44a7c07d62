//! Run a built plugin from a native Rust test, outside the engine, in the engine's own
//! sandbox (feature `testing`): one call, with the plugin's HTTP requests answered by
//! stubs, and a report of its result, log lines, HTTP exchanges, time, memory and fuel.
//!
//! ```ignore
//! use parcours_sdk::testing::PluginTest;
//! use serde_json::json;
//!
//! let report = PluginTest::new("target/plugins/webhook/plugin.toml")
//!     .stub("POST", "https://hooks.example.com/in", 200, json!({"ok": true}))
//!     .invoke(json!({"url": "https://hooks.example.com/in", "body": {"a": 1}}))?;
//! assert_eq!(report.ok().unwrap()["status"], 200);
//! assert_eq!(report.http[0].request_body, Some(json!({"a": 1})));
//! ```
//!
//! Never part of a plugin: this module is the host side, built only for native targets.

use std::path::{Path, PathBuf};

pub use parcours_engine::plugins::harness::{HarnessContext, HarnessReport};
use parcours_engine::plugins::harness::{HarnessHttp, HarnessInput, run_once};
pub use parcours_engine::plugins::{HttpExchange, LogLine};
use parcours_engine::settings::PluginSettings;
use serde_json::Value;

/// One plugin under test, with the HTTP stubs its calls see.
pub struct PluginTest {
    manifest: PathBuf,
    stubs: Option<Vec<HttpExchange>>,
    context: Option<HarnessContext>,
    settings: PluginSettings,
}

impl PluginTest {
    /// The plugin of `manifest` (`plugin.toml`, with the component it names beside it).
    /// Without stubs, its allowed HTTP requests go to the network.
    pub fn new(manifest: impl AsRef<Path>) -> Self {
        PluginTest {
            manifest: manifest.as_ref().to_path_buf(),
            stubs: None,
            context: None,
            settings: PluginSettings::default(),
        }
    }

    /// Answers `method url` with `status` and `body` (a JSON string is sent as text);
    /// once any stub is given, requests without one fail as unreachable.
    pub fn stub(mut self, method: &str, url: &str, status: u16, body: Value) -> Self {
        self.stubs.get_or_insert_with(Vec::new).push(HttpExchange {
            method: method.into(),
            url: url.into(),
            status,
            headers: Default::default(),
            body,
            request_body: None,
            request_headers: Default::default(),
        });
        self
    }

    /// The call context the plugin sees (profile, journey, attempt, idempotency key).
    pub fn context(mut self, context: HarnessContext) -> Self {
        self.context = Some(context);
        self
    }

    /// Caches compiled components in `dir` (large components compile in seconds).
    pub fn cache_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.settings.cache_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Calls an action with `params`.
    pub fn invoke(&self, params: Value) -> anyhow::Result<HarnessReport> {
        self.run(HarnessInput {
            params: Some(params),
            ..HarnessInput::default()
        })
    }

    /// Looks `key` up in a data source.
    pub fn fetch(&self, key: &str) -> anyhow::Result<HarnessReport> {
        self.run(HarnessInput {
            key: Some(key.into()),
            ..HarnessInput::default()
        })
    }

    /// Calls one function of a functions plugin.
    pub fn call(&self, function: &str, args: Vec<Value>) -> anyhow::Result<HarnessReport> {
        self.run(HarnessInput {
            function: Some(function.into()),
            args: Some(args),
            ..HarnessInput::default()
        })
    }

    fn run(&self, mut input: HarnessInput) -> anyhow::Result<HarnessReport> {
        input.context = self.context.clone();
        let http = match &self.stubs {
            Some(s) => HarnessHttp::Stubbed(s.clone()),
            None => HarnessHttp::Live,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        runtime.block_on(run_once(&self.manifest, input, http, &self.settings))
    }
}
