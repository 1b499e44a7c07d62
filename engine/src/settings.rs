//! Every tunable limit and size of the engine, with its default.
//!
//! Each field is a named, documented setting: its doc comment and its default are the
//! reference (`docs/configuration.md` and `parcours config reference` are generated from
//! this module's JSON Schema, so they cannot drift). Settings read from a file or the
//! environment are these types deserialized, unknown keys refused. This module only holds
//! values; it never reads files, flags or the environment itself.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Limits applied to every rhai expression evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ExprLimits {
    /// Operations of one expression evaluation, closures included.
    pub max_operations: u64,
    /// Nested function calls in an expression.
    pub max_call_levels: usize,
    /// Nesting of brackets (`(`, `[`, `{`, `#{`, calls) in an expression, outside
    /// strings: 64 nested parentheses compile, 65 are refused when the journey is
    /// validated, naming this setting. (rhai's own count of its grammar's levels, a few
    /// per bracket, is set well above it as a backstop.)
    pub max_expr_depth: usize,
    /// Any string an expression builds.
    pub max_string_size: usize,
    /// Any array an expression builds.
    pub max_array_size: usize,
    /// Any object map an expression builds.
    pub max_map_size: usize,
    /// An expression's source text.
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Plugin calls at once (pooling allocator slots); more wait.
    pub max_concurrent_calls: u32,
    /// Memory of a plugin call without / at most with a manifest limit (`max_memory_mb`
    /// is the one maximum of a manifest's `limits.memory_mb`).
    pub default_memory_mb: u64,
    /// Memory of a plugin call without / at most with a manifest limit (`max_memory_mb`
    /// is the one maximum of a manifest's `limits.memory_mb`).
    pub max_memory_mb: u64,
    /// Memory all running plugin calls may hold at once: each counts its plugin's whole
    /// memory limit while it runs, and a call waits for room (before taking a slot)
    /// rather than exceed the budget; a plugin allowed more than the budget runs alone.
    /// Idle warm instances (opt-in reuse) are outside it, bounded by
    /// `max_warm_instances`.
    pub memory_budget_mb: u64,
    /// Time of a plugin call without a manifest limit.
    pub default_timeout_ms: u64,
    /// Result size without a manifest limit.
    pub default_max_output_bytes: usize,
    /// WebAssembly stack of a call.
    pub max_wasm_stack_bytes: usize,
    /// Interruption tick (deadline granularity, yield interval).
    pub epoch_tick_ms: u64,
    /// Compiled components.
    pub cache_dir: Option<PathBuf>,
    /// Longest reuse of a data-source answer.
    pub max_lookup_ttl_seconds: u32,
    /// Idle warm instances kept across all plugins that opt in to reuse (each holds its
    /// memory and a pooling slot while idle).
    pub max_warm_instances: u32,
    /// Bytes of each plugin linear memory reset in place when a call ends and kept
    /// resident for the next call; the rest is returned to the kernel and faults back in.
    pub memory_keep_resident_bytes: usize,
    /// Reset only the pages a call wrote (Linux `PAGEMAP_SCAN`, kernel 6.7 or later;
    /// elsewhere the first `memory_keep_resident_bytes` are zeroed with `memset`, written
    /// or not). Measured: a fresh Rust call 39.6 → 19.0 µs (docs/performance.md).
    pub memory_pagemap_scan: bool,
    /// Count fuel and keep log lines per call: on in `parcours plugin test`, off in the
    /// engine (fuel costs 10–20 % per call).
    pub consume_fuel: bool,
    /// Count fuel and keep log lines per call: on in `parcours plugin test`, off in the
    /// engine (fuel costs 10–20 % per call).
    pub capture_logs: bool,
    /// Secret values plugins may read (by the plugins that declare them and that the
    /// operator approved).
    #[serde(skip)]
    #[schemars(skip)]
    pub secrets: crate::plugins::SecretValues,
    /// Package digests of uploaded plugins allowed to read their secrets
    /// ([security](security.md)).
    pub secret_grants: crate::plugins::SecretGrants,
    /// Internal networks plugins may reach over HTTP; loopback, private, link-local
    /// (metadata) and other internal addresses are refused by default, checked after DNS
    /// resolution ([security](security.md)). `plugin test --allow-network CIDR` takes the
    /// same for local mocks.
    #[schemars(with = "Vec<String>")]
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The SQLite file (created if missing).
    pub db_path: PathBuf,
    /// The HTTP address, `HOST:PORT` with an IP address or a host name
    /// (`localhost:8080`). It is bound before the database is opened: a busy port fails
    /// at once, naming the address. The default serves the local machine only.
    pub listen: String,
    /// Any request body (413 `BODY_TOO_LARGE`; a declared `Content-Length` over it is
    /// refused before the body is read).
    pub max_body_bytes: usize,
    /// HTTP connections open at once; one over it is closed at once
    /// (`parcours_http_connections_shed_total`, a log line at most every 10 s). Keep it
    /// under the open-file limit with about 100 to spare.
    pub http_max_connections: usize,
    /// Time a connection has to send a complete request head, from its opening or from
    /// its previous answer: slow headers and idle keep-alive connections are closed.
    pub http_header_timeout_seconds: u64,
    /// Time a request has to send its whole body (408 `BODY_TIMEOUT`).
    pub http_body_timeout_seconds: u64,
    /// At SIGTERM or Ctrl-C: the server stops accepting connections, open requests
    /// finish, then the partitions get this long to commit the work they hold; the
    /// process then exits 0. What is left is processed at the next start (accepted events
    /// are durable).
    pub shutdown_grace_seconds: u64,
    /// One event's JSON (413 `EVENT_TOO_LARGE`).
    pub max_event_bytes: usize,
    /// Events in one request (413 `BATCH_TOO_LARGE`).
    pub max_batch_events: usize,
    /// A plugin upload.
    pub max_plugin_bytes: usize,
    /// A journey definition (413 `JOURNEY_TOO_LARGE`); also bounded by `max_body_bytes`.
    pub max_journey_bytes: usize,
    /// Nodes in one journey (validation error at `nodes`). A 10,000-node journey
    /// validates, publishes and runs in `cargo test`.
    pub max_journey_nodes: usize,
    /// A profile body (413 `PROFILE_TOO_LARGE`).
    pub max_profile_bytes: usize,
    /// Parallel partitions; a profile always maps to the same one.
    pub partitions: usize,
    /// Messages one partition handles per durable commit.
    pub partition_batch: usize,
    /// Lanes of a partition batch: its profiles are spread over lanes that run
    /// concurrently, each stepping its profiles' messages in order, so the action calls
    /// and store reads of different profiles overlap. The calls a batch waits for (up to
    /// `action_wait_ms` each) are at most this; calls that left their batch are counted
    /// by `max_calls_in_flight` (and `plugins.max_concurrent_calls` bounds plugin calls
    /// in all).
    pub partition_lanes: usize,
    /// Profiles whose committed state each partition keeps in memory (least recently
    /// used first out), so that a batch reads from the store only the profiles it does
    /// not hold; 0 (the default) keeps none. A state is kept for a profile seen twice
    /// while its id is among the last this many. A partition is the only writer of its
    /// profiles' states, so what it keeps is what the store holds. It pays where the
    /// same profiles come back within seconds (sessions of events); where most profiles
    /// come once (timers due after days, audience runs) it costs a few percent of the
    /// rate, and a cached profile with a waiting instance takes about 4 KB
    /// (docs/performance.md). `parcours_profile_states_cached_total` against
    /// `parcours_profile_states_read_total` shows what it saves.
    pub partition_cache_profiles: usize,
    /// Nodes an instance may pass in one activation (from an entry, a timer or an event
    /// to the next wait or reaction). Validation refuses a journey with a longer path
    /// without a pause, at the node where an instance would fail, naming this setting; at
    /// run time a longer chain of jumps fails with `STEP_LIMIT`. `journey validate` and
    /// `journey simulate` take the same flag.
    pub max_steps_per_activation: u32,
    /// Due timers loaded into memory at once.
    pub timer_batch: usize,
    /// Write operations merged into one SQLite transaction (group commit).
    pub store_commit_batch: usize,
    /// Read connections to the SQLite file.
    pub store_readers: usize,
    /// Failed commits (or state reads) in a row after which a partition reports itself
    /// unhealthy (`/healthz` 503, `parcours_partitions_unhealthy`); commits are still
    /// retried every 5 s, a read is given up (its message waits for the next start). See
    /// [guarantees](guarantees.md#when-the-store-fails).
    pub store_retries: u32,
    /// SQLite page cache of the writer connection (readers keep SQLite's default 2 MiB).
    pub store_cache_bytes: usize,
    /// Write-ahead log size at which the writer checkpoints it completely and starts it
    /// over between two commits (and the size a WAL file is cut back to). Under sustained
    /// load passive checkpoints never catch up, and without this the WAL grew by about
    /// 150 MB a second (9 GB in the first minute of the 10,000,000-timer benchmark). Each
    /// restart costs the writer a checkpoint of what the passive ones left and a sync of
    /// the database file: with 64 MiB, a restart every second or two took up to 15 % of
    /// the writer's time, and 256 MiB made writes 10–14 % faster (docs/performance.md). A
    /// larger WAL costs disk and, after a crash, the time to read it back (0.25 s for a
    /// 256 MiB WAL in the page cache here). A reader holding an older snapshot (a long
    /// report) delays the restart: the writer waits for it at most 100 ms, then tries
    /// again 50 ms later, the wait doubling with each failure in a row up to 2 s.
    pub store_wal_limit_bytes: usize,
    /// An action call without its own `timeout`.
    pub default_action_timeout_ms: u64,
    /// How long a partition's batch waits for an action call. A call that answers
    /// within it is recorded in the same commit as the step that made it; a slower one
    /// leaves the batch: its instance is committed as calling (with its idempotency key),
    /// the batch goes on, and the answer comes back to the partition as a message, so a
    /// slow endpoint costs calls in flight, not other profiles' time. 0 sends every call
    /// out of its batch. After a crash, a call that was in flight is made again, with the
    /// same key, once its deadline has passed.
    pub action_wait_ms: u64,
    /// Action calls running outside their batches at once, in all; past it a batch
    /// waits for its calls to answer (back-pressure) instead of sending them out.
    pub max_calls_in_flight: usize,
    /// Share of a retry's backoff added on top of it (0 to 1), drawn per call and attempt
    /// from the idempotency key: instances that failed together retry spread over that
    /// share, and a replay waits exactly as the first run did. 0 retries at the exact
    /// backoff.
    pub action_retry_jitter: f64,
    /// Longest a server's `Retry-After` can delay a retry: the retry comes at the later
    /// of the node's backoff and the time the server asked, never more than this after
    /// the failure.
    pub max_retry_after_seconds: u64,
    /// Expression limits.
    pub expr: ExprLimits,
    /// Plugin folders installed at start.
    pub plugin_dirs: Vec<PathBuf>,
    /// Plugin host limits.
    pub plugins: PluginSettings,
    /// Profiles per second a read-audience or business-event run enters when its entry
    /// sets no `rate`.
    pub read_audience_rate: u32,
    /// A profile import body (`POST /v1/profiles/import`).
    pub max_import_bytes: usize,
    /// Audiences; each profile write evaluates every predicate audience.
    pub max_audiences: usize,
    /// Re-evaluations after one profile write (journeys entered on a transition may
    /// change the profile again).
    pub max_audience_rounds: u32,
    /// Message templates (`PUT /v1/templates/{id}`, resources files).
    pub max_templates: usize,
    /// One template definition, every locale and part together, in bytes of JSON.
    pub template_max_bytes: usize,
    /// One rendered part of a message (a subject, an HTML body), in bytes; a template
    /// that renders more fails with `TEMPLATE_ERROR`.
    pub message_max_bytes: usize,
    /// Time to render one message, in milliseconds; checked as output is written.
    pub template_render_ms: u64,
    /// Quiet hours per channel (`email`, `sms`, `push`): a daily window of the profile's
    /// local time in which no marketing message of the channel is sent; one due inside it
    /// is held until the window ends (`{sms = "21:00-08:00"}`). None by default.
    pub quiet_hours: std::collections::BTreeMap<String, String>,
    /// Frequency caps: at most `max` messages of a channel and category (`marketing` by
    /// default) per profile in a rolling window (`within = "PT24H"`) or a calendar one
    /// in the profile's zone (`per = "day"` or `"week"`); over one a message is skipped
    /// (`FREQUENCY_CAPPED`) or, with `when_capped = "defer"`, held until there is room.
    /// None by default.
    pub frequency_caps: Vec<crate::channels::FrequencyCapDef>,
    /// Days a profile's sent messages are counted (kept with the profile for frequency
    /// caps) when no cap looks further back; older counts are deleted as new ones come.
    pub message_count_days: u32,
    /// Days beyond a capping rule's period that a profile's counted journey entries are
    /// kept: an event arriving up to this late is still judged against every entry
    /// within its period, and a rule's period lengthened by up to this much still
    /// counts the entries before the change. Older counts of a rule are deleted in the
    /// commit of the profile's next entry it counts, so a profile keeps a bounded number
    /// of them.
    pub capping_count_days: u32,
    /// Click tracking: the `http(s)` links of an email's HTML part lead through the
    /// engine (`{public_url}/r/{token}`), which records `message.clicked` and redirects.
    /// Off by default; the unsubscribe link and the text part are never rewritten.
    pub click_tracking: bool,
    /// The provider of email `message` nodes that name none (`outbox`, `smtp`).
    pub email_provider: String,
    /// The provider of SMS `message` nodes that name none.
    pub sms_provider: String,
    /// The provider of push `message` nodes that name none.
    pub push_provider: String,
    /// The SMTP server of the `smtp` provider: `smtp://host:25` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://user:pass@host`
    /// (TLS). Without it there is no `smtp` provider.
    pub smtp_url: Option<String>,
    /// The sender of email sent by SMTP (`Name <address>`); its domain ends every
    /// `Message-ID`.
    pub smtp_from: String,
    /// Longest time one SMTP exchange may take, in milliseconds.
    pub smtp_timeout_ms: u64,
    /// Where people reach this engine from outside, for the links in messages (an
    /// unsubscribe link is `{public_url}/unsubscribe/{token}`): `https://journeys.example.com`.
    /// By default `http://` and `listen`, which only suits a test on one machine.
    pub public_url: Option<String>,
    /// How long the unsubscribe link of a message works, in days.
    pub unsubscribe_link_days: u32,
    /// Most subscription groups (the channels' built-in ones count).
    pub max_subscription_groups: usize,
    /// Write keys of `/v1/segment/*`; none configured refuses every call.
    pub segment_write_keys: Vec<String>,
    /// Accepted events waiting for their partition (queued or waiting for room); past it,
    /// `POST /v1/events` and `/v1/segment/*` answer 503 `OVERLOADED` with `Retry-After:
    /// 1` and store nothing of that request.
    pub max_ingest_backlog: usize,
    /// Every request but `/healthz` needs an API token of the right scope, even while the
    /// tokens file holds none.
    #[serde(skip)]
    #[schemars(skip)]
    pub require_auth: bool,
    /// API tokens (hashed; `parcours token create`). With any token, every request but
    /// `/healthz` needs one of the right scope; without, only a loopback `listen` is
    /// served unless `--allow-unauthenticated`.
    pub tokens_file: Option<PathBuf>,
    /// Longest pause of a journey (and the default one); it resumes by itself at its end.
    /// A longer `max_duration` is 409 `INVALID_TRANSITION`.
    pub max_pause_seconds: u64,
    /// Held entries and held instances released per second when a journey resumes.
    pub resume_rate: u32,
    /// Longest wait or reaction timeout of a draft in test mode, unless the test asks for
    /// another (`wait`).
    pub test_wait_seconds: u64,
    /// Calls per second and calls at once of an action (by name, any version). A call
    /// over a cap is not made: its instance waits (a `waiting` step with
    /// `detail.throttled`) and tries again when the cap has room, so throttled calls
    /// queue in the store and survive restarts.
    pub action_limits: std::collections::BTreeMap<String, crate::actions::ActionLimit>,
    /// The same per destination host: the host of an action's `url` parameter (the
    /// `webhook` and `http-json` plugins).
    pub host_limits: std::collections::BTreeMap<String, crate::actions::ActionLimit>,
    /// How often alert rules are evaluated (engine clock; at least 1): an alert reacts at
    /// most this long after its condition holds. Windows are at least one minute.
    pub alert_check_seconds: u64,
    /// Profiles one `GET /v1/profiles?filter=...` request reads at most: a page that
    /// reaches it before it is full ends early, with `next` where the scan stopped, so a
    /// rare match costs several short requests instead of one long one.
    pub max_profile_scan: usize,
    /// Timeline events of one simulation, and recorded events of one replay (422
    /// `INVALID_SIMULATION`).
    pub max_simulation_events: usize,
    /// Profiles of one simulation.
    pub max_simulation_profiles: usize,
    /// Journey parsing and validation run at once on the blocking pool (more wait), off
    /// the async workers that answer requests.
    pub parse_workers: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            db_path: PathBuf::from("parcours.db"),
            listen: "127.0.0.1:8080".into(),
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
            partition_cache_profiles: 0,
            max_steps_per_activation: 200,
            timer_batch: 1_024,
            store_commit_batch: 2_048,
            store_readers: 4,
            store_retries: 8,
            store_cache_bytes: 64 << 20,
            store_wal_limit_bytes: 256 << 20,
            default_action_timeout_ms: 10_000,
            action_wait_ms: 20,
            max_calls_in_flight: 10_000,
            action_retry_jitter: 0.2,
            max_retry_after_seconds: 3600,
            expr: ExprLimits::default(),
            plugin_dirs: Vec::new(),
            plugins: PluginSettings::default(),
            read_audience_rate: 5_000,
            max_import_bytes: 64 * 1024 * 1024,
            max_audiences: 200,
            max_audience_rounds: 8,
            max_templates: 1_000,
            template_max_bytes: 512 * 1024,
            message_max_bytes: 256 * 1024,
            template_render_ms: 1_000,
            quiet_hours: std::collections::BTreeMap::new(),
            frequency_caps: Vec::new(),
            message_count_days: 31,
            capping_count_days: 31,
            click_tracking: false,
            email_provider: "outbox".into(),
            sms_provider: "outbox".into(),
            push_provider: "outbox".into(),
            smtp_url: None,
            smtp_from: "Parcours <parcours@localhost>".into(),
            smtp_timeout_ms: 10_000,
            public_url: None,
            unsubscribe_link_days: 365,
            max_subscription_groups: 1_000,
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
            max_profile_scan: 100_000,
            max_simulation_events: 100_000,
            max_simulation_profiles: 100_000,
            parse_workers: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}
