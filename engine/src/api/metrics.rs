//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::error::Errors;
use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String,
         content_type = "application/openmetrics-text"),
        Errors
    )
)]
pub async fn metrics(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let store = app.runtime.store();
    let (timers_pending, instances_live) = store.instance_gauges().await?;
    let text = app.runtime.metrics().render(&crate::metrics::Scraped {
        timers_pending,
        instances_live,
        rows_written: store.rows_written(),
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}
