//! `/v1/audiences` (create, list, get, members, list membership changes) and
//! `/v1/capping-rules`.

use super::error::Errors;
use super::error::{Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Body, parse_json};
use super::page::{Page, field_key};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::runtime::{DefinitionError, ProfileOp};

pub(super) fn definition_error(e: DefinitionError, code: Code) -> ApiError {
    match e {
        DefinitionError::Invalid { path, message } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).at(path)
        }
        DefinitionError::Store(e) => ApiError::internal(e),
    }
}

/// `PUT /v1/audiences/{name}`: `{"predicate": "profile.tier == \"gold\""}` or `{}` for
/// an explicit list.
#[utoipa::path(
    put,
    path = "/v1/audiences/{name}",
    tag = "audiences",
    operation_id = "putAudience",
    params(("name" = String, Path, description = "Audience name", example = "gold")),
    request_body(content = Object, content_type = "application/json", description = "{predicate} for a computed audience, {} for an explicit list"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn put(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let def: Value = parse_json(&bytes)?;
    app.runtime
        .put_audience(&name, def)
        .await
        .map_err(|e| definition_error(e, Code::InvalidAudience))?;
    get(State(app), Path(name)).await
}

#[utoipa::path(
    get,
    path = "/v1/audiences",
    tag = "audiences",
    operation_id = "listAudiences",
    params(Page),
    responses((status = 200, description = "Audiences in name order; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let audiences = app.runtime.store().list_audiences().await?;
    let (audiences, next) = page.sorted(audiences, field_key("name"))?;
    Ok(Json(json!({"audiences": audiences, "next": next})))
}

#[utoipa::path(
    get,
    path = "/v1/audiences/{name}",
    tag = "audiences",
    operation_id = "getAudience",
    params(("name" = String, Path, description = "Audience name", example = "gold")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = app
        .runtime
        .store()
        .get_audience(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("audience {name:?} does not exist")))?;
    let mut out = serde_json::to_value(&record).map_err(ApiError::internal)?;
    out["kind"] = json!(if record.definition.get("predicate").is_some() {
        "predicate"
    } else {
        "list"
    });
    Ok(Json(out))
}

/// `GET /v1/audiences/{name}/members?after=ID&limit=N`: members in profile id order;
/// `next` is the `after` of the following page.
#[utoipa::path(
    get,
    path = "/v1/audiences/{name}/members",
    tag = "audiences",
    operation_id = "listAudienceMembers",
    params(("name" = String, Path, description = "Audience name", example = "gold"), Page),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn members(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    if app.runtime.audience_is_list(&name).is_none() {
        return Err(ApiError::not_found(format!(
            "audience {name:?} does not exist"
        )));
    }
    let limit = page.limit();
    let members = app
        .runtime
        .store()
        .audience_members(&name, page.after, None, limit)
        .await?;
    let next = (members.len() == limit)
        .then(|| members.last().map(|(id, _)| id.clone()))
        .flatten();
    let members: Vec<Value> = members
        .into_iter()
        .map(|(id, since)| json!({"profile_id": id, "since": since.to_string()}))
        .collect();
    Ok(Json(json!({"members": members, "next": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChanges {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// `POST /v1/audiences/{name}/members`: `{"add": [ids], "remove": [ids]}` for an
/// explicit-list audience, or a text body (`text/plain`, `text/csv`) of profile ids to
/// add, one per line (a first line `id` is a header). Profiles added are created if
/// needed; journeys entered on the transitions start before the answer.
#[utoipa::path(
    post,
    path = "/v1/audiences/{name}/members",
    tag = "audiences",
    operation_id = "changeAudienceMembers",
    params(("name" = String, Path, description = "Audience name", example = "gold")),
    request_body(content = Object, content_type = "application/json", description = "{add: [ids], remove: [ids]} (or a text/plain list of ids)"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn change_members(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    match app.runtime.audience_is_list(&name) {
        None => {
            return Err(ApiError::not_found(format!(
                "audience {name:?} does not exist"
            )));
        }
        Some(false) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                Code::AudienceIsComputed,
                format!(
                    "audience {name:?} is defined by a predicate; its members follow the profiles"
                ),
            ));
        }
        Some(true) => {}
    }
    let text = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/"));
    let changes: MemberChanges = if text {
        let body = std::str::from_utf8(&bytes).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                "the list is not UTF-8",
            )
        })?;
        let add = body
            .lines()
            .map(str::trim)
            .enumerate()
            .filter(|(i, id)| !(id.is_empty() || (*i == 0 && *id == "id")))
            .map(|(_, id)| id.to_string())
            .collect();
        MemberChanges {
            add,
            remove: Vec::new(),
        }
    } else {
        parse_json(&bytes)?
    };
    for (field, ids) in [("add", &changes.add), ("remove", &changes.remove)] {
        for (i, id) in ids.iter().enumerate() {
            crate::ids::check_text_id(id, "profile id").map_err(|message| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Code::InvalidRequest,
                    message,
                )
                .at(format!("{field}[{i}]"))
            })?;
        }
    }
    let mut ops = Vec::new();
    for (ids, member) in [(changes.add, true), (changes.remove, false)] {
        ops.extend(ids.into_iter().map(|id| ProfileOp::SetMember {
            id,
            audience: name.clone(),
            member,
        }));
    }
    let count = ops.len();
    for answer in app.runtime.profile_ops(ops).await? {
        answer.map_err(ApiError::internal)?;
    }
    Ok(Json(json!({"changed": count})))
}

/// `PUT /v1/capping-rules/{id}`: `{"max": 3, "period": "P7D"}`.
#[utoipa::path(
    put,
    path = "/v1/capping-rules/{id}",
    tag = "audiences",
    operation_id = "putCappingRule",
    params(("id" = String, Path, description = "Capping rule id")),
    request_body(content = Object, content_type = "application/json", description = "{max, period}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn put_capping_rule(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let def: Value = parse_json(&bytes)?;
    app.runtime
        .put_capping_rule(&id, def.clone())
        .await
        .map_err(|e| definition_error(e, Code::InvalidCappingRule))?;
    Ok(Json(json!({"id": id, "definition": def})))
}

#[utoipa::path(
    get,
    path = "/v1/capping-rules",
    tag = "audiences",
    operation_id = "listCappingRules",
    params(Page),
    responses((status = 200, description = "Capping rules in id order; `next` pages", body = Object), Errors)
)]
pub async fn list_capping_rules(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let rules = app.runtime.store().capping_rules().await?;
    let rules = rules
        .into_iter()
        .map(|(id, def)| json!({"id": id, "definition": def}));
    let (rules, next) = page.sorted(rules, field_key("id"))?;
    Ok(Json(json!({"capping_rules": rules, "next": next})))
}

/// `GET /v1/journeys/{id}/runs`: a read-audience or business-event journey's runs with
/// their progress, newest first.
#[utoipa::path(
    get,
    path = "/v1/journeys/{id}/runs",
    tag = "runs",
    operation_id = "listJourneyRuns",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart"), Page),
    responses((status = 200, description = "Runs, newest first; `next` pages", body = Object), Errors)
)]
pub async fn runs_of_journey(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let runs: Vec<Value> = app
        .runtime
        .store()
        .runs_of_journey(&id)
        .await?
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    let (runs, next) = page.slice(runs, field_key("id"))?;
    Ok(Json(json!({"runs": runs, "next": next})))
}

/// `GET /v1/runs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    operation_id = "getRun",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_run(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = app
        .runtime
        .store()
        .get_run(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id:?} does not exist")))?;
    Ok(Json(serde_json::to_value(run).map_err(ApiError::internal)?))
}
