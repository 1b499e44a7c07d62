//! `/v1/profiles`: get, put, patch, delete one profile, its audiences, and bulk import
//! (JSON Lines or CSV).
//!
//! Every write goes through the profile's partition ([`ProfileOp`]), so the answer
//! comes after the write is durable and the profile's audience memberships are updated.

use std::collections::BTreeMap;

use super::error::Errors;
use super::error::Path;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::error::{Body, parse_json};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::runtime::{ProfileOp, ProfileView};

use crate::ids::MAX_ID_BYTES;

/// `?after=&limit=&filter=`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfileSearch {
    /// The profile id the page starts after (the previous page's `next`).
    after: Option<String>,
    /// Profiles on the page, 1 to 1,000 (default 100).
    limit: Option<usize>,
    /// A rhai condition over `profile` (its attributes, `id`, `timezone`), as audience
    /// predicates see it: `profile.tier == "gold" && profile.age >= 18`.
    filter: Option<String>,
}

/// Profiles in id order, optionally those a condition holds for. A filtered page reads
/// at most `max_profile_scan` profiles: it may come back short, with `next` where the scan
/// stopped; `next` is `null` only when no profile is left.
#[utoipa::path(
    get,
    path = "/v1/profiles",
    tag = "profiles",
    operation_id = "listProfiles",
    params(ProfileSearch),
    responses((status = 200, description = "`{profiles, next, scanned}`", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    super::error::Query(q): super::error::Query<ProfileSearch>,
) -> Result<Json<Value>, ApiError> {
    let page = super::page::Page {
        after: None,
        limit: q.limit,
    };
    let limit = page.limit();
    let mut exprs = app.runtime.exprs();
    let filter = match &q.filter {
        Some(src) => Some(exprs.compile(src).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                format!("{src:?} is not a condition: {e}"),
            )
            .at("filter")
        })?),
        None => None,
    };
    let max_scan = app.runtime.settings().max_profile_scan.max(limit);
    let env = crate::expr::EvalEnv {
        now: app.runtime.now(),
        tz: TimeZone::UTC,
        call: None,
    };
    let store = app.runtime.store();
    let (mut found, mut scanned, mut after) = (Vec::new(), 0usize, q.after.clone());
    let mut exhausted = false;
    'scan: while found.len() < limit && scanned < max_scan {
        // Unfiltered, one profile more than the page tells whether another page follows.
        let want = if filter.is_some() {
            500
        } else {
            limit - found.len() + 1
        };
        let ask = want.min(max_scan - scanned).max(1);
        let chunk = store.profiles_page(after.clone(), ask).await?;
        let short = chunk.len() < ask;
        for profile in chunk {
            if found.len() == limit {
                // One more profile exists after the page: it is not the last.
                break 'scan;
            }
            scanned += 1;
            after = Some(profile.id.clone());
            let keep = match &filter {
                None => true,
                Some(expr) => {
                    let doc = profile.to_json();
                    let data = crate::expr::ScopeData {
                        profile: Some(&doc),
                        ..Default::default()
                    };
                    // A condition that fails on a profile (a missing attribute compared
                    // to a number) does not hold for it, as for audience predicates.
                    exprs.eval_bool(expr, &data, &env).unwrap_or(false)
                }
            };
            if keep {
                found.push(profile);
            }
        }
        if short {
            exhausted = true;
            break;
        }
    }
    let next = if exhausted { None } else { after };
    Ok(Json(
        json!({"profiles": found, "next": next, "scanned": scanned}),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/profiles/{id}",
    tag = "profiles",
    operation_id = "getProfile",
    params(("id" = String, Path, description = "Profile id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    let profile = store
        .get_profile(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("profile {id:?} does not exist")))?;
    let audiences = store.profile_audiences(&id).await?;
    let view = ProfileView {
        profile,
        audiences: audiences.into_iter().map(|(name, _)| name).collect(),
    };
    Ok(Json(
        serde_json::to_value(view).map_err(ApiError::internal)?,
    ))
}

/// `GET /v1/profiles/{id}/audiences`: memberships with the time each began, and the
/// recorded entries and exits.
#[utoipa::path(
    get,
    path = "/v1/profiles/{id}/audiences",
    tag = "profiles",
    operation_id = "getProfileAudiences",
    params(("id" = String, Path, description = "Profile id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn audiences(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    if store.get_profile(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "profile {id:?} does not exist"
        )));
    }
    let audiences: Vec<Value> = store
        .profile_audiences(&id)
        .await?
        .into_iter()
        .map(|(name, since)| json!({"audience": name, "since": since.to_string()}))
        .collect();
    let transitions = store.profile_transitions(&id).await?;
    Ok(Json(json!({
        "profile_id": id,
        "audiences": audiences,
        "transitions": transitions,
    })))
}

/// The parts of a profile body that were given.
#[derive(Default)]
struct ProfileBody {
    attributes: Option<Value>,
    /// `Some(None)`: clear the zone.
    timezone: Option<Option<String>>,
    /// `None` values remove an alias (patch only).
    aliases: Option<BTreeMap<String, Option<String>>>,
}

fn invalid(message: impl Into<String>, at: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidProfile, message).at(at)
}

/// 422 `INVALID_PROFILE` for a profile id that is empty, too long or not printable.
pub(super) fn check_id(id: &str, at: &str) -> Result<(), ApiError> {
    crate::ids::check_text_id(id, "id").map_err(|message| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidProfile,
            message,
        )
        .at(at)
    })
}

/// Decodes the fields of a profile object (`here` prefixes error locations).
fn decode_fields(
    id: &str,
    body: Map<String, Value>,
    here: &str,
    max_bytes: usize,
) -> Result<ProfileBody, ApiError> {
    let at = |field: &str| super::error::join(here, field);
    let mut out = ProfileBody::default();
    for (key, value) in body {
        match key.as_str() {
            "attributes" => match value {
                Value::Object(_) => {
                    let size = value.to_string().len();
                    if size > max_bytes {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            Code::ProfileTooLarge,
                            format!("the attributes are {size} bytes; the limit is {max_bytes} (max_profile_bytes)"),
                        )
                        .at(at("attributes")));
                    }
                    out.attributes = Some(value)
                }
                _ => return Err(invalid("`attributes` must be an object", at("attributes"))),
            },
            "timezone" => match value {
                Value::Null => out.timezone = Some(None),
                Value::String(name) => {
                    if TimeZone::get(&name).is_err() {
                        return Err(invalid(
                            format!("{name:?} is not an IANA time zone (like Europe/Paris)"),
                            at("timezone"),
                        ));
                    }
                    out.timezone = Some(Some(name));
                }
                _ => {
                    return Err(invalid(
                        "`timezone` must be a string or null",
                        at("timezone"),
                    ));
                }
            },
            "aliases" => {
                let Value::Object(map) = value else {
                    return Err(invalid(
                        "`aliases` must be an object of namespace to value",
                        at("aliases"),
                    ));
                };
                let mut aliases = BTreeMap::new();
                for (ns, v) in map {
                    let here = at(&format!("aliases.{ns}"));
                    if ns.is_empty() || ns.len() > 64 || ns.chars().any(char::is_control) {
                        return Err(invalid(
                            "an alias namespace has 1 to 64 bytes of printable text",
                            here,
                        ));
                    }
                    match v {
                        Value::Null => aliases.insert(ns, None),
                        Value::String(s) if crate::ids::check_text_id(&s, "alias").is_ok() => {
                            aliases.insert(ns, Some(s))
                        }
                        _ => {
                            return Err(invalid(
                                format!(
                                    "an alias is printable text of 1 to {MAX_ID_BYTES} bytes, or null to remove it"
                                ),
                                here,
                            ));
                        }
                    };
                }
                out.aliases = Some(aliases);
            }
            "id" if value.as_str() == Some(id) => {}
            "id" => return Err(invalid("`id` does not match the profile id", at("id"))),
            other => {
                return Err(invalid(
                    format!(
                        "unknown field `{other}`, expected `attributes`, `timezone` or `aliases`"
                    ),
                    at(other),
                ));
            }
        }
    }
    Ok(out)
}

fn decode(app: &AppState, id: &str, bytes: &[u8]) -> Result<ProfileBody, ApiError> {
    check_id(id, "id")?;
    let body: Map<String, Value> = parse_json(bytes)?;
    decode_fields(id, body, "", app.runtime.settings().max_profile_bytes)
}

async fn apply(app: &AppState, op: ProfileOp) -> Result<Option<ProfileView>, ApiError> {
    app.runtime.profile_op(op).await.map_err(ApiError::internal)
}

fn answer(view: Option<ProfileView>) -> Result<Json<Value>, ApiError> {
    let view = view.ok_or_else(|| ApiError::internal("the profile vanished"))?;
    Ok(Json(
        serde_json::to_value(view).map_err(ApiError::internal)?,
    ))
}

/// Creates or replaces a profile.
#[utoipa::path(
    put,
    path = "/v1/profiles/{id}",
    tag = "profiles",
    operation_id = "putProfile",
    params(("id" = String, Path, description = "Profile id")),
    request_body(content = Object, content_type = "application/json", description = "{attributes, timezone, aliases}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn put_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let body = decode(&app, &id, &bytes)?;
    let aliases = match body.aliases {
        Some(map) => {
            let mut out = BTreeMap::new();
            for (ns, v) in map {
                let Some(v) = v else {
                    return Err(invalid(
                        "null aliases only make sense in a PATCH",
                        format!("aliases.{ns}"),
                    ));
                };
                out.insert(ns, v);
            }
            Some(out)
        }
        None => None,
    };
    let op = ProfileOp::Put {
        id,
        attributes: body.attributes.unwrap_or_else(|| Value::Object(Map::new())),
        timezone: body.timezone.flatten(),
        aliases,
        source: "api",
    };
    answer(apply(&app, op).await?)
}

fn patch_op(id: String, body: ProfileBody, source: &'static str) -> ProfileOp {
    ProfileOp::Patch {
        id,
        attributes: body.attributes,
        timezone: body.timezone,
        aliases: body.aliases.unwrap_or_default(),
        source,
    }
}

/// Merges `attributes` (JSON merge patch: `null` removes), sets `timezone` and merges
/// `aliases` if given; creates the profile if needed.
#[utoipa::path(
    patch,
    path = "/v1/profiles/{id}",
    tag = "profiles",
    operation_id = "patchProfile",
    params(("id" = String, Path, description = "Profile id")),
    request_body(content = Object, content_type = "application/json", description = "{attributes (merge patch), timezone, aliases}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn patch_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let body = decode(&app, &id, &bytes)?;
    answer(apply(&app, patch_op(id, body, "api")).await?)
}

/// Deletes a profile: its live instances end (`PROFILE_DELETED`), its aliases and
/// memberships go.
#[utoipa::path(
    delete,
    path = "/v1/profiles/{id}",
    tag = "profiles",
    operation_id = "deleteProfile",
    params(("id" = String, Path, description = "Profile id")),
    responses((status = 204, description = "Deleted; its live instances ended"), Errors)
)]
pub async fn delete_profile(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id, "id")?;
    if app.runtime.store().get_profile(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "profile {id:?} does not exist"
        )));
    }
    apply(&app, ProfileOp::Delete { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/profiles/{id}/merge` with `{"from": "<profile id>"}`: merges the profile
/// `from` (typically one known only by an anonymous id) into this one, by the rules of
/// docs/audiences.md (identity stitching): this profile's attributes win, aliases, list
/// memberships and capping entries move, live instances move unless this profile is in
/// the same journey (they end with `PROFILE_MERGED` on `from`), and `from` is deleted.
#[utoipa::path(
    post,
    path = "/v1/profiles/{id}/merge",
    tag = "profiles",
    operation_id = "mergeProfile",
    params(("id" = String, Path, description = "The profile that remains")),
    request_body(content = Object, content_type = "application/json", description = "{from: the profile merged into this one}"),
    responses((status = 200, description = "Merged: the profile after the merge", body = Object), Errors)
)]
pub async fn merge(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Merge {
        from: String,
    }
    check_id(&id, "id")?;
    let body: Merge = parse_json(&bytes)?;
    check_id(&body.from, "from")?;
    if body.from == id {
        return Err(invalid("a profile cannot be merged into itself", "from"));
    }
    if app.runtime.store().get_profile(&body.from).await?.is_none() {
        return Err(
            ApiError::not_found(format!("profile {:?} does not exist", body.from)).at("from"),
        );
    }
    match app
        .runtime
        .merge_profiles(&body.from, &id)
        .await
        .map_err(ApiError::internal)?
    {
        Some(view) => Ok(Json(
            serde_json::to_value(view).map_err(ApiError::internal)?,
        )),
        None => {
            Err(ApiError::not_found(format!("profile {:?} does not exist", body.from)).at("from"))
        }
    }
}

/// `POST /v1/profiles/import`: JSON Lines (`{"id": ..., "attributes": {...}}` per line)
/// or CSV (`text/csv`: an `id` column, optional `timezone` and `alias.<namespace>`
/// columns, every other column an attribute: text unless typed in the header, as in
/// `age:integer`, `spend:number`, `vip:boolean`, `tags:json`). Each record is merged into its profile
/// like a PATCH. Every record is checked first; if one is bad, nothing is imported.
#[utoipa::path(
    post,
    path = "/v1/profiles/import",
    tag = "profiles",
    operation_id = "importProfiles",
    request_body(content = Object, content_type = "application/json", description = "JSON Lines: one profile object per line (a single object is one line); also text/csv with an id column, cells text unless the header types their column (age:integer, spend:number, vip:boolean, tags:json)"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn import(
    State(app): State<AppState>,
    headers: HeaderMap,
    Body(bytes): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let csv = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/csv"));
    let max = app.runtime.settings().max_profile_bytes;
    let records = if csv {
        crate::model::import::csv_records(&bytes).map_err(ApiError::bad_request)?
    } else {
        crate::model::import::jsonl_records(&bytes).map_err(ApiError::bad_request)?
    };
    let mut ops = Vec::with_capacity(records.len());
    for (line, mut record) in records {
        let here = format!("line {line}");
        let id = match record.remove("id") {
            Some(Value::String(id)) => id,
            _ => {
                return Err(invalid(
                    "each record needs a string `id`",
                    format!("{here}.id"),
                ));
            }
        };
        check_id(&id, &format!("{here}.id"))?;
        let body = decode_fields(&id, record, &here, max)?;
        ops.push(patch_op(id, body, "import"));
    }
    let count = ops.len();
    for answer in app.runtime.profile_ops(ops).await? {
        answer.map_err(ApiError::internal)?;
    }
    Ok((StatusCode::OK, Json(json!({"imported": count}))))
}
