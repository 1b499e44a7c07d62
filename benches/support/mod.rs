//! What the in-process benchmarks share: settings from the environment, an engine on a
//! new database, plugins installed into an action registry, publishing a journey,
//! accepting events the way `POST /v1/events` does, and waiting until they are processed.

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parcours_engine::actions::ActionRegistry;
use parcours_engine::model::{Event, Format, parse_journey};
use parcours_engine::plugins::{PluginHost, PluginRegistry};
use parcours_engine::runtime::Runtime;
use parcours_engine::settings::PluginSettings;
use parcours_engine::store::sqlite::{SqliteStore, StoreOptions};
use parcours_engine::store::{PartitionStore, Store};
use parcours_engine::{Clock, Engine, Settings};

/// The allocator `parcours` runs with (src/main.rs), so that the in-process benchmarks
/// measure what the command does.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A count from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes this process has handed to `write` and its kin so far (`wchar` of
/// `/proc/self/io`: the WAL appends, checkpoints into the database file, logs), or
/// `None` where the kernel does not say.
pub fn bytes_written() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
}

/// "N rows/event" for the rows the store wrote (inserted, updated or deleted) since it
/// had written `before`, over `events` events.
pub fn rows_per_event(store: &SqliteStore, before: u64, events: usize) -> String {
    let rows = store.rows_written().unwrap_or(0).saturating_sub(before);
    format!("{:.2} rows/event", rows as f64 / events.max(1) as f64)
}

/// "N B/event" for the bytes written since `before` over `events` events.
pub fn per_event(before: Option<u64>, events: usize) -> String {
    match (before, bytes_written()) {
        (Some(a), Some(b)) => format!("{} B/event written", (b - a) / events.max(1) as u64),
        _ => "bytes written unknown".into(),
    }
}

/// An engine with the default settings (but `WAL_LIMIT`, the WAL restart size in bytes,
/// `LANES`, the lanes of a partition batch, `STATE_CACHE`, the profile states a
/// partition keeps, and `STORE_CACHE`, the writer's page cache in bytes, when set) and
/// the built-in actions on the SQLite file at `path` (created if new), and its store.
pub async fn open(path: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<(Engine, Arc<dyn Store>)> {
    let (engine, store) = open_with(path, clock, ActionRegistry::with_builtins()).await?;
    Ok((engine, store))
}

/// [`open`] with the actions of `actions`.
pub async fn open_with(
    path: &Path,
    clock: Arc<dyn Clock>,
    actions: ActionRegistry,
) -> anyhow::Result<(Engine, Arc<SqliteStore>)> {
    let defaults = Settings::default();
    let settings = Settings {
        db_path: path.to_path_buf(),
        store_wal_limit_bytes: env_usize("WAL_LIMIT", defaults.store_wal_limit_bytes),
        partition_lanes: env_usize("LANES", defaults.partition_lanes),
        partition_cache_profiles: env_usize("STATE_CACHE", defaults.partition_cache_profiles),
        store_cache_bytes: env_usize("STORE_CACHE", defaults.store_cache_bytes),
        ..defaults
    };
    let store = Arc::new(SqliteStore::open(path, StoreOptions::from(&settings))?);
    let engine = Engine::with_parts(settings, clock, store.clone(), actions).await?;
    Ok((engine, store))
}

/// Installs the plugins of `dir` into `actions`, on a plugin host with `settings` whose
/// compiled components are cached under the target directory.
pub async fn install_plugins(
    actions: &ActionRegistry,
    dir: &Path,
    settings: PluginSettings,
) -> anyhow::Result<()> {
    let settings = PluginSettings {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        ..settings
    };
    let host = Arc::new(PluginHost::new(&settings)?);
    PluginRegistry::new(host, actions.clone())
        .load_dir(dir)
        .await?;
    Ok(())
}

/// Publishes the journey written in YAML as `id`.
pub async fn publish(engine: &Engine, id: &str, yaml: &str) -> anyhow::Result<()> {
    let def = parse_journey(yaml.as_bytes(), Format::Yaml).map_err(|p| anyhow::anyhow!("{p}"))?;
    engine.runtime().publish_definition(id, &def).await?;
    Ok(())
}

/// Accepts events as the API does (`Runtime::accept`: a durable store write, then
/// dispatch), `batch` per write, 16 writes in flight.
pub async fn accept(runtime: &Runtime, events: Vec<Event>, batch: usize) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    for chunk in events.chunks(batch.max(1)) {
        let (runtime, chunk) = (runtime.clone(), chunk.to_vec());
        pending.push(tokio::spawn(async move {
            runtime.accept(chunk).await.map(drop)
        }));
        if pending.len() >= 16 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending {
        p.await??;
    }
    Ok(())
}

/// Waits until every accepted event is processed.
pub async fn drained(store: &dyn Store) -> anyhow::Result<()> {
    while !store.unprocessed_events(0, 1).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
