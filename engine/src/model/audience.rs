//! Audiences and capping rules as authors write them.

use serde::{Deserialize, Serialize};

/// An audience: a rhai predicate over `profile`, kept up to date as profiles change, or
/// (without a predicate) an explicit list whose members are added and removed through
/// the API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AudienceDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `profile.tier == "gold" && profile.country == "FR"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

/// At most `max` entries per profile per `period` (ISO-8601 duration), counted across
/// every journey that names the rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CappingRuleDef {
    pub max: u32,
    pub period: String,
}
