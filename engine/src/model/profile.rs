//! Profiles: the people who travel journeys.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A profile: an id, free-form attributes and an optional IANA time zone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub id: String,
    /// The attribute document (a JSON object).
    pub attributes: Value,
    /// IANA time zone name (`Europe/Paris`), used by journeys that follow the profile's zone.
    pub timezone: Option<String>,
    /// Other identities of the profile, by namespace (`email`, `anonymous_id`): an event
    /// keyed by one of them reaches this profile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Profile {
    /// The profile as expressions see it: its attributes plus `id` and `timezone`.
    pub fn to_json(&self) -> Value {
        let mut doc = match &self.attributes {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        doc.insert("id".into(), Value::String(self.id.clone()));
        if let Some(tz) = &self.timezone {
            doc.insert("timezone".into(), Value::String(tz.clone()));
        }
        Value::Object(doc)
    }
}

/// Applies a JSON merge patch (RFC 7396): objects merge, `null` removes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut doc, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
