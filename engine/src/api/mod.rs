//! The HTTP API under `/v1`, one file per resource.
//!
//! Owns request decoding (size limits, JSON/YAML parsing with located errors), the JSON
//! error shape `{code, message, location}` and status codes. Handlers never hold state of
//! their own and never touch SQL: they call the [`Runtime`] and the [`crate::store::Store`].

mod alerts;
mod audiences;
mod clicks;
mod cloudevents;
mod consent;
mod deliveries;
mod error;
mod events;
mod health;
mod instances;
mod journeys;
mod messages;
mod metrics;
mod outbox;
mod page;
mod plugins;
mod profiles;
mod reports;
mod schema;
mod segment;
mod simulations;
mod templates;
mod unsubscribe;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
/// Request decoding without a running engine (the fuzz targets).
pub use events::decode_events;
pub use segment::{SegmentCalls, decode_segment};

use std::sync::Arc;

use crate::plugins::PluginRegistry;
use crate::runtime::Runtime;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub plugins: Arc<PluginRegistry>,
}

/// The whole API, with its OpenAPI document served at `/v1/openapi.json`.
pub fn router(runtime: Runtime, plugins: Arc<PluginRegistry>) -> Router {
    let max_body = runtime.settings().max_body_bytes;
    let state = AppState { runtime, plugins };
    let settings = state.runtime.settings();
    let timeout = std::time::Duration::from_secs(settings.http_body_timeout_seconds.max(1));
    let limits = |bytes, setting| error::BodyLimits {
        bytes,
        setting,
        timeout,
    };
    let (router, document) = api(
        limits(settings.max_plugin_bytes, "max_plugin_bytes"),
        limits(settings.max_import_bytes, "max_import_bytes"),
    )
    .split_for_parts();
    let document = Arc::new(openapi_json(document));
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        (*document).clone(),
                    )
                }
            }),
        )
        .merge(crate::designer::routes())
        .merge(unsubscribe::routes())
        .merge(clicks::routes())
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(error::not_found)
        .route_layer(axum::Extension(limits(max_body, "max_body_bytes")))
        .route_layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

fn openapi_json(mut document: utoipa::openapi::OpenApi) -> String {
    document.info = utoipa::openapi::InfoBuilder::new()
        .title("Parcours")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Customer-journey orchestration engine. Errors are JSON `{code, message, location, problems}`; codes are listed in docs/errors.md.",
        ))
        .build();
    let op = utoipa::openapi::path::OperationBuilder::new()
        .tag("operations")
        .operation_id(Some("openapi"))
        .description(Some("This document."))
        .response(
            "200",
            utoipa::openapi::ResponseBuilder::new()
                .description("The OpenAPI document")
                .content(
                    "application/json",
                    utoipa::openapi::Content::new(Some(utoipa::openapi::schema::Object::new())),
                ),
        )
        .build();
    document.paths.paths.insert(
        "/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(utoipa::openapi::HttpMethod::Get, op),
    );
    let mut value = serde_json::to_value(&document).unwrap_or_default();
    declare_security(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| "{}".into())
}

/// The API's security schemes: a bearer token (`parcours token create`), and for the
/// Segment calls the write key as the Basic-auth user name. Every operation but the
/// health check takes a token; without any token configured the API is open to local
/// clients, hence the empty alternative.
fn declare_security(document: &mut serde_json::Value) {
    use serde_json::json;
    document["components"]["securitySchemes"] = json!({
        "bearerToken": {"type": "http", "scheme": "bearer", "description": "An API token (`parcours token create NAME --scope ingest|read|admin`). Required once the engine has any token."},
        "segmentWriteKey": {"type": "http", "scheme": "basic", "description": "A Segment write key as the user name (or an ingest token)."}
    });
    document["security"] = json!([{"bearerToken": []}, {}]);
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            if path == "/healthz" {
                op["security"] = json!([]);
            } else if op["operationId"]
                .as_str()
                .is_some_and(|id| id.starts_with("segment"))
            {
                op["security"] = json!([{"segmentWriteKey": []}, {"bearerToken": []}]);
            }
        }
    }
}

/// Every documented route; the body limits of uploads and imports differ from the rest.
fn api(uploads: error::BodyLimits, imports: error::BodyLimits) -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(plugins::put, plugins::get, plugins::delete))
        .layer(axum::Extension(uploads))
        .layer(DefaultBodyLimit::max(uploads.bytes));
    let imports = OpenApiRouter::new()
        .routes(routes!(profiles::import))
        .layer(axum::Extension(imports))
        .layer(DefaultBodyLimit::max(imports.bytes));
    routes().merge(uploads).merge(imports)
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plugins::list))
        .routes(routes!(health::healthz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(events::post_events))
        .routes(routes!(events::get_event))
        .routes(routes!(events::post_business_event))
        .routes(routes!(segment::call))
        .routes(routes!(segment::call_v1))
        .routes(routes!(segment::root_track))
        .routes(routes!(segment::root_identify))
        .routes(routes!(segment::root_page))
        .routes(routes!(segment::root_screen))
        .routes(routes!(segment::root_alias))
        .routes(routes!(segment::root_group))
        .routes(routes!(segment::root_batch))
        .routes(routes!(
            profiles::get_profile,
            profiles::put_profile,
            profiles::patch_profile,
            profiles::delete_profile
        ))
        .routes(routes!(profiles::list))
        .routes(routes!(profiles::audiences))
        .routes(routes!(profiles::merge))
        .routes(routes!(audiences::list))
        .routes(routes!(audiences::get, audiences::put))
        .routes(routes!(audiences::members, audiences::change_members))
        .routes(routes!(audiences::list_capping_rules))
        .routes(routes!(audiences::put_capping_rule))
        .routes(routes!(audiences::runs_of_journey))
        .routes(routes!(audiences::get_run))
        .routes(routes!(instances::of_profile))
        .routes(routes!(instances::get_instance))
        .routes(routes!(instances::at_node))
        .routes(routes!(instances::steps))
        .routes(routes!(journeys::list))
        .routes(routes!(journeys::validate_body))
        .routes(routes!(journeys::get, journeys::put_draft))
        .routes(routes!(journeys::validate_draft))
        .routes(routes!(journeys::publish))
        .routes(routes!(journeys::upgrade_plugins))
        .routes(routes!(journeys::stop))
        .routes(routes!(journeys::close))
        .routes(routes!(journeys::pause))
        .routes(routes!(journeys::resume))
        .routes(routes!(journeys::diff))
        .routes(routes!(journeys::start_test, journeys::stop_test))
        .routes(routes!(reports::report))
        .routes(routes!(simulations::simulate))
        .routes(routes!(simulations::replay))
        .routes(routes!(journeys::version))
        .routes(routes!(schema::journey))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::put, alerts::get, alerts::delete))
        .routes(routes!(templates::list))
        .routes(routes!(templates::get, templates::put))
        .routes(routes!(templates::versions))
        .routes(routes!(templates::preview))
        .routes(routes!(outbox::list))
        .routes(routes!(consent::list_groups))
        .routes(routes!(consent::get_group, consent::put_group))
        .routes(routes!(consent::get_consent))
        .routes(routes!(consent::put_consent))
        .routes(routes!(messages::of_profile))
        .routes(routes!(deliveries::post))
        .routes(routes!(consent::list_suppressions))
        .routes(routes!(
            consent::get_suppression,
            consent::put_suppression,
            consent::delete_suppression
        ))
}
