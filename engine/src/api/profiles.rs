//! `PUT/GET/PATCH /v1/profiles/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::error::{Body, parse_json};
use super::{ApiError, AppState};

pub async fn get_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let profile = app
        .runtime
        .store()
        .get_profile(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("profile {id:?} does not exist")))?;
    Ok(Json(
        serde_json::to_value(profile).map_err(ApiError::internal)?,
    ))
}

/// The parts of a profile body: attributes and, if given, the zone (`Some(None)`: cleared).
struct ProfileBody {
    attributes: Option<Value>,
    timezone: Option<Option<String>>,
}

fn decode(app: &AppState, id: &str, bytes: &[u8]) -> Result<ProfileBody, ApiError> {
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_PROFILE",
            "a profile id has 1 to 256 bytes",
        )
        .at("id"));
    }
    let limit = app.runtime.settings().max_profile_bytes;
    if bytes.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PROFILE_TOO_LARGE",
            format!(
                "the profile is {} bytes; the limit is {limit} (max_profile_bytes)",
                bytes.len()
            ),
        ));
    }
    let body: Map<String, Value> = parse_json(bytes)?;
    let mut out = ProfileBody {
        attributes: None,
        timezone: None,
    };
    for (key, value) in body {
        match key.as_str() {
            "attributes" => match value {
                Value::Object(_) => out.attributes = Some(value),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_PROFILE",
                        "`attributes` must be an object",
                    )
                    .at("attributes"));
                }
            },
            "timezone" => match value {
                Value::Null => out.timezone = Some(None),
                Value::String(name) => {
                    if TimeZone::get(&name).is_err() {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "INVALID_PROFILE",
                            format!("{name:?} is not an IANA time zone (like Europe/Paris)"),
                        )
                        .at("timezone"));
                    }
                    out.timezone = Some(Some(name));
                }
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_PROFILE",
                        "`timezone` must be a string or null",
                    )
                    .at("timezone"));
                }
            },
            "id" if value.as_str() == Some(id) => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_PROFILE",
                    format!("unknown field `{other}`, expected `attributes` or `timezone`"),
                )
                .at(other));
            }
        }
    }
    Ok(out)
}

/// Creates or replaces a profile.
pub async fn put_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let body = decode(&app, &id, &bytes)?;
    let attributes = body.attributes.unwrap_or_else(|| Value::Object(Map::new()));
    let profile = app
        .runtime
        .store()
        .put_profile(&id, attributes, body.timezone.flatten(), app.runtime.now())
        .await?;
    Ok(Json(
        serde_json::to_value(profile).map_err(ApiError::internal)?,
    ))
}

/// Merges `attributes` (JSON merge patch: `null` removes) and sets `timezone` if given.
pub async fn patch_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let body = decode(&app, &id, &bytes)?;
    let patch = body.attributes.unwrap_or_else(|| Value::Object(Map::new()));
    let profile = app
        .runtime
        .store()
        .patch_profile(&id, patch, body.timezone, app.runtime.now())
        .await?;
    Ok(Json(
        serde_json::to_value(profile).map_err(ApiError::internal)?,
    ))
}
