//! Plugins: upload (`PUT /v1/plugins/{name}`), list, inspect, remove.

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
use crate::model::{Problem, Problems};
use crate::plugins::{InstallError, Kind, Origin, parse_manifest};

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
    // Journeys keep the version they were published with: say which ones take entries
    // on an older one of this plugin.
    let mut answer = serde_json::to_value(plugin.info()).map_err(ApiError::internal)?;
    let notices: Vec<String> = app
        .runtime
        .entering_older_pins(&name)
        .iter()
        .map(|p| {
            let journey = p.at.split('.').nth(1).unwrap_or_default();
            format!("{p} (`parcours journey upgrade-plugins {journey}` publishes against it)")
        })
        .collect();
    answer["notices"] = json!(notices);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Which versions `DELETE /v1/plugins/{name}` removes.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Only this version (default: every version).
    #[param(example = "0.1.0")]
    version: Option<String>,
}

/// Removes a plugin (every version, or `?version=`), unless a journey version that can
/// still take a step (the version a live or paused journey enters, any version with a
/// live instance, a draft in test mode) or an audience predicate calls what it would take
/// away: then 409 `PLUGIN_IN_USE` lists each such call in `problems`.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "deletePlugin",
    params(("name" = String, Path, description = "Plugin name", example = "webhook"), RemoveQuery),
    responses((status = 200, description = "Removed: `{removed: [name@version]}`", body = Object), Errors)
)]
pub async fn delete(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<Value>, ApiError> {
    let change = app.runtime.change_catalog().await;
    let Some(removal) = app.plugins.removal(&name, query.version.as_deref()) else {
        return Err(ApiError::not_found(match &query.version {
            Some(v) => format!("plugin {name:?} is not installed in version {v:?}"),
            None => format!("plugin {name:?} is not installed"),
        }));
    };
    // A channel's default provider stays while the engine runs (the settings name it).
    let gone_provider = removal
        .removed
        .iter()
        .any(|p| p.manifest.kind == Kind::ChannelProvider)
        && !removal
            .remaining
            .as_ref()
            .is_some_and(|p| p.manifest.kind == Kind::ChannelProvider);
    let channels = app.runtime.channels_defaulting_to(&name);
    if gone_provider && let Some(channel) = channels.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Code::PluginInUse,
            format!(
                "{name} is the provider of {} messages ({}_provider in the settings); set another and restart before removing it",
                channel.as_str(),
                channel.as_str()
            ),
        ));
    }
    let broken: Vec<_> = app
        .runtime
        .runnable_calls(&change)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|site| removal.breaks(&site.call))
        .collect();
    if let Some(first) = broken.first() {
        let versions: Vec<_> = removal
            .removed
            .iter()
            .map(|p| format!("{name}@{}", p.manifest.version))
            .collect();
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            Code::PluginInUse,
            format!(
                "{} is still called: {} calls {}{}; close or stop the journeys that call it (or publish versions that do not) and let their instances end",
                versions.join(", "),
                first.at,
                first.call,
                match broken.len() {
                    1 => String::new(),
                    n => format!(" (and {} more calls)", n - 1),
                }
            ),
        );
        e.problems = Some(Problems(
            broken
                .iter()
                .map(|site| Problem::new(site.at.clone(), format!("calls {}", site.call)))
                .collect(),
        ));
        return Err(e);
    }
    let removed = app.plugins.remove(&removal);
    drop(change);
    Ok(Json(json!({"removed": removed})))
}
