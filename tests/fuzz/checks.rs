//! What each fuzz target checks, as plain functions: the libFuzzer targets call them
//! with generated inputs, and `cargo test` (tests/all/fuzz_inputs.rs) calls them with
//! every seed of `corpus/` and every input kept in `regressions/` (crashes found once,
//! fixed, and kept so they stay fixed).

use std::sync::{Arc, OnceLock};

use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::compile::{Catalog, compile};
use parcours_engine::expr::{EvalEnv, ExprEngine, ScopeData};
use parcours_engine::model::{Format, parse_journey};
use parcours_engine::settings::ExprLimits;
use parcours_engine::{decode_events, decode_segment};

struct Fixture {
    settings: Settings,
    exprs: ExprEngine,
    catalog: Catalog,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        settings: Settings::default(),
        exprs: ExprEngine::new(&Settings::default().expr),
        catalog: Catalog {
            actions: ActionRegistry::with_builtins(),
            audiences: Arc::new(["gold".to_string()].into_iter().collect()),
            capping_rules: Arc::new(Default::default()),
            templates: Arc::new(
                [(
                    "welcome".to_string(),
                    parcours_engine::model::Channel::Email,
                )]
                .into_iter()
                .collect(),
            ),
            providers: Arc::new(["outbox".to_string()].into_iter().collect()),
            groups: Arc::default(),
        },
    })
}

/// Journey definitions, as `PUT /v1/journeys/{id}` takes them: any bytes, parsed as
/// YAML and JSON and, when they parse, validated and compiled with the engine's limits.
/// Must never panic or hang; bad input is a located problem.
pub fn journey_definition(data: &[u8]) {
    let f = fixture();
    if data.len() > f.settings.max_journey_bytes {
        return;
    }
    for format in [Format::Yaml, Format::Json] {
        if let Ok(def) = parse_journey(data, format) {
            let _ = compile(&def, "fuzz", 1, &f.exprs, &f.catalog, &f.settings);
        }
    }
}

/// Inline conditions: any text, compiled with the engine's limits and, when it
/// compiles, evaluated against a small event and profile. Must never panic, overflow
/// the stack or run past its operation limit; where the compiled fast path answers, its
/// answer must be rhai's.
pub fn expression(data: &[u8]) {
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
    if let Some(fast) = ExprEngine::eval_json_fast(&expr, &data, &env) {
        let general = ee.eval_json_general(&expr, &data, &env);
        assert_eq!(
            Ok(&fast),
            general.as_ref(),
            "`{src}`: the fast path answered {fast}, rhai {general:?}"
        );
    }
}

/// Event ingestion decoding, as `POST /v1/events` (native and CloudEvents) and
/// `POST /v1/segment/{kind}` decode their bodies: any bytes. Must never panic; bad input
/// is a 4xx error.
pub fn event_decoding(data: &[u8]) {
    let settings = &fixture().settings;
    if data.len() > settings.max_body_bytes {
        return;
    }
    for cloud in [false, true] {
        if let Err(e) = decode_events(data, cloud, settings) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }
    for kind in ["batch", "track", "identify", "page", "alias"] {
        if let Err(e) = decode_segment(kind, data, settings.max_batch_events) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }
}
