//! `POST /v1/events` (one event, an array, or `{"events": [...]}`) and `GET /v1/events/{id}`.
//!
//! A batch is all or nothing: if any event is invalid, none is accepted, and the error
//! names the event (`events[3].profile_id`). An answer of 202 means every event is durable.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::error::{Body, from_value, parse_json};
use super::{ApiError, AppState};
use crate::ids::new_event_id;
use crate::model::{Event, EventInput};

/// Longest event id, type or profile id accepted.
const MAX_ID_BYTES: usize = 256;

pub async fn post_events(
    State(app): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let settings = app.runtime.settings();
    let value: Value = parse_json(&body)?;
    let (items, prefix): (Vec<Value>, &str) = match value {
        Value::Array(items) => (items, ""),
        Value::Object(mut map) if map.contains_key("events") => match map.remove("events") {
            Some(Value::Array(items)) => (items, "events"),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_REQUEST",
                    "`events` must be an array",
                )
                .at("events"));
            }
        },
        single @ Value::Object(_) => (vec![single], ""),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "expected an event object, an array of events, or {\"events\": [...]}",
            ));
        }
    };
    let single =
        prefix.is_empty() && items.len() == 1 && !body.trim_ascii_start().starts_with(b"[");
    if items.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "no events in the request",
        )
        .at(prefix));
    }
    if items.len() > settings.max_batch_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BATCH_TOO_LARGE",
            format!(
                "{} events in one request; the limit is {} (max_batch_events)",
                items.len(),
                settings.max_batch_events
            ),
        )
        .at(prefix));
    }

    let now = app.runtime.now();
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let here = if single {
            String::new()
        } else {
            format!("{prefix}[{i}]")
        };
        let size = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0);
        if size > settings.max_event_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "EVENT_TOO_LARGE",
                format!(
                    "the event is {size} bytes; the limit is {} (max_event_bytes)",
                    settings.max_event_bytes
                ),
            )
            .at(here));
        }
        let input: EventInput = from_value(item, &here)?;
        events.push(validate(input, &here, now)?);
    }

    let fresh = app.runtime.store().ingest(events.clone()).await?;
    let mut answers = Vec::with_capacity(events.len());
    let mut accepted = Vec::new();
    for (event, is_new) in events.into_iter().zip(fresh) {
        answers.push(json!({
            "id": event.id,
            "status": if is_new { "accepted" } else { "duplicate" },
        }));
        if is_new {
            accepted.push(event);
        }
    }
    let count = accepted.len();
    app.runtime.dispatch(accepted).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": count, "events": answers})),
    ))
}

fn validate(input: EventInput, here: &str, now: jiff::Timestamp) -> Result<Event, ApiError> {
    let field = |name: &str| super::error::join(here, name);
    let check = |value: &str, name: &str| -> Result<(), ApiError> {
        if value.trim().is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_EVENT",
                format!("`{name}` must not be empty"),
            )
            .at(field(name)));
        }
        if value.len() > MAX_ID_BYTES {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_EVENT",
                format!("`{name}` is longer than {MAX_ID_BYTES} bytes"),
            )
            .at(field(name)));
        }
        Ok(())
    };
    check(&input.event_type, "type")?;
    check(&input.profile_id, "profile_id")?;
    if let Some(id) = &input.id {
        check(id, "id")?;
    }
    Ok(Event {
        id: input.id.unwrap_or_else(new_event_id),
        event_type: input.event_type,
        profile_id: input.profile_id,
        timestamp: input.timestamp.unwrap_or(now),
        received_at: now,
        data: input.data,
    })
}

/// The event, whether it was processed, and what it did: entries, discards with their
/// reasons, reactions.
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
