//! `GET /v1/profiles/{id}/messages`: every message a profile's journeys sent, hold or did
//! not send, with why, read from the `message` steps of its instances (the step is the
//! record; nothing else is kept).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::{Errors, Path, Query};
use super::page::Page;
use super::{ApiError, AppState};
use crate::journal::{Step, StepStatus};

/// A message step as the profile's list shows it (`None`: not a message's own step).
fn entry(step: &Step) -> Option<Value> {
    if step.kind != "message" {
        return None;
    }
    let state = match step.status {
        StepStatus::Passed => "sent",
        StepStatus::Skipped | StepStatus::Failed => "not_sent",
        StepStatus::Waiting
            if matches!(
                step.code.as_deref(),
                Some("QUIET_HOURS" | "FREQUENCY_CAPPED")
            ) =>
        {
            "held"
        }
        StepStatus::Waiting => "pending",
        StepStatus::Held => "held",
        _ => return None,
    };
    let detail = step.detail.clone().unwrap_or(Value::Null);
    let params = &detail["params"];
    // The node's own words for what it would send when it did not get that far.
    let pick = |key: &str| {
        let v = &params[key];
        if v.is_null() {
            detail[key].clone()
        } else {
            v.clone()
        }
    };
    let why = match step.status {
        StepStatus::Waiting if !detail["quiet_hours"].is_null() => {
            json!({"quiet_hours": detail["quiet_hours"]})
        }
        StepStatus::Waiting if !detail["frequency_cap"].is_null() => {
            json!({"frequency_cap": detail["frequency_cap"]})
        }
        StepStatus::Waiting if !detail["throttled"].is_null() => {
            json!({"throttled": detail["throttled"]})
        }
        StepStatus::Waiting => {
            json!({"retry_at": detail["outcome"]["retry_at"], "error": detail["outcome"]["error"]})
        }
        _ => Value::Null,
    };
    let mut out = json!({
        "seq": step.seq,
        "at": step.at,
        "state": state,
        "journey_id": step.journey_id,
        "version": step.version,
        "instance_id": step.instance_id,
        "node": step.node,
        "message_id": pick("message_id"),
        "channel": pick("channel"),
        "category": pick("category"),
        "template": pick("template"),
        "template_version": pick("template_version"),
        "to": params["to"],
        "provider": detail["action"].as_str().and_then(|a| a.strip_prefix("message:")).map_or_else(|| detail["provider"].clone(), |p| json!(p)),
    });
    if let Some(code) = &step.code {
        out["code"] = json!(code);
        out["reason"] = json!(step.message);
    }
    if !why.is_null() {
        out["waiting"] = why;
    }
    if let Value::Object(map) = &mut out {
        map.retain(|_, v| !v.is_null());
    }
    Some(out)
}

#[utoipa::path(
    get,
    path = "/v1/profiles/{id}/messages",
    tag = "consent",
    operation_id = "listProfileMessages",
    params(("id" = String, Path, description = "Profile id"), Page),
    responses((status = 200, description = "Every message of the profile's journeys, oldest first: `state` sent, pending (a retry, an action cap), held (quiet hours, a frequency cap, a paused journey) or not_sent with its `code` and `reason`; `next` pages", body = Object), Errors)
)]
pub async fn of_profile(
    State(app): State<AppState>,
    Path(profile_id): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let store = app.runtime.store();
    // One entry per message: a message's later step (its retry that got through)
    // replaces its earlier one.
    let mut messages: BTreeMap<String, Value> = BTreeMap::new();
    for instance in store.instances_of_profile(&profile_id).await? {
        for step in store.steps_of_instance(&instance.id).await? {
            let Some(e) = entry(&step) else {
                continue;
            };
            let key = match e["message_id"].as_str() {
                Some(id) => id.to_string(),
                None => format!("{}:{}", instance.id, step.seq),
            };
            messages.insert(key, e);
        }
    }
    // In commit order (`seq`), the page key the same number.
    let (messages, next) = page.sorted(messages.into_values(), |m| {
        format!("{:020}", m["seq"].as_i64().unwrap_or(0))
    })?;
    Ok(Json(json!({"messages": messages, "next": next})))
}
