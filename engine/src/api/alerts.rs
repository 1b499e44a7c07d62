//! Alert rules and their state: `PUT|GET|DELETE /v1/alerts/{id}`, `GET /v1/alerts`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::audiences::definition_error;
use super::error::Errors;
use super::error::{Body, Path, Query, parse_json};
use super::page::{Page, field_key};
use super::{ApiError, AppState};

use crate::code::Code;

/// Creates or replaces a rule: `{"journey", "condition": {"type": "error_rate",
/// "above": 0.1, "min_steps": 10}, "window": "PT15M", "notify": {"action": "webhook",
/// "params": {"url": "..."}}}`. Its state is kept when it is replaced.
#[utoipa::path(
    put,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    operation_id = "putAlert",
    params(("id" = String, Path, description = "Alert rule id")),
    request_body(content = Object, content_type = "application/json", description = "{journey, condition, window, notify}"),
    responses((status = 200, description = "The rule with its state", body = Object), Errors)
)]
pub async fn put(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let def: Value = parse_json(&body)?;
    let view = app
        .runtime
        .put_alert(&id, def)
        .await
        .map_err(|e| definition_error(e, Code::InvalidAlert))?;
    Ok(Json(
        serde_json::to_value(view).map_err(ApiError::internal)?,
    ))
}

/// Every rule with its state (`ok` or `firing`, since when, the measured value, whether
/// the latest change was delivered).
#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    operation_id = "listAlerts",
    params(Page),
    responses((status = 200, description = "Rules and states, in id order; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let (alerts, next) = page.sorted(app.runtime.alerts(), field_key("id"))?;
    Ok(Json(json!({"alerts": alerts, "next": next})))
}

#[utoipa::path(
    get,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    operation_id = "getAlert",
    params(("id" = String, Path, description = "Alert rule id")),
    responses((status = 200, description = "The rule with its state", body = Object), Errors)
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = app
        .runtime
        .alerts()
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found(format!("alert {id:?} does not exist")))?;
    Ok(Json(
        serde_json::to_value(view).map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    operation_id = "deleteAlert",
    params(("id" = String, Path, description = "Alert rule id")),
    responses((status = 204, description = "Deleted"), Errors)
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.runtime.delete_alert(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("alert {id:?} does not exist")))
    }
}
