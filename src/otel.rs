//! OpenTelemetry export of the engine's tracing spans over OTLP/HTTP (feature `otel`).
//!
//! Owns building the exporter and the tracing layer; the engine's spans (`message`,
//! `activation` with journey, version, instance and profile) and step events go to the
//! collector at the given endpoint, batched off the request path.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use tracing_subscriber::Registry;

/// A layer exporting spans to `endpoint` (`http://collector:4318/v1/traces`), with the
/// provider to shut down (flush) at exit.
pub fn layer(
    endpoint: &str,
) -> anyhow::Result<(
    tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::Tracer>,
    opentelemetry_sdk::trace::SdkTracerProvider,
)> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("parcours")
                .build(),
        )
        .build();
    let tracer = provider.tracer("parcours");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}
