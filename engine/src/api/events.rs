//! `POST /v1/events` (one event, an array, or `{"events": [...]}`; native or CloudEvents),
//! `POST /v1/business-events`, and `GET /v1/events/{id}`.
//!
//! A batch is all or nothing: if any event is invalid, none is accepted, and the error
//! names the event (`events[3].profile_id`). An answer of 202 means every event is durable.
//! An event may name its profile by an alias (`identity`), resolved here before it is
//! stored.

use super::error::Errors;
use super::error::Path;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::cloudevents;
use super::error::{Body, from_value, parse_json};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::ids::new_event_id;
use crate::model::{BusinessEventInput, Event, EventInput};

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    operation_id = "postEvents",
    request_body(content = Object, content_type = "application/json", description = "One event, an array, {events: [...]}, or CloudEvents (structured, batch, or binary mode with ce-* headers; a CloudEvent is stored as the id <source>#<id>)"),
    responses((status = 202, description = "Accepted: every event is durable", body = Object), Errors)
)]
pub async fn post_events(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let result = accept_events(&app, &headers, body).await;
    if let Err(e) = &result {
        app.runtime.metrics().rejected(e.code);
    }
    result
}

async fn accept_events(
    app: &AppState,
    headers: &HeaderMap,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let app = app.clone();
    let settings = app.runtime.settings();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let decoded = if cloudevents::is_binary(headers) {
        // One CloudEvent in binary mode: its attributes are headers, its data the body;
        // problems are located at the header or in the body.
        let ce = cloudevents::from_binary(headers, &body)?;
        let structured = serde_json::to_vec(&ce).unwrap_or_default();
        decode_events(&structured, true, settings).map_err(|mut e| {
            e.location = e.location.as_deref().map(cloudevents::binary_location);
            e
        })?
    } else {
        let cloud = content_type.starts_with(cloudevents::STRUCTURED)
            || content_type.starts_with(cloudevents::BATCH);
        decode_events(&body, cloud, settings)?
    };
    let now = app.runtime.now();
    let mut events = Vec::with_capacity(decoded.len());
    for (here, input) in decoded {
        events.push(validate(&app, input, &here, now).await?);
    }

    admit(&app)?;
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let fresh = app.runtime.accept(events).await?;
    let count = fresh.iter().filter(|new| **new).count();
    let answers: Vec<Value> = ids
        .into_iter()
        .zip(fresh)
        .map(|(id, is_new)| {
            json!({"id": id, "status": if is_new { "accepted" } else { "duplicate" }})
        })
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": count, "events": answers})),
    ))
}

/// Decodes a `POST /v1/events` body (one event, an array, `{"events": [...]}`, native or
/// CloudEvents) into events with their locations, checking shape and sizes; nothing
/// about profiles or journeys (that is `validate`'s).
pub fn decode_events(
    body: &[u8],
    cloud: bool,
    settings: &crate::settings::Settings,
) -> Result<Vec<(String, EventInput)>, ApiError> {
    let value: Value = parse_json(body)?;
    let (items, prefix): (Vec<Value>, &str) = match value {
        Value::Array(items) => (items, ""),
        Value::Object(mut map) if map.contains_key("events") => match map.remove("events") {
            Some(Value::Array(items)) => (items, "events"),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidRequest,
                    "`events` must be an array",
                )
                .at("events"));
            }
        },
        single @ Value::Object(_) => (vec![single], ""),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                "expected an event object, an array of events, or {\"events\": [...]}",
            ));
        }
    };
    let single =
        prefix.is_empty() && items.len() == 1 && !body.trim_ascii_start().starts_with(b"[");
    if items.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            "no events in the request",
        )
        .at(prefix));
    }
    if items.len() > settings.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BatchTooLarge,
            format!(
                "{} events in one request; the limit is {} (max_batch_events)",
                items.len(),
                settings.max_batch_events
            ),
        )
        .at(prefix));
    }

    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let here = if single {
            String::new()
        } else {
            format!("{prefix}[{i}]")
        };
        let size = json_size(&item);
        let item = if cloud || cloudevents::is_cloud_event(&item) {
            cloudevents::to_native(item, &here)?
        } else {
            item
        };
        let input: EventInput = from_value(item, &here)?;
        // The fields first: a 100 KB profile id is a bad id before it is a big event.
        check_fields(&input, &here)?;
        if size > settings.max_event_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::EventTooLarge,
                format!(
                    "the event is {size} bytes; the limit is {} (max_event_bytes)",
                    settings.max_event_bytes
                ),
            )
            .at(here));
        }
        events.push((here, input));
    }
    Ok(events)
}

/// The checks of an event's own fields: ids and type are printable text of bounded
/// length (`ids::check_text_id`), and `data` is an object (or absent).
fn check_fields(input: &EventInput, here: &str) -> Result<(), ApiError> {
    let field = |name: &str| super::error::join(here, name);
    check_text(&input.event_type, field("type"), "type")?;
    if let Some(id) = &input.id {
        check_text(id, field("id"), "id")?;
    }
    if let Some(id) = &input.profile_id {
        check_text(id, field("profile_id"), "profile_id")?;
    }
    if let Some(identity) = &input.identity {
        check_text(
            &identity.namespace,
            field("identity.namespace"),
            "namespace",
        )?;
        check_text(&identity.value, field("identity.value"), "value")?;
    }
    check_data(&input.data, field("data"))
}

/// An event's `data` as stored: left out, it is the empty object, so that
/// `event.data.plan ?? "free"` reads a missing field (as in a simulation) instead of
/// failing on `()`.
fn data_or_empty(data: Value) -> Value {
    match data {
        Value::Null => Value::Object(Default::default()),
        data => data,
    }
}

/// An event's `data` is a JSON object (what `event.data.amount` reads), or absent.
pub(super) fn check_data(data: &Value, at: String) -> Result<(), ApiError> {
    match data {
        Value::Null | Value::Object(_) => Ok(()),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidEvent,
            format!(
                "`data` must be a JSON object (or left out), not {}",
                json_kind(other)
            ),
        )
        .at(at)),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses new events while too many accepted ones wait for their partitions, so that a
/// client faster than the engine is told to slow down instead of queueing without bound.
pub fn admit(app: &AppState) -> Result<(), ApiError> {
    let limit = app.runtime.settings().max_ingest_backlog;
    let backlog = app.runtime.ingest_backlog();
    if backlog >= limit {
        return Err(ApiError::overloaded(backlog, limit));
    }
    Ok(())
}

/// The length of a value's JSON text, counted without building the text.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// 422 `INVALID_EVENT` for an id or type that is empty, too long or not printable.
fn check_text(value: &str, at: String, name: &str) -> Result<(), ApiError> {
    crate::ids::check_text_id(value, name).map_err(|message| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidEvent,
            message,
        )
        .at(at)
    })
}

async fn validate(
    app: &AppState,
    input: EventInput,
    here: &str,
    now: jiff::Timestamp,
) -> Result<Event, ApiError> {
    let field = |name: &str| super::error::join(here, name);
    let profile_id = match (input.profile_id, input.identity) {
        (Some(id), _) => id,
        (None, Some(identity)) => app
            .runtime
            .store()
            .resolve_identity(&identity.namespace, &identity.value)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Code::UnknownIdentity,
                    format!(
                        "no profile has the {} alias {:?}",
                        identity.namespace, identity.value
                    ),
                )
                .at(field("identity"))
            })?,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidEvent,
                "name the profile with `profile_id` or `identity`",
            )
            .at(field("profile_id")));
        }
    };
    Ok(Event {
        id: input.id.unwrap_or_else(new_event_id),
        event_type: input.event_type,
        profile_id,
        timestamp: input.timestamp.unwrap_or(now),
        received_at: now,
        data: data_or_empty(input.data),
    })
}

/// `POST /v1/business-events`: an event with no profile. Every live business-event
/// journey for its type whose `when` holds starts a run over its audience; the answer
/// (202) lists the runs, which are durable with the event.
#[utoipa::path(
    post,
    path = "/v1/business-events",
    tag = "events",
    operation_id = "postBusinessEvent",
    request_body(content = Object, content_type = "application/json", description = "{id, type, timestamp, data}"),
    responses((status = 202, description = "Accepted", body = Object), Errors)
)]
pub async fn post_business_event(
    State(app): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let settings = app.runtime.settings();
    let input: BusinessEventInput = parse_json(&body)?;
    check_text(&input.event_type, "type".into(), "type")?;
    if let Some(id) = &input.id {
        check_text(id, "id".into(), "id")?;
    }
    check_data(&input.data, "data".into())?;
    if body.len() > settings.max_event_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::EventTooLarge,
            format!(
                "the event is {} bytes; the limit is {} (max_event_bytes)",
                body.len(),
                settings.max_event_bytes
            ),
        ));
    }
    let now = app.runtime.now();
    let event = Event {
        id: input.id.unwrap_or_else(new_event_id),
        event_type: input.event_type,
        profile_id: String::new(),
        timestamp: input.timestamp.unwrap_or(now),
        received_at: now,
        data: data_or_empty(input.data),
    };
    let id = event.id.clone();
    match app.runtime.business_event(event).await? {
        Some(runs) => {
            let runs: Vec<Value> = runs
                .iter()
                .map(|r| json!({"run_id": r.id, "journey_id": r.journey_id, "version": r.version, "audience": r.audience}))
                .collect();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"id": id, "status": "accepted", "runs": runs})),
            ))
        }
        None => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "status": "duplicate", "runs": []})),
        )),
    }
}

/// The event, whether it was processed, and what it did: entries, discards with their
/// reasons, reactions.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    operation_id = "getEvent",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get_event(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    let record = store
        .get_event(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {id:?} does not exist")))?;
    let steps = store.steps_of_event(&id).await?;
    let mut out = serde_json::to_value(&record).map_err(ApiError::internal)?;
    out["steps"] = serde_json::to_value(&steps).map_err(ApiError::internal)?;
    Ok(Json(out))
}
