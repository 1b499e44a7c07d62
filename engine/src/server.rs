//! The HTTP server under the API: accepting connections within limits.
//!
//! Owns what a client can hold of the engine before a request reaches a handler: at most
//! `http_max_connections` connections at once (a connection over the limit is closed at
//! once, counted and logged, so descriptors stay free for the store and the plugins);
//! a connection must send a complete request head within `http_header_timeout_seconds`
//! of opening or of its previous answer (slow headers and idle keep-alive connections
//! are closed); bodies are bounded in time by the body extractor
//! (`http_body_timeout_seconds`). It never looks into requests; handlers and the API's
//! extractors do.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::settings::Settings;

/// How often at most a shed connection is logged (with the count since the last line).
const SHED_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// The limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl From<&Settings> for ServerLimits {
    fn from(s: &Settings) -> Self {
        ServerLimits {
            max_connections: s.http_max_connections.max(1),
            header_timeout: Duration::from_secs(s.http_header_timeout_seconds.max(1)),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections
/// finish their requests (for at most 10 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: ServerLimits,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, _) = tokio::sync::watch::channel(false);
    let mut shed = 0u64;
    let mut shed_logged: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (or another transient failure): wait, go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            metrics.http_connection_shed();
            shed += 1;
            if shed_logged.is_none_or(|at| at.elapsed() >= SHED_LOG_EVERY) {
                tracing::warn!(
                    shed,
                    max = limits.max_connections,
                    "connections closed at once: http_max_connections are open"
                );
                shed_logged = Some(Instant::now());
                shed = 0;
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let metrics = metrics.clone();
        let mut closing = closing.subscribe();
        tokio::spawn(async move {
            metrics.http_connection(1);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { drop(closing.wait_for(|c| *c).await) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            metrics.http_connection(-1);
            drop(slot);
        });
    }
    drop(listener);
    closing.send_replace(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, slots.acquire_many(all)).await;
    Ok(())
}
