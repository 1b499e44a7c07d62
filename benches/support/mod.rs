//! What the in-process benchmarks share: settings from the environment, accepting events
//! the way `POST /v1/events` does, and waiting until they are processed.

use std::sync::Arc;
use std::time::Duration;

use parcours_engine::model::Event;
use parcours_engine::runtime::Runtime;
use parcours_engine::store::Store;

/// A count from the environment variable `name`, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Accepts events as the API does (a durable store write, then dispatch), `batch` per
/// write, 16 writes in flight.
pub async fn accept(runtime: &Runtime, events: Vec<Event>, batch: usize) -> anyhow::Result<()> {
    let mut pending = Vec::new();
    for chunk in events.chunks(batch.max(1)) {
        let (store, runtime, chunk) = (runtime.store().clone(), runtime.clone(), chunk.to_vec());
        pending.push(tokio::spawn(async move {
            store.ingest(&chunk).await?;
            runtime.dispatch(chunk).await
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
pub async fn drained(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    while !store.unprocessed_events(0, 1).await?.is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}
