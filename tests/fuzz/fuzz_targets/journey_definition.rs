//! Journey definitions, as `PUT /v1/journeys/{id}` takes them: any bytes, parsed as YAML
//! (a superset of JSON) and, when they parse, validated and compiled with the engine's
//! limits. Must never panic or hang; bad input is a located problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::journey_definition(data));
