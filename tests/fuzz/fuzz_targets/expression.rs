//! Inline conditions, as journey authors write them: any text, compiled with the engine's
//! limits and, when it compiles, evaluated against a small event and profile. Must never
//! panic, overflow the stack or run past its operation limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::expression(data));
