//! `/v1/outbox`: the messages the `outbox` provider kept, rendered, in the order they
//! were sent.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Errors, Query};
use super::page::Page;
use super::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxFilter {
    /// Only this profile's messages.
    profile_id: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/outbox",
    tag = "templates",
    operation_id = "listOutbox",
    params(OutboxFilter, Page),
    responses((status = 200, description = "Messages the outbox provider kept, oldest first; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(filter): Query<OutboxFilter>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let after = match &page.after {
        None => None,
        Some(a) => Some(a.parse::<i64>().map_err(|_| Page::not_a_key(a))?),
    };
    let rows = app
        .runtime
        .store()
        .outbox_page(filter.profile_id, after, page.limit() + 1)
        .await?;
    let (rows, next) = page.read_ahead(rows, |(seq, _)| seq.to_string());
    let messages: Vec<Value> = rows
        .into_iter()
        .map(|(seq, m)| {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            v["seq"] = json!(seq);
            v
        })
        .collect();
    Ok(Json(json!({"messages": messages, "next": next})))
}
