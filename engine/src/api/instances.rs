//! Instances and their step events.

use super::error::Errors;
use super::error::{Path, Query};
use super::page::Page;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/v1/profiles/{id}/instances",
    tag = "instances",
    operation_id = "listProfileInstances",
    params(("id" = String, Path, description = "Profile id"), Page),
    responses((status = 200, description = "Instances in entry order; `next` pages", body = Object), Errors)
)]
pub async fn of_profile(
    State(app): State<AppState>,
    Path(profile_id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let instances = app
        .runtime
        .store()
        .instances_of_profile(&profile_id)
        .await?;
    let (instances, next) = page.slice(instances, |i| i.id.clone())?;
    Ok(Json(json!({"instances": instances, "next": next})))
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
    params(("id" = String, Path, description = "Instance id"), Page),
    responses((status = 200, description = "Steps in order; `next` (a step's `seq`) pages", body = Object), Errors)
)]
pub async fn steps(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    if store.get_instance(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "instance {id:?} does not exist"
        )));
    }
    let steps = store.steps_of_instance(&id).await?;
    let (steps, next) = page.slice(steps, |s| s.seq.to_string())?;
    Ok(Json(json!({"steps": steps, "next": next})))
}
