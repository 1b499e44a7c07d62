//! CloudEvents (JSON format, structured mode, single and batch) mapped to native events.
//!
//! `id`, `type` and `time` map one to one; `data` is the event data; the profile is the
//! `profileid` extension attribute, or else `subject`. `specversion` must be `1.0` and
//! `source` present, as the specification requires; `data_base64` is refused (events are
//! JSON).

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::ApiError;
use super::error::join;

use crate::code::Code;

/// The content types of the JSON event format.
pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// Whether an event object is a CloudEvent.
pub fn is_cloud_event(item: &Value) -> bool {
    item.get("specversion").is_some()
}

fn invalid(message: impl Into<String>, at: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidCloudevent, message).at(at)
}

/// Converts one CloudEvent into the native event shape.
pub fn to_native(item: Value, here: &str) -> Result<Value, ApiError> {
    let Value::Object(mut ce) = item else {
        return Err(invalid("a CloudEvent is a JSON object", here.to_string()));
    };
    let at = |f: &str| join(here, f);
    match ce.remove("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        _ => return Err(invalid("`specversion` must be \"1.0\"", at("specversion"))),
    }
    let mut string = |name: &str, required: bool| -> Result<Option<String>, ApiError> {
        match ce.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            None if !required => Ok(None),
            None => Err(invalid(format!("`{name}` is required"), at(name))),
            Some(_) => Err(invalid(
                format!("`{name}` must be a non-empty string"),
                at(name),
            )),
        }
    };
    let id = string("id", true)?;
    let event_type = string("type", true)?;
    string("source", true)?;
    let time = string("time", false)?;
    let profile = string("profileid", false)?;
    let subject = string("subject", false)?;
    if ce.contains_key("data_base64") {
        return Err(invalid(
            "binary data (`data_base64`) is not supported; send JSON `data`",
            at("data_base64"),
        ));
    }
    let Some(profile) = profile.or(subject) else {
        return Err(invalid(
            "name the profile in the `profileid` extension attribute or in `subject`",
            at("profileid"),
        ));
    };
    let mut native = Map::new();
    native.insert("id".into(), id.into());
    native.insert("type".into(), event_type.into());
    native.insert("profile_id".into(), profile.into());
    if let Some(time) = time {
        native.insert("timestamp".into(), time.into());
    }
    native.insert("data".into(), ce.remove("data").unwrap_or(Value::Null));
    Ok(Value::Object(native))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cloud_events_map_to_native_events() {
        let ce = json!({"specversion": "1.0", "id": "e1", "source": "/shop", "type": "order.placed",
            "subject": "p1", "time": "2026-03-02T08:00:00Z", "datacontenttype": "application/json",
            "data": {"amount": 5}});
        assert_eq!(
            to_native(ce, "").unwrap(),
            json!({"id": "e1", "type": "order.placed", "profile_id": "p1",
                   "timestamp": "2026-03-02T08:00:00Z", "data": {"amount": 5}})
        );
        let bad = json!({"specversion": "1.0", "id": "e1", "type": "t", "subject": "p"});
        assert_eq!(
            to_native(bad, "[2]").unwrap_err().location.as_deref(),
            Some("[2].source")
        );
    }
}
