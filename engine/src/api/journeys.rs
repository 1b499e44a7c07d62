//! Journeys: drafts (JSON or YAML), validation, publication, versions, stop.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::error::Body;
use super::{ApiError, AppState};
use crate::compile::check_id;
use crate::model::{Format, JourneyDef, parse_journey};
use crate::runtime::JourneyError;

fn format_of(headers: &HeaderMap, body: &[u8]) -> Format {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.contains("yaml") {
        Format::Yaml
    } else if ct.contains("json") {
        Format::Json
    } else {
        Format::sniff(body)
    }
}

fn decode(app: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<JourneyDef, ApiError> {
    let limit = app.runtime.settings().max_journey_bytes;
    if body.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "JOURNEY_TOO_LARGE",
            format!(
                "the definition is {} bytes; the limit is {limit} (max_journey_bytes)",
                body.len()
            ),
        ));
    }
    parse_journey(body, format_of(headers, body)).map_err(|p| {
        let mut e = ApiError::bad_request(p);
        e.code = "INVALID_JOURNEY";
        e
    })
}

fn check_path_id(id: &str) -> Result<(), ApiError> {
    check_id(id).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JOURNEY", m).at("id"))
}

fn journey_error(e: JourneyError) -> ApiError {
    match e {
        JourneyError::NotFound(id) => {
            ApiError::not_found(format!("journey {id:?} does not exist or has no draft"))
        }
        JourneyError::Invalid(problems) => ApiError::invalid_definition(problems),
        JourneyError::Store(e) => ApiError::internal(e),
    }
}

pub async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let journeys = app.runtime.store().list_journeys().await?;
    let items: Vec<Value> = journeys
        .into_iter()
        .map(|j| {
            json!({
                "id": j.id,
                "name": j.draft.as_ref().and_then(|d| d.get("name")).cloned(),
                "status": j.status,
                "versions": j.versions,
                "updated_at": j.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({"journeys": items})))
}

async fn journey_record(app: &AppState, id: &str) -> Result<crate::store::JourneyRecord, ApiError> {
    app.runtime
        .store()
        .get_journey(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("journey {id:?} does not exist")))
}

pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = journey_record(&app, &id).await?;
    Ok(Json(
        serde_json::to_value(record).map_err(ApiError::internal)?,
    ))
}

/// Creates or replaces the draft. A draft may be invalid: the answer lists its problems.
pub async fn put_draft(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    check_path_id(&id)?;
    let def = decode(&app, &headers, &body)?;
    let problems = app
        .runtime
        .put_draft(&id, &def)
        .await
        .map_err(journey_error)?;
    Ok(Json(json!({
        "id": id,
        "valid": problems.is_empty(),
        "problems": problems,
    })))
}

/// Validates a definition sent in the body, storing nothing. The id comes from the body
/// (`id`) or defaults to `journey`.
pub async fn validate_body(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let def = decode(&app, &headers, &body)?;
    let id = def.id.clone().unwrap_or_else(|| "journey".into());
    app.runtime
        .validate(&id, &def)
        .map_err(ApiError::invalid_definition)?;
    Ok(Json(json!({"valid": true})))
}

pub async fn validate_draft(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = journey_record(&app, &id).await?;
    let draft = record
        .draft
        .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no draft")))?;
    let def: JourneyDef = super::error::from_value(draft, "")?;
    app.runtime
        .validate(&id, &def)
        .map_err(ApiError::invalid_definition)?;
    Ok(Json(json!({"valid": true})))
}

pub async fn publish(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let version = app.runtime.publish(&id).await.map_err(journey_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "version": version, "status": "live"})),
    ))
}

pub async fn stop(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ended = app.runtime.stop(&id).await.map_err(journey_error)?;
    Ok(Json(
        json!({"id": id, "status": "stopped", "ended_instances": ended}),
    ))
}

pub async fn version(
    State(app): State<AppState>,
    Path((id, version)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let def = app
        .runtime
        .definition(&id, version)
        .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no version {version}")))?;
    Ok(Json(
        json!({"id": id, "version": version, "definition": def}),
    ))
}
