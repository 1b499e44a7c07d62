//! Simulation and replay of a journey: `POST /v1/journeys/{id}/simulate` and
//! `POST /v1/journeys/{id}/replay`. Both run on a virtual clock in a throw-away store
//! with actions in dry run; nothing in the engine changes.

use super::error::Errors;
use super::error::Path;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::error::{Body, from_value, parse_json};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::model::JourneyDef;
use crate::simulation::{self, Replay, SimError, SimEvent, SimProfile, Simulation};

/// Which definition of the journey to run.
#[derive(Deserialize, Clone, Default)]
#[serde(untagged)]
enum Which {
    /// A published version.
    Version(u32),
    /// `draft` (the default).
    #[default]
    #[serde(skip)]
    Draft,
    Named(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    /// A version number or `draft` (default).
    #[serde(default)]
    version: Option<Which>,
    #[serde(default)]
    profiles: Vec<SimProfile>,
    events: Vec<SimEvent>,
    #[serde(default)]
    start: Option<Timestamp>,
    #[serde(default)]
    until: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from: Timestamp,
    to: Timestamp,
    /// The version the draft is compared with (default: the latest).
    #[serde(default)]
    against: Option<u32>,
}

fn sim_error(e: SimError) -> ApiError {
    match e {
        SimError::Input(problems) => {
            let first = problems.first().cloned();
            let mut err = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidSimulation,
                first
                    .as_ref()
                    .map_or_else(|| "invalid simulation".into(), |p| p.message.clone()),
            );
            err.location = first.map(|p| p.path).filter(|p| !p.is_empty());
            err.problems = Some(problems);
            err
        }
        SimError::Journey(problems) => ApiError::invalid_definition(problems),
        SimError::Engine(e) => ApiError::internal(e),
    }
}

/// The definition `which` of journey `id`, with its label.
async fn definition(
    app: &AppState,
    id: &str,
    which: Which,
    location: &str,
) -> Result<(String, JourneyDef), ApiError> {
    let store = app.runtime.store();
    let (label, value): (String, Value) = match which {
        Which::Version(v) => (
            format!("version {v}"),
            store
                .version(id, v)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no version {v}")))?
                .definition,
        ),
        Which::Draft => (
            "draft".into(),
            store
                .get_journey(id)
                .await?
                .and_then(|j| j.draft)
                .ok_or_else(|| ApiError::not_found(format!("journey {id:?} has no draft")))?,
        ),
        Which::Named(n) if n == "draft" => {
            return Box::pin(definition(app, id, Which::Draft, location)).await;
        }
        Which::Named(n) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidRequest,
                format!("{n:?} is neither a version number nor `draft`"),
            )
            .at(location));
        }
    };
    Ok((label, from_value(value, "")?))
}

#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/simulate",
    tag = "simulation",
    operation_id = "simulateJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "{version, profiles, events, start, until}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn simulate(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Simulation>, ApiError> {
    let body: SimulateBody = parse_json(&body)?;
    let (_, journey) = definition(&app, &id, body.version.unwrap_or_default(), "version").await?;
    let cx = crate::simulation::Context::of(&app.runtime).await?;
    let request = simulation::Request {
        journey_id: id,
        journey,
        profiles: body.profiles,
        events: body.events,
        start: body.start,
        until: body.until,
    };
    Ok(Json(
        simulation::simulate(&cx, request)
            .await
            .map_err(sim_error)?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/journeys/{id}/replay",
    tag = "simulation",
    operation_id = "replayJourney",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart")),
    request_body(content = Object, content_type = "application/json", description = "{from, to, against}"),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn replay(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Replay>, ApiError> {
    let body: ReplayBody = parse_json(&body)?;
    if body.to <= body.from {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            "`to` must be after `from`",
        )
        .at("to"));
    }
    let against = match body.against {
        Some(v) => v,
        None => app
            .runtime
            .store()
            .get_journey(&id)
            .await?
            .and_then(|j| j.versions.last().map(|v| v.version))
            .ok_or_else(|| {
                ApiError::not_found(format!("journey {id:?} has no published version"))
            })?,
    };
    let (before_label, before) = definition(&app, &id, Which::Version(against), "against").await?;
    let (after_label, after) = definition(&app, &id, Which::Draft, "").await?;
    let cx = crate::simulation::Context::of(&app.runtime).await?;
    let limit = cx.settings.max_simulation_events;
    let events = app
        .runtime
        .store()
        .events_between(body.from, body.to, None, limit + 1)
        .await?;
    if events.len() > limit {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidSimulation,
            format!(
                "more than {limit} events in the period (max_simulation_events); replay a shorter one"
            ),
        ));
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e.profile_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut profiles = Vec::with_capacity(ids.len());
    for pid in ids {
        if let Some(p) = app.runtime.store().get_profile(pid).await? {
            profiles.push(p);
        }
    }
    let recording = simulation::Recording {
        journey_id: &id,
        from: body.from,
        to: body.to,
        events: &events,
        profiles: &profiles,
    };
    let result = simulation::replay(
        &cx,
        &recording,
        simulation::Side {
            label: before_label,
            journey: before,
        },
        simulation::Side {
            label: after_label,
            journey: after,
        },
    )
    .await
    .map_err(sim_error)?;
    Ok(Json(result))
}
