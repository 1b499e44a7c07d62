//! `/v1/subscription-groups`, `/v1/profiles/{id}/consent` and `/v1/suppressions`:
//! subscription groups, a profile's consent and its history, and the suppression list.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Body, Errors, Path, Query, parse_json};
use super::journeys::format_of;
use super::page::Page;
use super::{ApiError, AppState};
use crate::model::parse_document;
use crate::runtime::ConsentError;

pub(super) fn consent_error(e: ConsentError) -> ApiError {
    match e {
        ConsentError::Invalid(problems) => ApiError::invalid_request("invalid request", problems),
        ConsentError::NotFound(m) => ApiError::not_found(m),
        ConsentError::Link(l) => ApiError::new(
            StatusCode::BAD_REQUEST,
            crate::code::Code::InvalidLink,
            l.to_string(),
        ),
        ConsentError::Store(e) => ApiError::internal(e),
    }
}

#[utoipa::path(
    get,
    path = "/v1/subscription-groups",
    tag = "consent",
    operation_id = "listSubscriptionGroups",
    responses((status = 200, description = "Every subscription group (the channels' built-in `email`, `sms`, `push` included), in id order", body = Object), Errors)
)]
pub async fn list_groups(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let groups: Vec<Value> = app
        .runtime
        .subscription_groups()
        .into_iter()
        .map(|(id, def)| {
            let mut v = serde_json::to_value(def).unwrap_or(Value::Null);
            v["id"] = json!(id);
            v
        })
        .collect();
    Ok(Json(json!({"subscription_groups": groups})))
}

#[utoipa::path(
    get,
    path = "/v1/subscription-groups/{id}",
    tag = "consent",
    operation_id = "getSubscriptionGroup",
    params(("id" = String, Path, description = "Group id", example = "newsletter")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_group(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let def = app
        .runtime
        .subscription_groups()
        .remove(&id)
        .ok_or_else(|| ApiError::not_found(format!("subscription group {id:?} does not exist")))?;
    let mut v = serde_json::to_value(def).map_err(ApiError::internal)?;
    v["id"] = json!(id);
    Ok(Json(v))
}

/// `PUT /v1/subscription-groups/{id}`: creates or redefines a group (its channel cannot
/// change).
#[utoipa::path(
    put,
    path = "/v1/subscription-groups/{id}",
    tag = "consent",
    operation_id = "putSubscriptionGroup",
    params(("id" = String, Path, description = "Group id", example = "newsletter")),
    request_body(content = Object, content_type = "application/json", description = "{channel: email|sms|push, default: opt_in|opt_out, name, description}"),
    responses((status = 200, description = "The group", body = Object), Errors)
)]
pub async fn put_group(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let def: Value =
        parse_document(&body, format_of(&headers, &body)).map_err(ApiError::bad_request)?;
    app.runtime
        .put_subscription_group(&id, def)
        .await
        .map_err(consent_error)?;
    get_group(State(app), Path(id)).await
}

/// `GET /v1/profiles/{id}/consent`: the profile's consent to every group (stated, or the
/// group's default) and a page of its changes, oldest first, with their sources.
#[utoipa::path(
    get,
    path = "/v1/profiles/{id}/consent",
    tag = "consent",
    operation_id = "getConsent",
    params(("id" = String, Path, description = "Profile id"), Page),
    responses((status = 200, description = "{profile_id, groups: [{group, channel, subscribed, from}], changes: [{seq, group, subscribed, source, message_id, at}], next}", body = Object), Errors)
)]
pub async fn get_consent(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let profile = app
        .runtime
        .store()
        .get_profile(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("profile {id:?} does not exist")))?;
    let after = match &page.after {
        None => None,
        Some(a) => Some(a.parse::<i64>().map_err(|_| Page::not_a_key(a))?),
    };
    let rows = app
        .runtime
        .consent_changes(&id, after, page.limit() + 1)
        .await?;
    let (rows, next) = page.read_ahead(rows, |(seq, _)| seq.to_string());
    let changes: Vec<Value> = rows
        .into_iter()
        .map(|(seq, c)| {
            let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
            v["seq"] = json!(seq);
            v
        })
        .collect();
    Ok(Json(json!({
        "profile_id": id,
        "groups": app.runtime.consent_of(&profile.attributes),
        "changes": changes,
        "next": next,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    /// `true`, `false`, or `null` (back to the group's default).
    subscribed: Option<bool>,
    /// Where the consent was given (`preference_center`, `signup_form`); `api` by default.
    #[serde(default)]
    source: Option<String>,
}

/// `PUT /v1/profiles/{id}/consent/{group}`: states the profile's consent to a group
/// (through its partition, recorded with its source); creates the profile if needed.
#[utoipa::path(
    put,
    path = "/v1/profiles/{id}/consent/{group}",
    tag = "consent",
    operation_id = "putConsent",
    params(("id" = String, Path, description = "Profile id"), ("group" = String, Path, description = "Subscription group", example = "newsletter")),
    request_body(content = Object, content_type = "application/json", description = "{subscribed: true|false|null, source}"),
    responses((status = 200, description = "The profile's consent", body = Object), Errors)
)]
pub async fn put_consent(
    State(app): State<AppState>,
    Path((id, group)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    super::profiles::check_id(&id, "id")?;
    let body: ConsentBody = parse_json(&body)?;
    let source = match body.source.as_deref().map(str::trim) {
        None => "api".to_string(),
        Some(s) if !s.is_empty() && s.len() <= 64 => s.to_string(),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                crate::code::Code::InvalidRequest,
                "a source is 1 to 64 characters",
            )
            .at("source"));
        }
    };
    app.runtime
        .set_consent(&id, &group, body.subscribed, &source)
        .await
        .map_err(consent_error)?;
    get_consent(State(app), Path(id), Query(Page::default())).await
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "consent",
    operation_id = "listSuppressions",
    params(Page),
    responses((status = 200, description = "Suppressed addresses in address order; `next` pages", body = Object), Errors)
)]
pub async fn list_suppressions(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let rows = app
        .runtime
        .suppressions(page.after.clone(), page.limit() + 1)
        .await?;
    let (rows, next) = page.read_ahead(rows, |s| s.address.clone());
    Ok(Json(json!({"suppressions": rows, "next": next})))
}

#[utoipa::path(
    get,
    path = "/v1/suppressions/{address}",
    tag = "consent",
    operation_id = "getSuppression",
    params(("address" = String, Path, description = "An email address, a phone number or a device token")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_suppression(
    State(app): State<AppState>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = app
        .runtime
        .suppression(&address)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{address:?} is not suppressed")))?;
    Ok(Json(serde_json::to_value(s).map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionBody {
    /// `hard_bounce`, `complaint`, `manual`, ...
    reason: String,
}

/// `PUT /v1/suppressions/{address}`: no message goes to the address any more, whatever
/// its category.
#[utoipa::path(
    put,
    path = "/v1/suppressions/{address}",
    tag = "consent",
    operation_id = "putSuppression",
    params(("address" = String, Path, description = "An email address, a phone number or a device token")),
    request_body(content = Object, content_type = "application/json", description = "{reason}"),
    responses((status = 200, description = "The suppression", body = Object), Errors)
)]
pub async fn put_suppression(
    State(app): State<AppState>,
    Path(address): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let body: SuppressionBody = parse_json(&body)?;
    app.runtime
        .suppress(&address, &body.reason, "api")
        .await
        .map_err(consent_error)?;
    get_suppression(State(app), Path(address)).await
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{address}",
    tag = "consent",
    operation_id = "deleteSuppression",
    params(("address" = String, Path, description = "An email address, a phone number or a device token")),
    responses((status = 204, description = "Messages may go to the address again"), Errors)
)]
pub async fn delete_suppression(
    State(app): State<AppState>,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.runtime.unsuppress(&address).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{address:?} is not suppressed"
        )))
    }
}
