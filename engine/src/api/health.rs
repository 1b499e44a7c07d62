//! `GET /healthz`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::Errors;
use super::{ApiError, AppState};

/// Answers once the store can be read.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn healthz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    app.runtime.store().next_wake().await?;
    Ok(Json(json!({"status": "ok"})))
}
