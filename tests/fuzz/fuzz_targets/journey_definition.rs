//! Journey definitions, as `PUT /v1/journeys/{id}` takes them: any bytes, parsed as YAML
//! (a superset of JSON) and, when they parse, validated and compiled with the engine's
//! limits. Must never panic or hang; bad input is a located problem.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use parcours_engine::Settings;
use parcours_engine::actions::ActionRegistry;
use parcours_engine::compile::{Catalog, compile};
use parcours_engine::expr::ExprEngine;
use parcours_engine::model::{Format, parse_journey};

struct Fixture {
    settings: Settings,
    exprs: ExprEngine,
    catalog: Catalog,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let settings = Settings::default();
        let exprs = ExprEngine::new(&settings.expr);
        let catalog = Catalog {
            actions: ActionRegistry::with_builtins(),
            audiences: Arc::new(["gold".to_string()].into_iter().collect()),
            capping_rules: Arc::new(Default::default()),
        };
        Fixture {
            settings,
            exprs,
            catalog,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if data.len() > f.settings.max_journey_bytes {
        return;
    }
    for format in [Format::Yaml, Format::Json] {
        if let Ok(def) = parse_journey(data, format) {
            let _ = compile(&def, "fuzz", 1, &f.exprs, &f.catalog, &f.settings);
        }
    }
});
