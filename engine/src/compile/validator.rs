//! Validation of journey definitions outside a running engine (the command line's
//! `journey validate`, and embedders checking definitions before they publish).
//!
//! Owns the wiring a running engine does for itself: an expression engine with the
//! plugins' functions, and a catalog of actions, audiences and capping rules. It never
//! opens a store and never runs a journey: what it accepts, a running engine with the
//! same plugins and resources accepts too (both call [`compile`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::actions::ActionRegistry;
use crate::activities::Catalog;
use crate::expr::{ExprEngine, ExternalFunctions};
use crate::model::{JourneyDef, Problems, ResourcesDef};
use crate::settings::Settings;

use super::{Journey, compile};

/// Checks definitions against known actions, plugin functions and resources.
pub struct Validator {
    settings: Settings,
    exprs: ExprEngine,
    actions: ActionRegistry,
    audiences: BTreeSet<String>,
    capping_rules: BTreeSet<String>,
    templates: BTreeMap<String, crate::model::Channel>,
    groups: BTreeMap<String, crate::model::Channel>,
}

impl Validator {
    /// A validator for the given limits, actions and plugin functions, with no
    /// audiences or capping rules (add them with [`Validator::resources`]).
    pub fn new(
        settings: &Settings,
        actions: ActionRegistry,
        functions: Option<Arc<dyn ExternalFunctions>>,
    ) -> Self {
        Validator {
            exprs: ExprEngine::with_functions(&settings.expr, functions),
            settings: settings.clone(),
            actions,
            audiences: BTreeSet::new(),
            capping_rules: BTreeSet::new(),
            templates: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }

    /// Makes the audiences, capping rules, templates and subscription groups of a
    /// resources file known.
    pub fn resources(&mut self, resources: &ResourcesDef) {
        self.templates.extend(
            resources
                .templates
                .iter()
                .map(|(id, t)| (id.clone(), t.channel)),
        );
        self.groups.extend(
            resources
                .subscription_groups
                .iter()
                .map(|(id, g)| (id.clone(), g.channel)),
        );
        self.audiences.extend(resources.audiences.keys().cloned());
        self.capping_rules
            .extend(resources.capping_rules.keys().cloned());
    }

    /// Compiles a definition as the engine would publish it as `id`; every problem is
    /// located.
    pub fn validate(&self, id: &str, def: &JourneyDef) -> Result<Journey, Problems> {
        let catalog = Catalog {
            actions: self.actions.clone(),
            audiences: Arc::new(self.audiences.clone()),
            capping_rules: Arc::new(self.capping_rules.clone()),
            templates: Arc::new(self.templates.clone()),
            groups: Arc::new(self.groups.clone()),
            // The providers are the engine's configuration: not checked offline.
            providers: Arc::default(),
        };
        compile(def, id, 0, &self.exprs, &catalog, &self.settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Format, parse_journey, parse_resources};

    const JOURNEY: &str = r#"
entry: {type: audience_qualification, audience: vip, on: enter}
start: done
nodes:
  done: {type: end}
"#;

    #[test]
    fn an_audience_is_known_once_its_resources_are_given() {
        let def = parse_journey(JOURNEY.as_bytes(), Format::Yaml).expect("parses");
        let mut validator =
            Validator::new(&Settings::default(), ActionRegistry::with_builtins(), None);
        let problems = validator.validate("vip", &def).expect_err("vip is unknown");
        assert!(
            problems.0.iter().any(|p| p.to_string().contains("vip")),
            "{problems:?}"
        );
        let resources = parse_resources(
            b"audiences: {vip: {description: Gold members}}",
            Format::Yaml,
        )
        .expect("resources parse");
        validator.resources(&resources);
        validator
            .validate("vip", &def)
            .expect("valid with its audience");
    }
}
