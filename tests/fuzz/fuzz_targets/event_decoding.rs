//! Event ingestion decoding, as `POST /v1/events` (native and CloudEvents) and
//! `POST /v1/segment/{kind}` decode their bodies: any bytes. Must never panic; bad input
//! is a located 4xx error.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::event_decoding(data));
