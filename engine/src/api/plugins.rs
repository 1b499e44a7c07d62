//! Plugins: upload (`PUT /v1/plugins/{name}`), list, inspect.

use super::error::Errors;
use super::error::{Path, Query};
use super::page::Page;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Body, parse_json};
use super::{ApiError, AppState};
use crate::code::Code;
use crate::plugins::{InstallError, Origin, parse_manifest};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Upload {
    /// The manifest, as TOML text.
    manifest: String,
    /// The component, base64-encoded.
    component: String,
}

#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    operation_id = "listPlugins",
    params(Page),
    responses((status = 200, description = "Plugins in `name@version` order; `next` pages", body = Object), Errors)
)]
pub async fn list(
    State(app): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let plugins = app
        .plugins
        .list()
        .iter()
        .map(|p| p.info())
        .collect::<Vec<_>>();
    // A plugin may be installed in several versions: the key is `name@version`.
    let key = |p: &Value| {
        format!(
            "{}@{}",
            p["name"].as_str().unwrap_or_default(),
            p["version"].as_str().unwrap_or_default()
        )
    };
    let (plugins, next) = page.sorted(plugins, key)?;
    Ok(Json(json!({"plugins": plugins, "next": next})))
}

#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "getPlugin",
    params(("name" = String, Path, description = "Plugin name", example = "webhook")),
    responses((status = 200, description = "OK", body = Object), Errors)
)]
pub async fn get(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let versions: Vec<_> = app
        .plugins
        .list()
        .iter()
        .filter(|p| p.manifest.name == name)
        .map(|p| p.info())
        .collect();
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "plugin {name:?} is not installed"
        )));
    }
    Ok(Json(json!({"name": name, "versions": versions})))
}

/// Installs a plugin version: `{"manifest": "<TOML>", "component": "<base64>"}`.
#[utoipa::path(
    put,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "putPlugin",
    params(("name" = String, Path, description = "Plugin name", example = "webhook")),
    request_body(content = Object, content_type = "application/json", description = "{manifest: TOML text, component: base64}"),
    responses((status = 201, description = "Installed", body = Object), (status = 200, description = "Already installed", body = Object), Errors)
)]
pub async fn put(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let upload: Upload = parse_json(&body)?;
    let manifest = parse_manifest(&upload.manifest).map_err(ApiError::invalid_manifest)?;
    if manifest.name != name {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidManifest,
            format!("the manifest names {:?}, the path {name:?}", manifest.name),
        )
        .at("manifest.name"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(upload.component.as_bytes())
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidComponent,
                format!("not base64: {e}"),
            )
            .at("component")
        })?;
    let plugin = app
        .plugins
        .install(manifest, bytes, Origin::Api)
        .await
        .map_err(|e| match e {
            InstallError::Manifest(p) => ApiError::invalid_manifest(p),
            InstallError::Component(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidComponent, m).at("component")
            }
            e @ InstallError::SecretNotGranted { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, Code::SecretNotGranted, e.to_string())
                    .at("manifest.secrets")
            }
            e @ InstallError::NameConflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                Code::PluginNameConflict,
                e.to_string(),
            )
            .at("manifest.name"),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(plugin.info()).map_err(ApiError::internal)?),
    ))
}
