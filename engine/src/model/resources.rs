//! A resources file: audiences and capping rules that journeys refer to, applied before
//! the journeys of a folder are published (`parcours serve --resources FILE`).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::journey::Format;
use super::problem::{Problem, serde_problem};
use super::{AudienceDef, CappingRuleDef};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourcesDef {
    #[serde(default)]
    pub audiences: IndexMap<String, AudienceDef>,
    #[serde(default)]
    pub capping_rules: IndexMap<String, CappingRuleDef>,
}

/// Parses a resources file (JSON or YAML), locating the first structural error.
pub fn parse_resources(text: &[u8], format: Format) -> Result<ResourcesDef, Problem> {
    match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_slice(text);
            serde_path_to_error::deserialize(de).map_err(serde_problem)
        }
        Format::Yaml => {
            let text = std::str::from_utf8(text)
                .map_err(|e| Problem::new("", format!("the file is not UTF-8: {e}")))?;
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(serde_problem)
        }
    }
}
