//! Reports: `GET /v1/journeys/{id}/report[?success_event=TYPE]`.

use std::collections::BTreeMap;

use super::error::Errors;
use super::error::{Path, Query};
use axum::Json;
use axum::extract::State;

use super::{ApiError, AppState};
use crate::report::{Report, build};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// An event type: the experiment view gives each split branch's conversion to it.
    #[serde(default)]
    success_event: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/journeys/{id}/report",
    tag = "reports",
    operation_id = "getJourneyReport",
    params(("id" = String, Path, description = "Journey id", example = "abandoned_cart"), ("success_event" = Option<String>, Query, description = "Event type for split conversions")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn report(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<Report>, ApiError> {
    let store = app.runtime.store();
    if store.get_journey(&id).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "journey {id:?} does not exist"
        )));
    }
    let counts = store.node_counts(&id).await?;
    let live = store.live_by_node(&id).await?;
    let order: BTreeMap<u32, Vec<(String, String)>> = app
        .runtime
        .compiled_versions(&id)
        .into_iter()
        .map(|j| {
            let nodes = j
                .nodes
                .values()
                .map(|n| (n.id.clone(), n.kind.name().to_string()))
                .collect();
            (j.version, nodes)
        })
        .collect();
    let conversions = match q.success_event {
        Some(event) => {
            let rows = store.conversions(&id, &event).await?;
            Some((event, rows))
        }
        None => None,
    };
    Ok(Json(build(&id, &counts, &live, &order, conversions)))
}
