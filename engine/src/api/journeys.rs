//! Journeys: drafts (JSON or YAML), validation, publication, versions and their
//! differences, lifecycle (pause, resume, close, stop).

use super::error::Errors;
use super::error::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::error::Body;
use super::page::Page;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::code::Code;
use crate::ids::check_id;
use crate::model::{Format, JourneyDef, parse_journey};
use crate::runtime::{JourneyError, PauseRequest};
use crate::store::{JourneyStatus, Publication};

pub(super) fn format_of(headers: &HeaderMap, body: &[u8]) -> Format {
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

/// Parses a definition on the blocking pool (`Runtime::offload`), after its size check.
async fn decode(
    app: &AppState,
    headers: &HeaderMap,
    body: &axum::body::Bytes,
) -> Result<JourneyDef, ApiError> {
    let limit = app.runtime.settings().max_journey_bytes;
    if body.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::JourneyTooLarge,
            format!(
                "the definition is {} bytes; the limit is {limit} (max_journey_bytes)",
                body.len()
            ),
        ));
    }
    let format = format_of(headers, body);
    let body = body.clone();
    app.runtime
        .offload(move || parse_journey(&body, format))
        .await?
        .map_err(|p| {
            let mut e = ApiError::bad_request(p);
            e.code = Code::InvalidJourney;
            e
        })
}

fn check_path_id(id: &str) -> Result<(), ApiError> {
    check_id(id)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidJourney, m).at("id"))
}

fn journey_error(e: JourneyError) -> ApiError {
    match e {
        JourneyError::NotFound(id) => {
            ApiError::not_found(format!("journey {id:?} does not exist or has no draft"))
        }
        JourneyError::Invalid(problems) => ApiError::invalid_definition(problems),
        JourneyError::Conflict(message) => {
            ApiError::new(StatusCode::CONFLICT, Code::InvalidTransition, message)
        }
        JourneyError::Store(e) => ApiError::internal(e),
    }
}

#[utoipa::path(
    get,
    path = "/v1/journeys",
    tag = "journeys",
    operation_id = "listJourneys",
    params(Page),
    responses((status = 200, description = "Journeys in id order; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let mut journeys = app.runtime.store().list_journeys().await?;
    journeys.sort_by(|a, b| a.id.cmp(&b.id));
    let (journeys, next) = page.slice(journeys, |j| j.id.clone())?;
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
    Ok(Json(json!({"journeys": items, "next": next})))
}

async fn journey_record(app: &AppState, id: &str) -> Result<crate::store::JourneyRecord, ApiError> {
    app.runtime
        .store()
        .get_journey(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("journey {id:?} does not exist")))
}

/// The journey with its versions; each version says whether it takes entries (`live`,
/// `paused`), has running instances left (`closed`) or none (`finished`).
#[utoipa::path(
    get,
    path = "/v1/journeys/{id}",
    tag = "journeys",
    operation_id = "getJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut record = journey_record(&app, &id).await?;
    let live = app.runtime.store().live_by_node(&id).await?;
    if record.status == JourneyStatus::Closed && live.is_empty() {
        // The last instance ended: the journey is finished (stored as such).
        record.status = app
            .runtime
            .refresh_status(&id)
            .await
            .map_err(journey_error)?;
    }
    let latest = record.versions.last().map(|v| v.version);
    let versions: Vec<Value> = record
        .versions
        .iter()
        .map(|v| {
            let running: u64 = live
                .iter()
                .filter(|(version, _, _)| *version == v.version)
                .map(|(_, _, n)| n)
                .sum();
            let status = match record.status {
                JourneyStatus::Live | JourneyStatus::Paused if Some(v.version) == latest => {
                    record.status
                }
                JourneyStatus::Stopped => JourneyStatus::Stopped,
                _ if running > 0 => JourneyStatus::Closed,
                _ => JourneyStatus::Finished,
            };
            let mut out = serde_json::to_value(v).unwrap_or_default();
            out["status"] = json!(status);
            out["running_instances"] = json!(running);
            out
        })
        .collect();
    let mut out = serde_json::to_value(&record).map_err(ApiError::internal)?;
    out["versions"] = Value::Array(versions);
    Ok(Json(out))
}

/// Creates or replaces the draft. A draft may be invalid: the answer lists its problems.
#[utoipa::path(
    put,
    path = "/v1/journeys/{id}",
    tag = "journeys",
    operation_id = "putJourneyDraft",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "The definition (JSON, or YAML with a YAML content type)"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn put_draft(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    check_path_id(&id)?;
    let def = decode(&app, &headers, &body).await?;
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
#[utoipa::path(
    post,
    path = "/v1/journeys/validate",
    tag = "journeys",
    operation_id = "validateJourney",
    request_body(content = Object, content_type = "application/json", description = "A definition to validate"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn validate_body(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let def = decode(&app, &headers, &body).await?;
    let id = def.id.clone().unwrap_or_else(|| "journey".into());
    app.runtime
        .validate(&id, &def)
        .await
        .map_err(ApiError::invalid_definition)?;
    Ok(Json(json!({"valid": true})))
}

#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/validate",
    tag = "journeys",
    operation_id = "validateJourneyDraft",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
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
        .await
        .map_err(ApiError::invalid_definition)?;
    Ok(Json(json!({"valid": true})))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// What changed, for the version history.
    #[serde(default)]
    note: Option<String>,
}

fn principal(who: Option<Extension<Principal>>) -> String {
    who.map_or_else(|| "local".to_string(), |Extension(p)| p.0)
}

/// Publishes the draft; an optional body `{"note": "..."}` says what changed. The
/// version records who published it (the API token's name, or `local`).
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/publish",
    tag = "journeys",
    operation_id = "publishJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "Optional {note}"),
    responses((status = 201, description = "Published", body = Object), Errors)
)]
pub async fn publish(
    State(app): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: PublishBody = optional_json(&body)?;
    let publication = Publication {
        by: Some(principal(who)),
        note: body.note,
    };
    let version = app
        .runtime
        .publish(&id, publication)
        .await
        .map_err(journey_error)?;
    // A version pinned below a newer installed plugin version says so.
    let notices: Vec<String> = app
        .runtime
        .older_pins(&id, version)
        .iter()
        .map(|p| format!("{p} (`parcours journey upgrade-plugins {id}` publishes against it)"))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "version": version, "status": "live", "notices": notices})),
    ))
}

/// Publishes the latest version again with every action node on the newest installed
/// version of its plugin (a published version keeps the plugin versions it was published
/// with). 201 with the new version and the pins it moved (`upgraded`, and the version's
/// note); 200 with the latest version and `upgraded: []` when every pin is the newest.
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/upgrade-plugins",
    tag = "journeys",
    operation_id = "upgradeJourneyPlugins",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses(
        (status = 201, description = "Published with the newest plugin versions", body = Object),
        (status = 200, description = "Every pin is the newest already", body = Object),
        Errors
    )
)]
pub async fn upgrade_plugins(
    State(app): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (version, moved) = app
        .runtime
        .upgrade_plugins(&id, Some(principal(who)))
        .await
        .map_err(journey_error)?;
    let status = if moved.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let upgraded: Vec<Value> = moved
        .iter()
        .map(|p| json!({"at": p.at, "from": p.pinned, "to": p.newest}))
        .collect();
    Ok((
        status,
        Json(json!({"id": id, "version": version, "upgraded": upgraded})),
    ))
}

/// Stops the journey: no new entries, and its live instances end (`JOURNEY_STOPPED`).
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/stop",
    tag = "lifecycle",
    operation_id = "stopJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn stop(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let done = app.runtime.stop(&id).await.map_err(journey_error)?;
    transitioned(&id, done)
}

/// Closes the journey: no new entries; its running instances finish.
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/close",
    tag = "lifecycle",
    operation_id = "closeJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn close(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let done = app.runtime.close(&id).await.map_err(journey_error)?;
    transitioned(&id, done)
}

fn transitioned(id: &str, done: crate::runtime::Transitioned) -> Result<Json<Value>, ApiError> {
    let mut out = serde_json::to_value(done).map_err(ApiError::internal)?;
    out["id"] = json!(id);
    Ok(Json(out))
}

/// A body that may be left empty: its default then.
fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        super::error::parse_json(body)
    }
}

/// An ISO-8601 duration parameter at `location`.
fn duration(text: &str, location: &str) -> Result<jiff::SignedDuration, ApiError> {
    crate::expr::time::parse_exact_duration(text)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, m).at(location))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    /// What waits: `entries`, `actions` (both by default).
    #[serde(default = "both")]
    hold: Vec<Hold>,
    /// ISO-8601 duration after which the journey resumes by itself (at most, and by
    /// default, `max_pause_seconds`).
    #[serde(default)]
    max_duration: Option<String>,
}

impl Default for PauseBody {
    fn default() -> Self {
        PauseBody {
            hold: both(),
            max_duration: None,
        }
    }
}

#[derive(serde::Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Hold {
    Entries,
    Actions,
}

fn both() -> Vec<Hold> {
    vec![Hold::Entries, Hold::Actions]
}

/// Pauses a live journey: `{"hold": ["entries", "actions"], "max_duration": "P3D"}`.
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/pause",
    tag = "lifecycle",
    operation_id = "pauseJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "Optional {hold: [entries, actions], max_duration}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body: PauseBody = optional_json(&body)?;
    let max_duration = body
        .max_duration
        .as_deref()
        .map(|text| duration(text, "max_duration"))
        .transpose()?;
    let request = PauseRequest {
        entries: body.hold.contains(&Hold::Entries),
        actions: body.hold.contains(&Hold::Actions),
        max_duration,
        by: Some(principal(who)),
    };
    let pause = app
        .runtime
        .pause(&id, request)
        .await
        .map_err(journey_error)?;
    Ok(Json(json!({"id": id, "status": "paused", "pause": pause})))
}

/// Resumes a paused journey; what it held is released in order, in the background.
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/resume",
    tag = "lifecycle",
    operation_id = "resumeJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.runtime.resume(&id).await.map_err(journey_error)?;
    Ok(Json(json!({"id": id, "status": "live"})))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// ISO-8601 duration: the longest wait or reaction timeout (default
    /// `test_wait_seconds`).
    #[serde(default)]
    wait: Option<String>,
    /// Record actions in their steps instead of calling plugins (default true).
    #[serde(default)]
    dry_run: Option<bool>,
}

/// Runs the draft in test mode: `{"wait": "PT5S", "dry_run": true}`.
#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/test",
    tag = "lifecycle",
    operation_id = "startJourneyTest",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "Optional {wait, dry_run}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn start_test(
    State(app): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body: TestBody = optional_json(&body)?;
    let wait = body
        .wait
        .as_deref()
        .map(|text| match duration(text, "wait")? {
            d if d.is_negative() => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                format!("{text:?} is negative"),
            )
            .at("wait")),
            d => Ok(d.as_secs().unsigned_abs()),
        })
        .transpose()?;
    let test = app
        .runtime
        .start_test(
            &id,
            wait,
            body.dry_run.unwrap_or(true),
            Some(principal(who)),
        )
        .await
        .map_err(journey_error)?;
    Ok(Json(json!({"id": id, "test": test})))
}

/// Ends test mode; the draft's test instances end.
#[utoipa::path(
    delete,
    path = "/v1/journeys/{id}/test",
    tag = "lifecycle",
    operation_id = "stopJourneyTest",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn stop_test(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ended = app.runtime.stop_test(&id).await.map_err(journey_error)?;
    Ok(Json(json!({"id": id, "ended_instances": ended})))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// A version number.
    from: u32,
    /// A version number or `draft` (default: the draft).
    #[serde(default)]
    to: Option<String>,
}

/// What changed from one version to another (or to the draft).
#[utoipa::path(
    get,
    path = "/v1/journeys/{id}/diff",
    tag = "journeys",
    operation_id = "diffJourneyVersions",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart"), ("from" = u32, Query, description = "A version"), ("to" = Option<String>, Query, description = "A version or draft (default)")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn diff(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    let from = store
        .version(&id, q.from)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no version {}", q.from)))?
        .definition;
    // `to` in the answer is what was compared: a version number, like `from`, or "draft".
    let to_label = q.to.clone().unwrap_or_else(|| "draft".into());
    let (to, to_answer) = match to_label.as_str() {
        "draft" => (
            journey_record(&app, &id)
                .await?
                .draft
                .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no draft")))?,
            json!("draft"),
        ),
        n => {
            let v: u32 = n.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidRequest,
                    format!("{n:?} is neither a version number nor `draft`"),
                )
                .at("to")
            })?;
            let definition = store
                .version(&id, v)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no version {v}")))?
                .definition;
            (definition, json!(v))
        }
    };
    let changes = crate::model::diff::diff(&from, &to);
    Ok(Json(
        json!({"id": id, "from": q.from, "to": to_answer, "changes": changes}),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/journeys/{id}/versions/{version}",
    tag = "journeys",
    operation_id = "getJourneyVersion",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart"), ("version" = u32, Path, description = "Version number")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
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
