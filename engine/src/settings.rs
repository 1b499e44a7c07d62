//! Every tunable limit and size of the engine, with its default.
//!
//! Each field is a named, documented setting (see `docs/configuration.md`). This module
//! only holds values; it never reads files, flags or the environment itself.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Limits applied to every rhai expression evaluation.
#[derive(Debug, Clone)]
pub struct ExprLimits {
    /// Operations one evaluation may perform before it is stopped.
    pub max_operations: u64,
    /// Nesting depth of function calls.
    pub max_call_levels: usize,
    /// Nesting depth of an expression, at compile time.
    pub max_expr_depth: usize,
    /// Length in bytes of any string built during an evaluation.
    pub max_string_size: usize,
    /// Elements of any array built during an evaluation.
    pub max_array_size: usize,
    /// Entries of any object map built during an evaluation.
    pub max_map_size: usize,
    /// Length in bytes of an expression's source text.
    pub max_source_bytes: usize,
}

impl Default for ExprLimits {
    fn default() -> Self {
        Self {
            max_operations: 100_000,
            max_call_levels: 16,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_source_bytes: 16 * 1024,
        }
    }
}

/// Limits and sizes of the WebAssembly plugin host.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Plugin calls running at once (the pooling allocator's slots); more wait.
    pub max_concurrent_calls: u32,
    /// Memory of a plugin whose manifest names none, in MiB.
    pub default_memory_mb: u64,
    /// Highest memory a manifest may ask for, in MiB (the one maximum of
    /// `limits.memory_mb`).
    pub max_memory_mb: u64,
    /// Memory all running plugin calls may hold at once, in MiB: each call counts its
    /// plugin's whole memory limit while it runs, and calls wait for room rather than
    /// exceed the budget (a plugin allowed more than the budget runs alone).
    pub memory_budget_mb: u64,
    /// Time per call of a plugin whose manifest names none, in milliseconds.
    pub default_timeout_ms: u64,
    /// Result size of a plugin whose manifest names none, in bytes.
    pub default_max_output_bytes: usize,
    /// WebAssembly stack per call, in bytes (deep recursion traps beyond it).
    pub max_wasm_stack_bytes: usize,
    /// Interval of the epoch ticker that interrupts running plugins, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Where compiled components are cached; none: compile at every start.
    pub cache_dir: Option<PathBuf>,
    /// How long a data-source answer is reused at most, whatever its TTL, in seconds.
    pub max_lookup_ttl_seconds: u32,
    /// Idle warm instances kept across all plugins whose manifest opts in to reuse
    /// (`[instances] reuse = true`); each holds its memory while idle.
    pub max_warm_instances: u32,
    /// Bytes of each linear memory the pooling allocator resets in place when a call
    /// ends, keeping those pages resident for the next call (the rest is returned to the
    /// kernel and faults back in on the next call).
    pub memory_keep_resident_bytes: usize,
    /// Reset only the pages a call wrote, found with Linux's `PAGEMAP_SCAN` (kernel 6.7
    /// or later; elsewhere the first `memory_keep_resident_bytes` are reset with `memset`
    /// whether written or not).
    pub memory_pagemap_scan: bool,
    /// Count the fuel (instructions) each call consumes (the plugin test harness; costs
    /// 10–20 % per call).
    pub consume_fuel: bool,
    /// Keep each call's log lines for the caller (the plugin test harness).
    pub capture_logs: bool,
    /// Secret values plugins may read (`PARCOURS_SECRET_<PLUGIN>_<KEY>`, gathered by the
    /// command line from its environment); see `plugins::secrets`.
    pub secrets: crate::plugins::SecretValues,
    /// Package digests of uploaded plugins the operator lets read their secrets
    /// (`--secret-grant NAME=DIGEST`).
    pub secret_grants: crate::plugins::SecretGrants,
    /// Internal networks (loopback, private, link-local, ...) plugins may reach over
    /// HTTP; none by default (`plugins::network`).
    pub allow_internal_networks: Vec<ipnet::IpNet>,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 64,
            default_memory_mb: 64,
            max_memory_mb: 1024,
            memory_budget_mb: 4096,
            default_timeout_ms: 5_000,
            default_max_output_bytes: 1024 * 1024,
            max_wasm_stack_bytes: 512 * 1024,
            epoch_tick_ms: 10,
            cache_dir: None,
            max_lookup_ttl_seconds: 3_600,
            max_warm_instances: 32,
            memory_keep_resident_bytes: 64 << 10,
            memory_pagemap_scan: true,
            consume_fuel: false,
            capture_logs: false,
            secrets: Default::default(),
            secret_grants: Default::default(),
            allow_internal_networks: Vec::new(),
        }
    }
}

/// Settings of one engine process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SQLite database file.
    pub db_path: PathBuf,
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// HTTP connections open at once; a connection over it is closed at once (counted
    /// and logged). Keep it under the process's open-file limit, with room for the store
    /// and the plugins (about 100 descriptors).
    pub http_max_connections: usize,
    /// Time a connection has to send a complete request head, from its opening or from
    /// the answer to its previous request (slow headers and idle connections end).
    pub http_header_timeout_seconds: u64,
    /// Time a request has to send its whole body (408 `BODY_TIMEOUT` after it).
    pub http_body_timeout_seconds: u64,
    /// At shutdown (SIGTERM, Ctrl-C), how long the partitions get to commit the work they
    /// hold once the HTTP server has stopped accepting; what is left is processed at the
    /// next start (accepted events are durable).
    pub shutdown_grace_seconds: u64,
    /// Largest accepted single event (its JSON text), in bytes.
    pub max_event_bytes: usize,
    /// Most events in one batch request.
    pub max_batch_events: usize,
    /// Largest plugin upload (component and manifest), in bytes.
    pub max_plugin_bytes: usize,
    /// Largest journey definition, in bytes.
    pub max_journey_bytes: usize,
    /// Most nodes in one journey.
    pub max_journey_nodes: usize,
    /// Largest profile attribute document, in bytes.
    pub max_profile_bytes: usize,
    /// Number of partitions; each runs the steps of the profiles that hash to it, in order.
    pub partitions: usize,
    /// Most messages (events, timers) one partition handles per durable commit.
    pub partition_batch: usize,
    /// Lanes of one partition batch: its profiles are spread over this many lanes that
    /// run concurrently, each stepping its profiles' messages in order, so that one
    /// profile's slow action call does not hold up the others. Bounds the action calls
    /// one partition has in flight.
    pub partition_lanes: usize,
    /// Most nodes one instance may pass in one activation before it is failed
    /// (a guard against loops; validation already rejects loops without a wait).
    pub max_steps_per_activation: u32,
    /// Due timers loaded from the store at once; only this many are held in memory.
    pub timer_batch: usize,
    /// Most write operations merged into one store transaction (group commit).
    pub store_commit_batch: usize,
    /// Read connections kept open on the store.
    pub store_readers: usize,
    /// Failed store commits (or state reads) in a row after which a partition reports
    /// itself unhealthy (`/healthz` 503); commits are still retried, reads are given up.
    pub store_retries: u32,
    /// SQLite page cache of the writer connection, in bytes: the index pages a commit
    /// touches stay in memory instead of being read again from the file.
    pub store_cache_bytes: usize,
    /// Size of the write-ahead log at which the writer checkpoints it completely and
    /// starts it over between two commits (also the size a WAL file is cut back to).
    pub store_wal_limit_bytes: usize,
    /// Time one action call may take unless its node says otherwise, in milliseconds.
    pub default_action_timeout_ms: u64,
    /// Share of a retry's backoff added on top of it, drawn per call and attempt from the
    /// idempotency key (0 to 1): instances that failed together do not all retry at the
    /// same instant, and a replay waits exactly as long as the first run did.
    pub action_retry_jitter: f64,
    /// Longest wait a server's `Retry-After` can impose on a retry, in seconds (a retry
    /// never comes earlier than the node's backoff, nor later than this after the
    /// failure because a server asked).
    pub max_retry_after_seconds: u64,
    /// Expression limits.
    pub expr: ExprLimits,
    /// Folders of plugins (a manifest and its component each) loaded at start.
    pub plugin_dirs: Vec<PathBuf>,
    /// Plugin host limits.
    pub plugins: PluginSettings,
    /// Profiles per second a read-audience or business-event journey enters unless its
    /// entry sets `rate`.
    pub read_audience_rate: u32,
    /// Largest profile import body (`POST /v1/profiles/import`), in bytes.
    pub max_import_bytes: usize,
    /// Most audiences; every profile write evaluates every predicate audience.
    pub max_audiences: usize,
    /// Most rounds of audience re-evaluation after one profile write (journeys entered on
    /// a transition may change the profile again).
    pub max_audience_rounds: u32,
    /// Segment write keys accepted by `/v1/segment/*` (Basic auth user name); with
    /// `require_auth`, they are ingest tokens.
    pub segment_write_keys: Vec<String>,
    /// Accepted events that may wait for their partition before ingestion answers 503
    /// `OVERLOADED` with `Retry-After` (and stores nothing of the refused request).
    pub max_ingest_backlog: usize,
    /// Every request but `/healthz` needs an API token of the right scope, even while the
    /// tokens file holds none.
    pub require_auth: bool,
    /// The tokens file (hashed tokens, `parcours token create`), reread when it changes
    /// (at most once a second): once it holds a token, every request but `/healthz`
    /// needs one, without a restart.
    pub tokens_file: Option<PathBuf>,
    /// Longest pause a journey may be given, in seconds; it resumes by itself after the
    /// pause it was given (default: this much).
    pub max_pause_seconds: u64,
    /// Held entries and held instances released per second when a journey resumes.
    pub resume_rate: u32,
    /// Longest wait or reaction timeout of a draft in test mode, in seconds, unless the
    /// test asks for another.
    pub test_wait_seconds: u64,
    /// Caps on calls per action name (calls per second, calls at once); a throttled call
    /// waits durably (its instance pauses) until the cap has room.
    pub action_limits: std::collections::BTreeMap<String, crate::actions::ActionLimit>,
    /// Caps on action calls per destination host (the host of a `url` parameter).
    pub host_limits: std::collections::BTreeMap<String, crate::actions::ActionLimit>,
    /// How often alert rules are evaluated, in seconds of the engine clock.
    pub alert_check_seconds: u64,
    /// Most timeline events one simulation (or replay) may run.
    pub max_simulation_events: usize,
    /// Most profiles one simulation (or replay) may start with.
    pub max_simulation_profiles: usize,
    /// CPU-heavy request work (parsing and validating journeys) run at once on the
    /// blocking pool, off the async workers that answer requests; more waits.
    pub parse_workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            db_path: PathBuf::from("parcours.db"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 4 * 1024 * 1024,
            http_max_connections: 768,
            http_header_timeout_seconds: 30,
            http_body_timeout_seconds: 60,
            shutdown_grace_seconds: 20,
            max_event_bytes: 64 * 1024,
            max_batch_events: 1_000,
            max_plugin_bytes: 64 * 1024 * 1024,
            max_journey_bytes: 4 * 1024 * 1024,
            max_journey_nodes: 10_000,
            max_profile_bytes: 256 * 1024,
            partitions: 8,
            partition_batch: 512,
            partition_lanes: 16,
            max_steps_per_activation: 200,
            timer_batch: 1_024,
            store_commit_batch: 2_048,
            store_readers: 4,
            store_retries: 8,
            store_cache_bytes: 64 << 20,
            store_wal_limit_bytes: 256 << 20,
            default_action_timeout_ms: 10_000,
            action_retry_jitter: 0.2,
            max_retry_after_seconds: 3600,
            expr: ExprLimits::default(),
            plugin_dirs: Vec::new(),
            plugins: PluginSettings::default(),
            read_audience_rate: 5_000,
            max_import_bytes: 64 * 1024 * 1024,
            max_audiences: 200,
            max_audience_rounds: 8,
            segment_write_keys: Vec::new(),
            max_ingest_backlog: 50_000,
            require_auth: false,
            tokens_file: None,
            max_pause_seconds: 14 * 24 * 3_600,
            resume_rate: 5_000,
            test_wait_seconds: 10,
            alert_check_seconds: 60,
            action_limits: Default::default(),
            host_limits: Default::default(),
            max_simulation_events: 100_000,
            max_simulation_profiles: 100_000,
            parse_workers: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}
