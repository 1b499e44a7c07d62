//! `parcours`: the command line of the Parcours journey engine.

mod cli;
#[cfg(feature = "otel")]
mod otel;

use clap::Parser;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The process's allocator: mimalloc. A batch allocates and frees many small values
/// (states, rows, JSON) beside long-lived ones (kept states, in-memory timers, plugin
/// pools); with glibc's malloc the engine spent about a fifth more CPU per event over
/// HTTP, for 40–55 MB less memory at peak (docs/performance.md, "The allocator"). The
/// in-process benchmarks use the same (benches/support).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // TLS (the client commands' `https://` engines, the OTLP exporter) with rustls' ring
    // provider, before any HTTP client is built; an error means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            // The platform verifier logs a refused certificate as an error of its own;
            // the client commands say it once, with what to do.
            .unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,rustls_platform_verifier=off")
            })
    };
    // One of the two is set: text for people, or one JSON object per line for a log
    // collector (`--log-format json`).
    let (text, json) = match args.log_format {
        cli::LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(filter()),
            ),
            None,
        ),
        cli::LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .with_filter(filter()),
            ),
        ),
    };
    // `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` turns on span export (feature `otel`).
    #[cfg(feature = "otel")]
    let (otel, provider) = match std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Ok(endpoint) => match otel::layer(&endpoint) {
            Ok((layer, provider)) => (
                Some(layer.with_filter(tracing_subscriber::EnvFilter::new(
                    "parcours_engine=debug,parcours=info",
                ))),
                Some(provider),
            ),
            Err(e) => {
                eprintln!("error: OpenTelemetry export to {endpoint}: {e:#}");
                return std::process::ExitCode::from(2);
            }
        },
        Err(_) => (None, None),
    };
    let registry = tracing_subscriber::registry();
    #[cfg(feature = "otel")]
    let registry = registry.with(otel);
    registry.with(text).with(json).init();
    let code = match cli::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    };
    #[cfg(feature = "otel")]
    if let Some(provider) = provider {
        let _ = provider.shutdown();
    }
    code
}
