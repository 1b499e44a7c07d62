//! A resources file: audiences, capping rules, message templates and subscription groups
//! that journeys refer to, applied before the journeys of a folder are published
//! (`parcours serve --resources FILE`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::journey::{Format, parse_document};
use super::problem::Problem;
use super::{AudienceDef, CappingRuleDef, SubscriptionGroupDef, TemplateDef};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesDef {
    #[serde(default)]
    pub audiences: IndexMap<String, AudienceDef>,
    #[serde(default)]
    pub capping_rules: IndexMap<String, CappingRuleDef>,
    #[serde(default)]
    pub templates: IndexMap<String, TemplateDef>,
    #[serde(default)]
    pub subscription_groups: IndexMap<String, SubscriptionGroupDef>,
}

/// Parses a resources file (JSON or YAML), locating the first structural error.
pub fn parse_resources(text: &[u8], format: Format) -> Result<ResourcesDef, Problem> {
    parse_document(text, format)
}
