//! `POST /v1/deliveries/{provider}`: delivery feedback from a provider (its webhook, or
//! a bounce processor for SMTP), in the engine's format: one object or a list of
//! `{type, message_id, at, bounce, reason, url}`; or, for a provider that is a plugin,
//! in the provider's own format, read by the plugin.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::error::{Body, Errors, Path, parse_json};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::runtime::Feedback;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Feedback>),
    One(Feedback),
}

#[utoipa::path(
    post,
    path = "/v1/deliveries/{provider}",
    tag = "consent",
    operation_id = "postDeliveries",
    params(("provider" = String, Path, description = "The provider that sent the messages", example = "smtp")),
    request_body(content = Object, content_type = "application/json", description = "{type: delivered|bounced|opened|clicked|complained, message_id, at, bounce: hard|soft, reason, url}, or a list of them"),
    responses((status = 202, description = "{accepted, duplicates, unknown: [message ids], suppressed}: the events are durable", body = Object), Errors)
)]
pub async fn post(
    State(app): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !app.runtime.has_provider(&provider) {
        return Err(ApiError::not_found(format!(
            "there is no provider {provider:?}"
        )));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if let Some(parsed) = app
        .runtime
        .provider_webhook(&provider, &body, content_type)
        .await
    {
        let items = parsed.map_err(|message| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                Code::InvalidRequest,
                message,
            )
        })?;
        let report = app.runtime.delivery_feedback(&provider, items).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::to_value(report).map_err(ApiError::internal)?),
        ));
    }
    // A list or one object; a bad item is located in either shape.
    let items = match parse_json::<OneOrMany>(&body) {
        Ok(OneOrMany::Many(v)) => v,
        Ok(OneOrMany::One(f)) => vec![f],
        Err(_) => match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => parse_json::<Vec<Feedback>>(&body)?,
            _ => vec![parse_json::<Feedback>(&body)?],
        },
    };
    let report = app.runtime.delivery_feedback(&provider, items).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::to_value(report).map_err(ApiError::internal)?),
    ))
}
