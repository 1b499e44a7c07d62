//! A Segment-compatible ingestion endpoint: `/v1/segment/{track,identify,page,screen,
//! alias,group,batch}` (also under `/v1/segment/v1/...`, where Segment's client
//! libraries post when given `/v1/segment` as their host), authenticated with a write
//! key as the Basic-auth user name (or `writeKey` in the body).
//!
//! `track` (and `page`/`screen`) become events of the profile `userId` (or the profile
//! that `anonymousId` is an alias of, or else the profile named by the `anonymousId`);
//! `identify` merges `traits` into the profile's attributes and records `anonymousId` and
//! `traits.email` as aliases; `alias` records `previousId` as an alias; `group` is
//! accepted and ignored. An `identify` with both ids, and an `alias`, first merge the
//! profile that anonymous calls made (named by the `anonymousId` or `previousId`) into
//! the user's (`runtime::merge` has the rules). Items are validated first and applied in
//! order; the answer (`200 {"success": true}`, as the libraries expect) comes once all
//! are durable.
//!
//! The same calls are served at `/v1/{track,identify,page,screen,alias,group,batch}`:
//! clients that build their URL from the host alone (`@segment/analytics-node` posts to
//! `new URL('/v1/batch', host)`) work with the engine's address as their host.

use std::collections::BTreeMap;

use super::error::Errors;
use super::error::Path;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use super::error::{Body, join, parse_json};
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::code::Code;
use crate::ids::new_event_id;
use crate::model::Event;
use crate::runtime::ProfileOp;

/// The alias namespace of Segment's anonymous ids.
pub const ANONYMOUS_ID: &str = "anonymous_id";

/// One call of the batch, decoded.
enum Call {
    Event(EventCall),
    /// A profile write, after merging the profile `merge` names (an anonymous id now
    /// known to be this profile) into it.
    Profile {
        merge: Option<String>,
        op: ProfileOp,
    },
    Ignored,
}

struct EventCall {
    id: Option<String>,
    event_type: String,
    user_id: Option<String>,
    anonymous_id: Option<String>,
    timestamp: Option<Timestamp>,
    data: Value,
}

fn invalid(message: impl Into<String>, at: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidSegmentCall, message).at(at)
}

/// `POST /v1/segment/v1/{kind}`: where the Segment libraries post (same as
/// [`call`]).
#[utoipa::path(
    post,
    path = "/v1/segment/v1/{kind}",
    tag = "events",
    operation_id = "segmentCallV1",
    params(("kind" = String, Path, description = "track, identify, page, screen, alias, group or batch")),
    request_body(content = Object, content_type = "application/json", description = "A Segment call"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn call_v1(
    state: State<AppState>,
    kind: Path<String>,
    who: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    call(state, kind, who, headers, body).await
}

/// The Segment calls served at `/v1/<kind>` as well, for clients that build their URL
/// from the host alone; each is [`call`] with its kind.
macro_rules! root_calls {
    ($($name:ident => $kind:literal),* $(,)?) => {$(
        #[doc = concat!("`POST /v1/", $kind, "`: a Segment `", $kind, "` call (as `/v1/segment/", $kind, "`).")]
        #[utoipa::path(
            post,
            path = concat!("/v1/", $kind),
            tag = "events",
            operation_id = concat!("segmentRoot_", $kind),
            request_body(content = Object, content_type = "application/json", description = "A Segment call"),
            responses((status = 200, description = "OK", body = Object), Errors)
        )]
        pub async fn $name(
            state: State<AppState>,
            who: Option<Extension<Principal>>,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Json<Value>, ApiError> {
            call(state, Path($kind.to_string()), who, headers, body).await
        }
    )*};
}

root_calls! {
    root_track => "track",
    root_identify => "identify",
    root_page => "page",
    root_screen => "screen",
    root_alias => "alias",
    root_group => "group",
    root_batch => "batch",
}

/// `POST /v1/segment/{kind}`.
#[utoipa::path(
    post,
    path = "/v1/segment/{kind}",
    tag = "events",
    operation_id = "segmentCall",
    params(("kind" = String, Path, description = "track, identify, page, screen, alias, group or batch")),
    request_body(content = Object, content_type = "application/json", description = "A Segment call"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn call(
    State(app): State<AppState>,
    Path(kind): Path<String>,
    who: Option<Extension<Principal>>,
    headers: HeaderMap,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let result = async {
        let body: Map<String, Value> = parse_json(&bytes)?;
        authenticate(&app, who.is_some(), &headers, &body)?;
        super::events::admit(&app)?;
        let calls = decode_calls(&kind, body, app.runtime.settings().max_batch_events)?;
        apply(&app, calls).await
    }
    .await;
    if let Err(e) = &result {
        app.runtime.metrics().rejected(e.code);
    }
    result.map(|()| Json(json!({"success": true})))
}

/// Decoded Segment calls (opaque outside this module).
pub struct SegmentCalls(Vec<Call>);

impl SegmentCalls {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Decodes the body of `POST /v1/segment/{kind}` without applying it (no profiles, no
/// store): what the fuzz target and the handler share.
pub fn decode_segment(
    kind: &str,
    bytes: &[u8],
    max_batch: usize,
) -> Result<SegmentCalls, ApiError> {
    let body: Map<String, Value> = parse_json(bytes)?;
    decode_calls(kind, body, max_batch).map(SegmentCalls)
}

/// The calls of a parsed body: one, or each of a `batch`, located.
fn decode_calls(
    kind: &str,
    body: Map<String, Value>,
    max_batch: usize,
) -> Result<Vec<Call>, ApiError> {
    let items = if kind == "batch" {
        match body.get("batch") {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("batch[{i}]"), item.clone(), None))
                .collect::<Vec<_>>(),
            _ => return Err(invalid("`batch` must be an array of calls", "batch".into())),
        }
    } else {
        vec![(String::new(), Value::Object(body), Some(kind.to_string()))]
    };
    if items.len() > max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BatchTooLarge,
            format!(
                "{} calls in one batch; the limit is {max_batch} (max_batch_events)",
                items.len(),
            ),
        ));
    }
    let mut calls = Vec::with_capacity(items.len());
    for (here, item, kind) in items {
        calls.push(decode(&item, kind.as_deref(), &here)?);
    }
    Ok(calls)
}

/// Checks the write key (Basic-auth user name, or `writeKey` in the body). When the API
/// requires tokens, the token check in front of every route has already accepted the
/// key as an ingest token (write keys are ingest tokens then) and named the caller.
fn authenticate(
    app: &AppState,
    checked: bool,
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<(), ApiError> {
    if checked {
        return Ok(());
    }
    let keys = &app.runtime.settings().segment_write_keys;
    let from_header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .map(|pair| pair.split(':').next().unwrap_or_default().to_string());
    let from_body = body
        .get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_string);
    let given = from_header.or(from_body);
    let unauthorized = |message: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::Unauthorized,
            message.to_string(),
        )
    };
    if keys.is_empty() {
        return Err(unauthorized(
            "no Segment write key is configured (serve --segment-write-key KEY)",
        ));
    }
    match given {
        None => Err(unauthorized(
            "give the write key as the Basic-auth user name",
        )),
        Some(k) if crate::auth::matches_any(keys, &k) => Ok(()),
        Some(_) => Err(unauthorized("unknown write key")),
    }
}

/// A string field: absent, null and empty are none; ids and names are printable text of
/// at most `ids::MAX_ID_BYTES` bytes (numbers are taken as their text).
fn string(item: &Value, key: &str, here: &str) -> Result<Option<String>, ApiError> {
    let text = match item.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(invalid(
                format!("`{key}` must be a string"),
                join(here, key),
            ));
        }
    };
    crate::ids::check_text_id(&text, key).map_err(|message| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidSegmentCall,
            message,
        )
        .at(join(here, key))
    })?;
    Ok(Some(text))
}

fn decode(item: &Value, kind: Option<&str>, here: &str) -> Result<Call, ApiError> {
    if !item.is_object() {
        return Err(invalid("a call is a JSON object", here.to_string()));
    }
    let kind = match kind {
        Some(k) => k.to_string(),
        None => string(item, "type", here)?
            .ok_or_else(|| invalid("each call of a batch needs a `type`", join(here, "type")))?,
    };
    let user_id = string(item, "userId", here)?;
    let anonymous_id = string(item, "anonymousId", here)?;
    let timestamp = match item.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.parse::<Timestamp>().map_err(|_| {
            invalid(
                format!("{s:?} is not an ISO-8601 date-time with an offset"),
                join(here, "timestamp"),
            )
        })?),
        Some(_) => {
            return Err(invalid(
                "`timestamp` must be a string",
                join(here, "timestamp"),
            ));
        }
    };
    let object = |key: &str| -> Result<Value, ApiError> {
        match item.get(key) {
            None | Some(Value::Null) => Ok(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(_) => Err(invalid(
                format!("`{key}` must be an object"),
                join(here, key),
            )),
        }
    };
    let need_someone = || {
        if user_id.is_none() && anonymous_id.is_none() {
            Err(invalid(
                "give `userId` or `anonymousId`",
                join(here, "userId"),
            ))
        } else {
            Ok(())
        }
    };
    match kind.as_str() {
        "track" | "page" | "screen" => {
            need_someone()?;
            let (event_type, mut data) = if kind == "track" {
                let name = string(item, "event", here)?
                    .ok_or_else(|| invalid("a track call needs an `event`", join(here, "event")))?;
                (name, object("properties")?)
            } else {
                let mut props = object("properties")?;
                if let (Some(name), Value::Object(map)) = (string(item, "name", here)?, &mut props)
                {
                    map.insert("name".into(), Value::String(name));
                }
                (kind.clone(), props)
            };
            if let (Some(ctx), Value::Object(map)) = (item.get("context"), &mut data)
                && ctx.is_object()
                && !map.contains_key("context")
            {
                map.insert("context".into(), ctx.clone());
            }
            Ok(Call::Event(EventCall {
                id: string(item, "messageId", here)?,
                event_type,
                user_id,
                anonymous_id,
                timestamp,
                data,
            }))
        }
        "identify" => {
            let Some(id) = user_id.clone().or(anonymous_id.clone()) else {
                return Err(invalid(
                    "give `userId` or `anonymousId`",
                    join(here, "userId"),
                ));
            };
            let traits = object("traits")?;
            let mut aliases = BTreeMap::new();
            if let (Some(anon), Some(_)) = (&anonymous_id, &user_id) {
                aliases.insert(ANONYMOUS_ID.to_string(), Some(anon.clone()));
            }
            if let Some(email) = traits.get("email").and_then(Value::as_str)
                && !email.is_empty()
                && email.len() <= 256
            {
                aliases.insert("email".to_string(), Some(email.to_string()));
            }
            let timezone = item
                .pointer("/context/timezone")
                .and_then(Value::as_str)
                .filter(|tz| TimeZone::get(tz).is_ok())
                .map(|tz| Some(tz.to_string()));
            // The profile that anonymous calls made under this anonymous id, if any, is
            // this user: it is merged into the user's profile.
            let merge = anonymous_id.filter(|_| user_id.is_some());
            Ok(Call::Profile {
                merge,
                op: ProfileOp::Patch {
                    id,
                    attributes: Some(traits),
                    timezone,
                    aliases,
                    source: "segment",
                },
            })
        }
        "alias" => {
            let id = user_id
                .ok_or_else(|| invalid("an alias call needs a `userId`", join(here, "userId")))?;
            let previous = string(item, "previousId", here)?.ok_or_else(|| {
                invalid(
                    "an alias call needs a `previousId`",
                    join(here, "previousId"),
                )
            })?;
            Ok(Call::Profile {
                merge: Some(previous.clone()),
                op: ProfileOp::Patch {
                    id,
                    attributes: None,
                    timezone: None,
                    aliases: BTreeMap::from([(ANONYMOUS_ID.to_string(), Some(previous))]),
                    source: "segment",
                },
            })
        }
        "group" => Ok(Call::Ignored),
        other => Err(invalid(
            format!("unknown call type {other:?} (track, identify, page, screen, alias, group)"),
            join(here, "type"),
        )),
    }
}

/// Applies the calls in order: events are stored and dispatched in runs, each run
/// before the profile write that follows it.
async fn apply(app: &AppState, calls: Vec<Call>) -> Result<(), ApiError> {
    let now = app.runtime.now();
    let mut pending: Vec<Event> = Vec::new();
    for call in calls {
        match call {
            Call::Event(e) => {
                let profile_id = match (e.user_id, e.anonymous_id) {
                    (Some(user), _) => user,
                    (None, Some(anon)) => app
                        .runtime
                        .store()
                        .resolve_identity(ANONYMOUS_ID, &anon)
                        .await?
                        .unwrap_or(anon),
                    (None, None) => continue,
                };
                pending.push(Event {
                    id: e.id.unwrap_or_else(new_event_id),
                    event_type: e.event_type,
                    profile_id,
                    timestamp: e.timestamp.unwrap_or(now),
                    received_at: now,
                    data: e.data,
                });
            }
            Call::Profile { merge, op } => {
                flush(app, &mut pending).await?;
                if let Some(from) = merge {
                    app.runtime
                        .merge_profiles(&from, op.profile_id())
                        .await
                        .map_err(ApiError::internal)?;
                }
                app.runtime
                    .profile_op(op)
                    .await
                    .map_err(ApiError::internal)?;
            }
            Call::Ignored => {}
        }
    }
    flush(app, &mut pending).await
}

async fn flush(app: &AppState, pending: &mut Vec<Event>) -> Result<(), ApiError> {
    if pending.is_empty() {
        return Ok(());
    }
    app.runtime.accept(std::mem::take(pending)).await?;
    Ok(())
}
