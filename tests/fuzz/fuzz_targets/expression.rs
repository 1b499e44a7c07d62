//! Inline conditions, as journey authors write them: any text, compiled with the engine's
//! limits and, when it compiles, evaluated against a small event and profile. Must never
//! panic, overflow the stack or run past its operation limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parcours_engine::expr::{EvalEnv, ExprEngine, ScopeData};
use parcours_engine::settings::ExprLimits;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let mut ee = ExprEngine::new(&ExprLimits::default());
    let Ok(expr) = ee.compile(src) else {
        return;
    };
    let event = serde_json::json!({"type": "order", "data": {"amount": 150, "items": ["a", "b"], "at": "2026-03-02T08:00:00Z"}});
    let profile = serde_json::json!({"id": "ada", "tier": "gold", "tags": ["vip"]});
    let data = ScopeData {
        event: Some(&event),
        profile: Some(&profile),
        ..Default::default()
    };
    let env = EvalEnv {
        now: "2026-03-02T08:30:00Z".parse().expect("time"),
        tz: jiff::tz::TimeZone::UTC,
        call: None,
    };
    let _ = ee.eval(&expr, &data, &env);
});
