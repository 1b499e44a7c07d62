//! `parcours serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use parcours_engine::{Engine, SystemClock};

use super::config::SettingsArgs;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Publish the example journeys at start, with their audiences and capping rules,
    /// and install the first-party plugins (all carried by the binary).
    #[arg(long)]
    examples: bool,
    /// Create the audiences and capping rules of this file at start, before journeys
    /// (repeatable; `--examples` adds the examples' resources).
    #[arg(long = "resources", value_name = "FILE")]
    resources: Vec<PathBuf>,
    /// Publish the journeys of this folder at start (repeatable).
    #[arg(long = "journeys", value_name = "DIR")]
    journey_dirs: Vec<PathBuf>,
    /// Serve a non-loopback address without API tokens (behind a proxy that
    /// authenticates). Without tokens the API is otherwise served to local clients only.
    #[arg(long)]
    allow_unauthenticated: bool,
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

/// Binds `listen` (`HOST:PORT`, the host an address or a name): the first of its
/// addresses that can be bound. Errors name the address asked for.
async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| anyhow::anyhow!("listen {listen}: not a HOST:PORT address ({e})"))?
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
        None => anyhow::bail!("listen {listen}: the name resolves to no address"),
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let resolved = super::config::resolve(&args.settings, |name| std::env::var(name).ok())?;
    // Bound before the database is opened or anything published: a busy port changes
    // nothing.
    let listener = bind(&resolved.settings.listen).await?;
    let address = listener.local_addr()?;
    let asked = resolved.settings.listen.clone();
    let mut settings = resolved.settings;
    settings.listen = address.to_string();
    if args.examples {
        settings.plugin_dirs.push(super::builtin_plugins_dir()?);
    }
    settings.plugins.secrets = parcours_engine::plugins::SecretValues::from_env();
    let tokens_file = settings
        .tokens_file
        .clone()
        .unwrap_or_else(|| super::token::default_file(&settings.db_path));
    settings.require_auth =
        require_auth(&tokens_file, address, &asked, args.allow_unauthenticated)?;
    let database = settings.db_path.clone();
    let auth = if settings.require_auth {
        "API tokens required"
    } else if address.ip().is_loopback() {
        "open to local clients until a token is created"
    } else {
        "open to every client (--allow-unauthenticated)"
    };
    let engine = Engine::open(settings, Arc::new(SystemClock)).await?;

    let mut resources = args.resources;
    let mut dirs = args.journey_dirs;
    if args.examples {
        let examples = super::assets::examples_dir()?;
        resources.insert(0, examples.join("resources.yaml"));
        dirs.insert(0, examples.join("journeys"));
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

    let shutdown = shutdown_signal();
    let runtime = engine.runtime();
    tracing::info!(
        "listening on http://{} (database {}, {} journeys, {} plugins, {} audiences, {auth})",
        listener.local_addr()?,
        database.display(),
        runtime.journeys().iter().count(),
        engine.plugins().list().len(),
        runtime.catalog().audiences.len(),
    );
    engine.serve(listener, shutdown).await?;
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

/// SIGTERM or Ctrl-C. On Unix the handlers are installed when this is called (before the
/// engine says it listens), so a signal sent as soon as it listens stops it gracefully.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::terminate(), SignalKind::interrupt()].map(signal)
    };
    async move {
        #[cfg(unix)]
        {
            let [term, int] = signals;
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {}
                () = wait(int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
