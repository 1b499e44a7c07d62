//! `/v1/templates`: message templates (create a version, list, get, versions) and their
//! preview for a profile and an event.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Body, Errors, Path, Query, parse_json};
use super::journeys::format_of;
use super::page::{Page, field_key};
use super::{ApiError, AppState};
use crate::channels::RenderInput;
use crate::code::Code;
use crate::model::parse_document;
use crate::runtime::{Preview, TemplateError};
use crate::store::TemplateRecord;

fn template_error(e: TemplateError) -> ApiError {
    match e {
        TemplateError::Invalid(problems) => ApiError::invalid_template(problems),
        TemplateError::NotFound(_) => ApiError::not_found(e.to_string()),
        TemplateError::Render(r) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::TemplateError,
            r.to_string(),
        )
        .at(r.part),
        TemplateError::Store(e) => ApiError::internal(e),
    }
}

fn answer(record: &TemplateRecord) -> Value {
    json!({
        "id": record.id,
        "version": record.version,
        "definition": record.definition,
        "created_at": record.created_at,
    })
}

/// `PUT /v1/templates/{id}`: stores the definition as the template's next version (the
/// same definition again keeps its version).
#[utoipa::path(
    put,
    path = "/v1/templates/{id}",
    tag = "templates",
    operation_id = "putTemplate",
    params(("id" = String, Path, description = "Template id", example = "welcome")),
    request_body(content = Object, content_type = "application/json", description = "{channel, default_locale, locales: {en: {subject, html, text}}} (JSON, or YAML with a YAML content type)"),
    responses((status = 200, description = "The stored version", body = Object), Errors)
)]
pub async fn put(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let def: Value = parse_document(&body, format_of(&headers, &body)).map_err(|p| {
        let mut e = ApiError::bad_request(p);
        e.code = Code::InvalidTemplate;
        e
    })?;
    let version = app
        .runtime
        .put_template(&id, def)
        .await
        .map_err(template_error)?;
    get(
        State(app),
        Path(id),
        Query(VersionQuery {
            version: Some(version),
        }),
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    operation_id = "listTemplates",
    params(Page),
    responses((status = 200, description = "The latest version of each template, in id order; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let all: Vec<Value> = app
        .runtime
        .store()
        .list_templates()
        .await?
        .iter()
        .map(answer)
        .collect();
    let (templates, next) = page.sorted(all, field_key("id"))?;
    Ok(Json(json!({"templates": templates, "next": next})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version; the latest without one.
    version: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/templates/{id}",
    tag = "templates",
    operation_id = "getTemplate",
    params(("id" = String, Path, description = "Template id", example = "welcome"), VersionQuery),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<Value>, ApiError> {
    let record = app
        .runtime
        .store()
        .get_template(&id, q.version)
        .await?
        .ok_or_else(|| match q.version {
            Some(v) => ApiError::not_found(format!("template {id:?} has no version {v}")),
            None => ApiError::not_found(format!("template {id:?} does not exist")),
        })?;
    Ok(Json(answer(&record)))
}

#[utoipa::path(
    get,
    path = "/v1/templates/{id}/versions",
    tag = "templates",
    operation_id = "listTemplateVersions",
    params(("id" = String, Path, description = "Template id", example = "welcome")),
    responses((status = 200, description = "Every version, oldest first", body = Object), Errors)
)]
pub async fn versions(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions = app.runtime.store().template_versions(&id).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "template {id:?} does not exist"
        )));
    }
    let versions: Vec<Value> = versions.iter().map(answer).collect();
    Ok(Json(json!({"id": id, "versions": versions})))
}

/// What a preview renders for.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    /// A stored profile.
    profile_id: Option<String>,
    /// Or a profile as templates see it (`{"first_name": "Ann", "locale": "fr",
    /// "timezone": "Europe/Paris"}`).
    profile: Option<Value>,
    /// The event as templates see it (`{"type": "signup", "data": {…}}`).
    event: Option<Value>,
    events: Option<Value>,
    journey: Option<Value>,
    actions: Option<Value>,
    /// A locale instead of the profile's.
    locale: Option<String>,
    /// A version; the latest without one.
    version: Option<u32>,
}

/// `POST /v1/templates/{id}/preview`: the message as a profile would receive it.
#[utoipa::path(
    post,
    path = "/v1/templates/{id}/preview",
    tag = "templates",
    operation_id = "previewTemplate",
    params(("id" = String, Path, description = "Template id", example = "welcome")),
    request_body(content = Object, content_type = "application/json", description = "{profile_id} or {profile}, and optionally event, events, journey, actions, locale, version"),
    responses((status = 200, description = "{id, version, locale, message}", body = Object), Errors)
)]
pub async fn preview(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body: PreviewBody = if body.is_empty() {
        PreviewBody::default()
    } else {
        parse_json(&body)?
    };
    let profile = match (body.profile_id, body.profile) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                "give profile_id or profile, not both",
            )
            .at("profile"));
        }
        (Some(pid), None) => app
            .runtime
            .store()
            .get_profile(&pid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("profile {pid:?} does not exist")))?
            .to_json(),
        (None, Some(p @ Value::Object(_))) => p,
        (None, Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                "profile must be an object",
            )
            .at("profile"));
        }
        (None, None) => json!({}),
    };
    let preview = Preview {
        version: body.version,
        locale: body.locale,
        input: RenderInput {
            profile,
            event: body.event,
            events: body.events,
            journey: body.journey,
            actions: body.actions,
            now: app.runtime.now(),
            unsubscribe_url: None,
        },
    };
    let (record, rendered) = app
        .runtime
        .preview_template(&id, preview)
        .await
        .map_err(template_error)?;
    Ok(Json(json!({
        "id": record.id,
        "version": record.version,
        "channel": record.definition.get("channel"),
        "locale": rendered.locale,
        "message": rendered.to_json(),
    })))
}
