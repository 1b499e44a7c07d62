//! Integration tests: one binary, one module per area. Journeys run end to end through
//! the HTTP API on a test clock; the restart and CLI tests run the real `parcours` binary.

mod audiences;
mod auth;
mod authoring;
mod backup;
mod channel_plugins;
mod cli;
mod consent;
mod designer;
mod docs;
mod email;
mod failures;
mod frequency_caps;
mod fuzz_inputs;
mod journeys;
mod journeys_api;
mod lifecycle;
mod limits;
mod openapi;
mod pages;
mod plugins;
mod polyglot;
mod restart;
mod runs;
mod security;
mod simulation;
mod support;
mod templates;
mod validation;
