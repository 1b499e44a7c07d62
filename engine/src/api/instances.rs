//! Instances and their step events.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::{ApiError, AppState};

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
