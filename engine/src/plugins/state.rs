//! The state of one plugin call: its WASI context (no files, no environment, no
//! sockets), its HTTP hooks, its resource limiter, and its host capabilities (log,
//! config, secrets).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::host::{self, Level};
use super::network::NetworkPolicy;
use super::outbound::{AllowList, HttpMode, Observed, Outbound};

/// What a plugin is given, shared by all its calls.
#[derive(Debug, Default)]
pub struct Grants {
    pub plugin: String,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub allow: Arc<AllowList>,
    /// Which addresses its allowed HTTP requests may connect to.
    pub network: Arc<NetworkPolicy>,
    /// Where the plugin's allowed HTTP requests go.
    pub http: Arc<HttpMode>,
}

/// Caps linear memory and tables, and remembers a refused growth.
pub struct Limiter {
    pub max_memory: usize,
    pub max_table_elements: usize,
    pub memory_denied: bool,
    /// Largest linear memory granted so far, in bytes.
    pub peak: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_denied = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// The `T` of a call's `Store<T>`.
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    outbound: Outbound,
    pub limiter: Limiter,
    pub grants: Arc<Grants>,
    /// What the host saw of the call's HTTP requests (refusals, `Retry-After`).
    pub observed: Arc<Mutex<Observed>>,
    /// Keep log lines in `logs` (the test harness) as well as tracing them.
    capture_logs: bool,
    pub logs: Vec<LogLine>,
    /// What the guest printed, when captured: stdout, stderr, and how much of each is
    /// already in `logs`.
    printed: Option<[(MemoryOutputPipe, usize); 2]>,
}

/// Bytes of stdout and of stderr kept per instance when captured; a guest that prints
/// more traps (the harness only: the engine discards what plugins print).
const MAX_PRINTED_BYTES: usize = 1 << 20;

/// A log line a plugin wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
    /// The fields as the plugin gave them (a JSON object, or empty).
    pub fields: String,
}

/// Log lines kept per call at most, when captured.
const MAX_CAPTURED_LOGS: usize = 1000;

/// Longest log message or field text written, in bytes.
const MAX_LOG_BYTES: usize = 4096;

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl CallState {
    /// The state of a call; `capture` keeps log lines and what the guest prints.
    pub fn new(grants: Arc<Grants>, max_memory: usize, capture: bool) -> Self {
        // Default-deny: no preopened directories, no environment, no arguments, no
        // inherited stdio (what a guest prints is discarded unless captured), no sockets
        // or name lookups.
        let mut builder = WasiCtxBuilder::new();
        let printed = capture.then(|| {
            let out = MemoryOutputPipe::new(MAX_PRINTED_BYTES);
            let err = MemoryOutputPipe::new(MAX_PRINTED_BYTES);
            builder.stdout(out.clone()).stderr(err.clone());
            [(out, 0), (err, 0)]
        });
        let wasi = builder.build();
        let observed = Arc::new(Mutex::new(Observed::default()));
        CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound: Outbound {
                allow: grants.allow.clone(),
                network: grants.network.clone(),
                observed: observed.clone(),
                mode: grants.http.clone(),
            },
            limiter: Limiter {
                max_memory,
                max_table_elements: 200_000,
                memory_denied: false,
                peak: 0,
            },
            grants,
            observed,
            capture_logs: capture,
            logs: Vec::new(),
            printed,
        }
    }

    /// Moves what the guest printed since the last call into `logs`, a line each.
    pub fn collect_printed(&mut self) {
        let Some(printed) = &mut self.printed else {
            return;
        };
        for ((pipe, seen), level) in printed.iter_mut().zip(["stdout", "stderr"]) {
            let all = pipe.contents();
            let new = &all[(*seen).min(all.len())..];
            *seen = all.len();
            for line in String::from_utf8_lossy(new).lines() {
                if self.logs.len() < MAX_CAPTURED_LOGS {
                    self.logs.push(LogLine {
                        level,
                        message: truncated(line.to_string(), MAX_LOG_BYTES),
                        fields: String::new(),
                    });
                }
            }
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl host::Host for CallState {
    fn log(&mut self, level: Level, message: String, fields: String) {
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let message = truncated(message, MAX_LOG_BYTES);
        let fields = truncated(fields, MAX_LOG_BYTES);
        tracing::info!(target: "parcours::plugin", plugin = %self.grants.plugin, level, %message, %fields, "plugin log");
        if self.capture_logs && self.logs.len() < MAX_CAPTURED_LOGS {
            self.logs.push(LogLine {
                level,
                message,
                fields,
            });
        }
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.grants.config.get(&key).cloned()
    }

    fn secret(&mut self, key: String) -> Option<String> {
        self.grants.secrets.get(&key).cloned()
    }
}

impl super::bindings::types::Host for CallState {}

/// The host interface of 0.2.0 is the one of 0.1.0.
impl super::bindings::channel_provider::parcours::plugin::host::Host for CallState {
    fn log(
        &mut self,
        level: super::bindings::channel_provider::parcours::plugin::host::Level,
        message: String,
        fields: String,
    ) {
        use super::bindings::channel_provider::parcours::plugin::host::Level as L2;
        let level = match level {
            L2::Debug => Level::Debug,
            L2::Info => Level::Info,
            L2::Warn => Level::Warn,
            L2::Error => Level::Error,
        };
        host::Host::log(self, level, message, fields);
    }

    fn config(&mut self, key: String) -> Option<String> {
        host::Host::config(self, key)
    }

    fn secret(&mut self, key: String) -> Option<String> {
        host::Host::secret(self, key)
    }
}

impl super::bindings::channel_provider::parcours::plugin::types::Host for CallState {}
