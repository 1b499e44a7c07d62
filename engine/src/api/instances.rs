//! Instances and their step events.

use super::error::Errors;
use super::error::Path;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/v1/profiles/{id}/instances",
    tag = "instances",
    operation_id = "listProfileInstances",
    params(("id" = String, Path, description = "Profile id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn of_profile(
    State(app): State<AppState>,
    Path(profile_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let instances = app
        .runtime
        .store()
        .instances_of_profile(&profile_id)
        .await?;
    Ok(Json(json!({"instances": instances})))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}",
    tag = "instances",
    operation_id = "getInstance",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_instance(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let instance = app
        .runtime
        .store()
        .get_instance(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("instance {id:?} does not exist")))?;
    Ok(Json(
        serde_json::to_value(instance).map_err(ApiError::internal)?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/instances/{id}/steps",
    tag = "instances",
    operation_id = "listInstanceSteps",
    params(("id" = String, Path, description = "Instance id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn steps(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    if store.get_instance(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "instance {id:?} does not exist"
        )));
    }
    let steps = store.steps_of_instance(&id).await?;
    Ok(Json(json!({"steps": steps})))
}
