//! Events as integrators send them and as the engine keeps them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event as it arrives on `POST /v1/events`. Only `type` and `profile_id` are required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// Idempotency key: an event id seen before is not processed again.
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The profile; may be left out when `identity` names it by an alias.
    #[serde(default)]
    pub profile_id: Option<String>,
    /// An alias of the profile (`{"namespace": "email", "value": "ann@example.com"}`).
    #[serde(default)]
    pub identity: Option<Identity>,
    /// When it happened; defaults to the time it was received.
    pub timestamp: Option<Timestamp>,
    #[serde(default)]
    pub data: Value,
}

/// One identity of a profile: a namespace and a value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub namespace: String,
    pub value: String,
}

/// A business event as it arrives on `POST /v1/business-events`: no profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessEventInput {
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: Option<Timestamp>,
    #[serde(default)]
    pub data: Value,
}

/// An accepted event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub profile_id: String,
    pub timestamp: Timestamp,
    /// When the engine accepted it.
    pub received_at: Timestamp,
    pub data: Value,
}

impl Event {
    /// The event as expressions see it (`event.type`, `event.data.amount`, ...).
    pub fn to_json(&self) -> Value {
        // Built by hand: `json!` would copy `data` through its serializer.
        let mut doc = serde_json::Map::with_capacity(5);
        doc.insert("id".into(), Value::from(self.id.as_str()));
        doc.insert("type".into(), Value::from(self.event_type.as_str()));
        doc.insert("profile_id".into(), Value::from(self.profile_id.as_str()));
        doc.insert("timestamp".into(), Value::from(self.timestamp.to_string()));
        doc.insert("data".into(), self.data.clone());
        Value::Object(doc)
    }
}
