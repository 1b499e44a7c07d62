//! `GET /healthz`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::Errors;
use super::{ApiError, AppState};

/// Answers 200 once the store can be read and every partition commits; 503 naming each
/// partition whose store commits or reads fail lastingly, with what failed.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "health",
    responses(
        (status = 200, description = "OK", body = Object),
        (status = 503, description = "Unhealthy: `partitions` names each failing partition", body = Object),
        Errors
    )
)]
pub async fn healthz(State(app): State<AppState>) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.runtime.store().next_wake().await?;
    let unhealthy = app.runtime.unhealthy_partitions();
    if unhealthy.is_empty() {
        return Ok((StatusCode::OK, Json(json!({"status": "ok"}))));
    }
    let partitions: Vec<Value> = unhealthy
        .into_iter()
        .map(|(partition, error)| json!({"partition": partition, "error": error}))
        .collect();
    Ok((
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unhealthy", "partitions": partitions})),
    ))
}
