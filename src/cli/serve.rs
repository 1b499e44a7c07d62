//! `parcours serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use parcours_engine::{Engine, Settings, SystemClock};

#[derive(Args)]
pub struct ServeArgs {
    /// SQLite database file (created if missing).
    #[arg(long, default_value = "parcours.db", env = "PARCOURS_DB")]
    db: PathBuf,
    /// Address to listen on, `HOST:PORT` (an IP address or a host name such as
    /// `localhost:8080`; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "PARCOURS_LISTEN")]
    listen: String,
    /// Publish the example journeys of `examples/journeys` at start.
    #[arg(long)]
    examples: bool,
    /// Create the audiences and capping rules of this file at start, before journeys
    /// (repeatable; `--examples` adds `examples/resources.yaml`).
    #[arg(long = "resources", value_name = "FILE")]
    resources: Vec<PathBuf>,
    /// A Segment write key accepted by `/v1/segment/*` (repeatable, or comma-separated
    /// in the environment variable).
    #[arg(
        long = "segment-write-key",
        env = "PARCOURS_SEGMENT_WRITE_KEYS",
        value_delimiter = ','
    )]
    segment_write_keys: Vec<String>,
    /// Let an uploaded plugin package read the secrets it declares, `NAME=DIGEST`
    /// (repeatable; the digest is the `package_digest` that `plugin inspect`, the plugin
    /// API and a refused upload show). Plugins from `--plugins` folders need none.
    #[arg(
        long = "secret-grant",
        value_name = "NAME=DIGEST",
        env = "PARCOURS_PLUGIN_SECRET_GRANTS",
        value_delimiter = ',',
        value_parser = name_digest
    )]
    secret_grants: Vec<(String, String)>,
    /// An internal network plugins may reach over HTTP, as CIDR (`127.0.0.0/8`,
    /// `10.20.0.0/16`; repeatable). Loopback, private, link-local (cloud metadata) and
    /// other internal addresses are refused by default, checked after DNS resolution.
    #[arg(
        long = "plugin-allow-network",
        value_name = "CIDR",
        env = "PARCOURS_PLUGIN_ALLOW_NETWORKS",
        value_delimiter = ','
    )]
    plugin_allow_networks: Vec<ipnet::IpNet>,
    /// Publish the journeys of this folder at start (repeatable).
    #[arg(long = "journeys", value_name = "DIR")]
    journey_dirs: Vec<PathBuf>,
    /// Install the plugins of this folder at start (repeatable; `--examples` adds the
    /// first-party plugins).
    #[arg(long = "plugins", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
    /// Where compiled plugins are cached (default: `<db>.plugin-cache`).
    #[arg(long, env = "PARCOURS_PLUGIN_CACHE")]
    plugin_cache: Option<PathBuf>,
    /// Number of partitions.
    #[arg(long, env = "PARCOURS_PARTITIONS")]
    partitions: Option<usize>,
    /// Lanes of a partition batch: profiles stepped at once, the action calls one
    /// partition has in flight at most.
    #[arg(long, env = "PARCOURS_PARTITION_LANES")]
    partition_lanes: Option<usize>,
    /// Largest request body, in bytes.
    #[arg(long, env = "PARCOURS_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// HTTP connections open at once; more are closed at once (keep it under the
    /// open-file limit, with about 100 to spare).
    #[arg(long, env = "PARCOURS_HTTP_MAX_CONNECTIONS")]
    http_max_connections: Option<usize>,
    /// Seconds a connection has to send a complete request head (new or idle).
    #[arg(long, env = "PARCOURS_HTTP_HEADER_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    http_header_timeout_seconds: Option<u64>,
    /// Seconds a request has to send its whole body.
    #[arg(long, env = "PARCOURS_HTTP_BODY_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    http_body_timeout_seconds: Option<u64>,
    /// At SIGTERM or Ctrl-C, how long the partitions get to commit the work they hold
    /// once the server has stopped accepting (default 20).
    #[arg(long, env = "PARCOURS_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// Largest single event, in bytes.
    #[arg(long, env = "PARCOURS_MAX_EVENT_BYTES")]
    max_event_bytes: Option<usize>,
    /// Most events in one batch request.
    #[arg(long, env = "PARCOURS_MAX_BATCH_EVENTS")]
    max_batch_events: Option<usize>,
    /// Largest journey definition, in bytes.
    #[arg(long, env = "PARCOURS_MAX_JOURNEY_BYTES")]
    max_journey_bytes: Option<usize>,
    /// Most nodes in one journey.
    #[arg(long, env = "PARCOURS_MAX_JOURNEY_NODES")]
    max_journey_nodes: Option<usize>,
    /// Most nodes an instance may pass in one activation (without a wait or reaction);
    /// validation refuses journeys with a longer path.
    #[arg(long, env = "PARCOURS_MAX_STEPS_PER_ACTIVATION")]
    max_steps_per_activation: Option<u32>,
    /// How often alert rules are evaluated, in seconds (an alert reacts at most this long
    /// after its condition holds).
    #[arg(long, env = "PARCOURS_ALERT_CHECK_SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    alert_check_seconds: Option<u64>,
    /// Operations one expression evaluation may perform.
    #[arg(long, env = "PARCOURS_EXPR_MAX_OPERATIONS")]
    expr_max_operations: Option<u64>,
    /// The API tokens file (`parcours token create`; default `<db>.tokens.json`). When it
    /// holds a token, every request but `/healthz` needs one of the right scope.
    #[arg(long = "tokens", value_name = "FILE", env = "PARCOURS_TOKENS_FILE")]
    tokens: Option<PathBuf>,
    /// Serve a non-loopback address without API tokens (behind a proxy that
    /// authenticates). Without tokens the API is otherwise served to local clients only.
    #[arg(long)]
    allow_unauthenticated: bool,
    /// Calls per second of an action, `NAME=RATE` (repeatable); calls over it wait in
    /// their instances.
    #[arg(long = "action-rate", value_name = "NAME=RATE", value_parser = key_number::<f64>)]
    action_rates: Vec<(String, f64)>,
    /// Calls of an action running at once, `NAME=N` (repeatable).
    #[arg(long = "action-concurrency", value_name = "NAME=N", value_parser = key_number::<u32>)]
    action_concurrency: Vec<(String, u32)>,
    /// Action calls per second to a host (an action's `url` parameter), `HOST=RATE`.
    #[arg(long = "host-rate", value_name = "HOST=RATE", value_parser = key_number::<f64>)]
    host_rates: Vec<(String, f64)>,
    /// Action calls running at once to a host, `HOST=N`.
    #[arg(long = "host-concurrency", value_name = "HOST=N", value_parser = key_number::<u32>)]
    host_concurrency: Vec<(String, u32)>,
}

/// Parses `NAME=DIGEST` (a plugin name and a 64-digit hex package digest).
fn name_digest(s: &str) -> Result<(String, String), String> {
    let (name, digest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=DIGEST"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has no plugin name before ="));
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{digest:?} is not a package digest (64 hex digits; see `parcours plugin inspect`)"
        ));
    }
    Ok((name.to_string(), digest.to_ascii_lowercase()))
}

/// Parses `KEY=NUMBER`.
fn key_number<T: std::str::FromStr>(s: &str) -> Result<(String, T), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=NUMBER"))?;
    let n = v
        .parse::<T>()
        .map_err(|_| format!("{v:?} is not a number (in {s:?})"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has no name before ="));
    }
    Ok((k.to_string(), n))
}

/// Whether the API requires tokens: yes when the tokens file holds any; without tokens,
/// only on a loopback address (or with `--allow-unauthenticated`). `asked` is the address
/// as the user wrote it, named in the refusal.
fn require_auth(
    tokens_file: &Path,
    listen: SocketAddr,
    asked: &str,
    allow_open: bool,
) -> anyhow::Result<bool> {
    if !parcours_engine::auth::read_file(tokens_file)?.is_empty() {
        tracing::info!("API tokens from {}", tokens_file.display());
        return Ok(true);
    }
    if listen.ip().is_loopback() {
        tracing::info!(
            "no API tokens in {}: the API is open to local clients only ({listen}) until one is created with `parcours token create NAME --scope admin` (it applies within a second, no restart)",
            tokens_file.display()
        );
        return Ok(false);
    }
    if allow_open {
        tracing::warn!("serving {asked} without API tokens (--allow-unauthenticated)");
        return Ok(false);
    }
    anyhow::bail!(
        "refusing to serve {asked} without API tokens: create one with `parcours token create NAME --scope admin --tokens {}`, listen on a loopback address, or pass --allow-unauthenticated",
        tokens_file.display()
    )
}

/// Where the examples are: beside the current folder, or in the source tree this binary
/// was built from.
fn examples_dir() -> PathBuf {
    let here = PathBuf::from("examples");
    if here.join("journeys").is_dir() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Binds `listen` (`HOST:PORT`, the host an address or a name): the first of its
/// addresses that can be bound. Errors name the address asked for.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {listen}: not a HOST:PORT address ({e})"))?
        .collect();
    let mut last = None;
    for address in &addresses {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((address, e)),
        }
    }
    match last {
        Some((address, e)) if address.to_string() == listen => {
            anyhow::bail!("cannot listen on {listen}: {e}")
        }
        Some((address, e)) => anyhow::bail!("cannot listen on {listen} ({address}): {e}"),
        None => anyhow::bail!("--listen {listen}: the name resolves to no address"),
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Bound before the database is opened or anything published: a busy port changes
    // nothing.
    let listener = bind(&args.listen).await?;
    let mut settings = Settings {
        db_path: args.db,
        listen: listener.local_addr()?,
        ..Settings::default()
    };
    if let Some(n) = args.partition_lanes {
        settings.partition_lanes = n.max(1);
    }
    if let Some(n) = args.partitions {
        settings.partitions = n.max(1);
    }
    if let Some(n) = args.max_body_bytes {
        settings.max_body_bytes = n;
    }
    if let Some(n) = args.http_max_connections {
        settings.http_max_connections = n.max(1);
    }
    if let Some(n) = args.http_header_timeout_seconds {
        settings.http_header_timeout_seconds = n;
    }
    if let Some(n) = args.http_body_timeout_seconds {
        settings.http_body_timeout_seconds = n;
    }
    if let Some(n) = args.shutdown_grace_seconds {
        settings.shutdown_grace_seconds = n;
    }
    if let Some(n) = args.max_event_bytes {
        settings.max_event_bytes = n;
    }
    if let Some(n) = args.max_batch_events {
        settings.max_batch_events = n;
    }
    if let Some(n) = args.max_journey_bytes {
        settings.max_journey_bytes = n;
    }
    if let Some(n) = args.max_journey_nodes {
        settings.max_journey_nodes = n;
    }
    if let Some(n) = args.max_steps_per_activation {
        settings.max_steps_per_activation = n.max(1);
    }
    if let Some(n) = args.alert_check_seconds {
        settings.alert_check_seconds = n;
    }
    if let Some(n) = args.expr_max_operations {
        settings.expr.max_operations = n;
    }
    settings.plugins.cache_dir = Some(args.plugin_cache.unwrap_or_else(|| {
        let mut p = settings.db_path.clone().into_os_string();
        p.push(".plugin-cache");
        PathBuf::from(p)
    }));
    if args.examples {
        settings.plugin_dirs.push(super::builtin_plugins_dir());
    }
    settings.plugin_dirs.extend(args.plugin_dirs);
    settings.segment_write_keys = args.segment_write_keys;
    settings.plugins.secrets = parcours_engine::plugins::SecretValues::from_env();
    settings.plugins.allow_internal_networks = args.plugin_allow_networks;
    for (name, digest) in args.secret_grants {
        settings
            .plugins
            .secret_grants
            .entry(name)
            .or_default()
            .insert(digest);
    }
    for (name, rate) in args.action_rates {
        settings
            .action_limits
            .entry(name)
            .or_default()
            .rate_per_second = Some(rate);
    }
    for (name, n) in args.action_concurrency {
        settings
            .action_limits
            .entry(name)
            .or_default()
            .max_concurrent = Some(n);
    }
    for (host, rate) in args.host_rates {
        settings
            .host_limits
            .entry(host)
            .or_default()
            .rate_per_second = Some(rate);
    }
    for (host, n) in args.host_concurrency {
        settings.host_limits.entry(host).or_default().max_concurrent = Some(n);
    }
    let tokens_file = args
        .tokens
        .unwrap_or_else(|| super::token::default_file(&settings.db_path));
    settings.require_auth = require_auth(
        &tokens_file,
        settings.listen,
        &args.listen,
        args.allow_unauthenticated,
    )?;
    settings.tokens_file = Some(tokens_file);
    let database = settings.db_path.clone();
    let auth = if settings.require_auth {
        "API tokens required"
    } else if settings.listen.ip().is_loopback() {
        "open to local clients until a token is created"
    } else {
        "open to every client (--allow-unauthenticated)"
    };
    let engine = Engine::open(settings, Arc::new(SystemClock)).await?;

    let mut resources = args.resources;
    let mut dirs = args.journey_dirs;
    if args.examples {
        resources.insert(0, examples_dir().join("resources.yaml"));
        dirs.insert(0, examples_dir().join("journeys"));
    }
    for file in resources {
        engine.apply_resources(&file).await?;
        tracing::info!("resources from {}", file.display());
    }
    for dir in dirs {
        // The runtime logs each version it publishes; unchanged journeys are counted
        // in the summary below.
        let journeys = engine.publish_folder(&dir).await?;
        tracing::info!("{} journeys from {}", journeys.len(), dir.display());
    }

    let runtime = engine.runtime();
    tracing::info!(
        "listening on http://{} (database {}, {} journeys, {} plugins, {} audiences, {auth})",
        listener.local_addr()?,
        database.display(),
        runtime.journeys().iter().count(),
        engine.plugins().list().len(),
        runtime.catalog().audiences.len(),
    );
    engine.serve(listener, shutdown_signal()).await?;
    let grace = std::time::Duration::from_secs(engine.runtime().settings().shutdown_grace_seconds);
    if engine.shut_down(grace).await {
        tracing::info!("stopped: every partition committed its work");
    } else {
        tracing::warn!(
            "stopped after {}s (shutdown_grace_seconds) with work left in the partitions; it is processed at the next start",
            grace.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
