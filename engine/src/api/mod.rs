//! The HTTP API under `/v1`, one file per resource.
//!
//! Owns request decoding (size limits, JSON/YAML parsing with located errors), the JSON
//! error shape `{code, message, location}` and status codes. Handlers never hold state of
//! their own and never touch SQL: they call the [`Runtime`] and the [`crate::store::Store`].

mod audiences;
mod cloudevents;
mod error;
mod events;
mod health;
mod instances;
mod journeys;
mod metrics;
mod plugins;
mod profiles;
mod reports;
mod segment;
mod simulations;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

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

/// The whole API.
pub fn router(runtime: Runtime, plugins: Arc<PluginRegistry>) -> Router {
    let max_body = runtime.settings().max_body_bytes;
    let max_plugin = runtime.settings().max_plugin_bytes;
    let max_import = runtime.settings().max_import_bytes;
    let state = AppState { runtime, plugins };
    let uploads = Router::new()
        .route("/v1/plugins/{name}", put(plugins::put).get(plugins::get))
        .layer(DefaultBodyLimit::max(max_plugin));
    let imports = Router::new()
        .route("/v1/profiles/import", post(profiles::import))
        .layer(DefaultBodyLimit::max(max_import));
    Router::new()
        .merge(uploads)
        .merge(imports)
        .route("/v1/plugins", get(plugins::list))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/events", post(events::post_events))
        .route("/v1/events/{id}", get(events::get_event))
        .route("/v1/business-events", post(events::post_business_event))
        .route("/v1/segment/{kind}", post(segment::call))
        .route("/v1/segment/v1/{kind}", post(segment::call))
        .route(
            "/v1/profiles/{id}",
            get(profiles::get_profile)
                .put(profiles::put_profile)
                .patch(profiles::patch_profile)
                .delete(profiles::delete_profile),
        )
        .route("/v1/profiles/{id}/audiences", get(profiles::audiences))
        .route("/v1/audiences", get(audiences::list))
        .route(
            "/v1/audiences/{name}",
            get(audiences::get).put(audiences::put),
        )
        .route(
            "/v1/audiences/{name}/members",
            get(audiences::members).post(audiences::change_members),
        )
        .route("/v1/capping-rules", get(audiences::list_capping_rules))
        .route("/v1/capping-rules/{id}", put(audiences::put_capping_rule))
        .route("/v1/journeys/{id}/runs", get(audiences::runs_of_journey))
        .route("/v1/runs/{id}", get(audiences::get_run))
        .route("/v1/profiles/{id}/instances", get(instances::of_profile))
        .route("/v1/instances/{id}", get(instances::get_instance))
        .route("/v1/instances/{id}/steps", get(instances::steps))
        .route("/v1/journeys", get(journeys::list))
        .route("/v1/journeys/validate", post(journeys::validate_body))
        .route(
            "/v1/journeys/{id}",
            get(journeys::get).put(journeys::put_draft),
        )
        .route("/v1/journeys/{id}/validate", post(journeys::validate_draft))
        .route("/v1/journeys/{id}/publish", post(journeys::publish))
        .route("/v1/journeys/{id}/stop", post(journeys::stop))
        .route("/v1/journeys/{id}/close", post(journeys::close))
        .route("/v1/journeys/{id}/pause", post(journeys::pause))
        .route("/v1/journeys/{id}/resume", post(journeys::resume))
        .route("/v1/journeys/{id}/diff", get(journeys::diff))
        .route(
            "/v1/journeys/{id}/test",
            post(journeys::start_test).delete(journeys::stop_test),
        )
        .route("/v1/journeys/{id}/report", get(reports::report))
        .route("/v1/journeys/{id}/simulate", post(simulations::simulate))
        .route("/v1/journeys/{id}/replay", post(simulations::replay))
        .route(
            "/v1/journeys/{id}/versions/{version}",
            get(journeys::version),
        )
        .fallback(error::not_found)
        .route_layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
