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

/// `?node=<node id>` with the page's `after` and `limit`.
#[derive(Debug, serde::Deserialize)]
pub struct AtNode {
    node: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The live instances of a journey (every version) at one node, oldest first: what the
/// designer lists when a node is clicked. Reads the journey's live instances, so a page
/// at a node few instances are at costs a pass over the journey's live ones.
#[utoipa::path(
    get,
    path = "/v1/journeys/{id}/instances",
    tag = "instances",
    operation_id = "listJourneyInstancesAtNode",
    params(
        ("id" = String, Path, description = "Journey id", example = "welcome"),
        ("node" = String, Query, description = "Node id", example = "wait_2d"),
        Page
    ),
    responses((status = 200, description = "Live instances at the node, oldest first; `next` pages", body = Object), Errors)
)]
pub async fn at_node(
    State(app): State<AppState>,
    Path(journey_id): Path<String>,
    Query(q): Query<AtNode>,
) -> Result<Json<Value>, ApiError> {
    let page = Page {
        after: q.after,
        limit: q.limit,
    };
    let read = app
        .runtime
        .store()
        .live_at_node(
            &journey_id,
            &q.node,
            page.after.as_deref(),
            page.limit() + 1,
        )
        .await?;
    let Some(instances) = read else {
        return Err(Page::not_a_key(page.after.as_deref().unwrap_or_default()));
    };
    let (instances, next) = page.read_ahead(instances, |i| i.id.clone());
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
