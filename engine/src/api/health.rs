//! `GET /healthz`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};

/// Answers once the store can be read.
pub async fn healthz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    app.runtime.store().next_wake().await?;
    Ok(Json(json!({"status": "ok"})))
}
