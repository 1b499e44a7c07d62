//! `GET /v1/schema/journey`: the JSON Schema of the journey format.
//!
//! Generated from the Rust types the engine deserializes ([`JourneyDef`] and its nodes),
//! so the designer's forms and the engine cannot disagree on a field. Never hand-written
//! and never a second definition of the format: the schema only describes shape; the
//! validator (compile/) stays the judge of meaning (durations, expressions, references).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;

use super::error::Errors;
use crate::model::JourneyDef;

/// The schema as served: generated once, on first request.
static JOURNEY_SCHEMA: LazyLock<String> = LazyLock::new(|| {
    let mut schema = serde_json::to_value(schemars::schema_for!(JourneyDef)).unwrap_or_default();
    schema["title"] = "Parcours journey".into();
    serde_json::to_string_pretty(&schema).unwrap_or_else(|_| "{}".into())
});

/// The JSON Schema (draft 2020-12) of a journey definition, generated from the engine's
/// own types: every node kind, entry, schedule and property with its documentation.
#[utoipa::path(
    get,
    path = "/v1/schema/journey",
    tag = "journeys",
    operation_id = "journeySchema",
    responses(
        (status = 200, description = "The JSON Schema of a journey definition", body = Object),
        Errors
    )
)]
pub async fn journey() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        JOURNEY_SCHEMA.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example journey is valid against the served schema, and a node with a field
    /// the engine refuses is not: the schema describes what the engine accepts.
    #[test]
    fn examples_match_the_schema_and_unknown_fields_do_not() {
        let schema: serde_json::Value = serde_json::from_str(&JOURNEY_SCHEMA).expect("JSON");
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/journeys");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("examples") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            let value: serde_json::Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).expect("json")
            } else {
                serde_yaml_ng::from_str(&text).expect("yaml")
            };
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            checked += 1;
        }
        assert!(checked >= 8, "every example checked ({checked})");
        let wrong = serde_json::json!({
            "entry": {"type": "event", "event": "signup"},
            "start": "w",
            "nodes": {"w": {"type": "wait", "duraton": "P1D"}}
        });
        assert!(!validator.is_valid(&wrong), "a misspelt field is refused");
        let unknown_kind = serde_json::json!({
            "entry": {"type": "event", "event": "signup"},
            "start": "w",
            "nodes": {"w": {"type": "teleport"}}
        });
        assert!(
            !validator.is_valid(&unknown_kind),
            "an unknown node kind is refused"
        );
    }
}
