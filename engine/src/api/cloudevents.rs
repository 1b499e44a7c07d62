//! CloudEvents mapped to native events: the JSON format (structured mode, single and
//! batch) and the HTTP binary mode (attributes in `ce-*` headers, the data as the body).
//!
//! An event's identity is (`source`, `id`), as the specification says: the native id is
//! `<source>#<id>`, with `%` and `#` of the source percent-encoded so that the first `#`
//! always separates the two (two sources may send the same `id` without either being
//! taken for a duplicate). `type` and `time` map one to one; `data` is the event data;
//! the profile is the `profileid` extension attribute, or else `subject`. `specversion`
//! must be `1.0` and `source` present; `data_base64` is refused (events are JSON).

use axum::http::{HeaderMap, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value};

use super::ApiError;
use super::error::join;

use crate::code::Code;

/// The content types of the JSON event format.
pub const STRUCTURED: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// What is escaped in a source that is part of a native id.
const IN_SOURCE: &AsciiSet = &CONTROLS.add(b'%').add(b'#');

/// The native id of the CloudEvent (`source`, `id`).
pub fn native_id(source: &str, id: &str) -> String {
    format!("{}#{id}", utf8_percent_encode(source, IN_SOURCE))
}

/// Whether a request is a CloudEvent in binary mode (`ce-specversion` header).
pub fn is_binary(headers: &HeaderMap) -> bool {
    headers.contains_key("ce-specversion")
}

/// A binary-mode CloudEvent (HTTP binding 1.0: each attribute in a `ce-<name>` header,
/// percent-encoded; the data is the body, JSON) as a structured one.
pub fn from_binary(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let mut ce = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let text = value
            .to_str()
            .ok()
            .and_then(|v| percent_decode_str(v).decode_utf8().ok())
            .ok_or_else(|| {
                invalid(
                    "the header is not percent-encoded UTF-8 text",
                    name.to_string(),
                )
            })?;
        ce.insert(attribute.to_string(), Value::String(text.into_owned()));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !body.is_empty() {
        if !(media == "application/json" || media.ends_with("+json")) {
            return Err(invalid(
                format!(
                    "the data of a binary-mode CloudEvent must be JSON (content-type application/json), not {content_type:?}"
                ),
                "content-type".into(),
            ));
        }
        let data: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the body is not JSON: {e}"), "body".into()))?;
        ce.insert("data".into(), data);
    }
    Ok(Value::Object(ce))
}

/// A location in a structured CloudEvent, as the binary-mode request has it: attributes
/// are `ce-` headers, the data is the body.
pub fn binary_location(location: &str) -> String {
    if location == "data" || location.starts_with("data.") || location.starts_with("data[") {
        format!("body{}", &location["data".len()..])
    } else if location.is_empty() {
        location.to_string()
    } else {
        format!("ce-{location}")
    }
}

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
    let source = string("source", true)?;
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
    let (Some(source), Some(id)) = (source, id) else {
        return Err(invalid("`source` and `id` are required", at("id")));
    };
    let id = native_id(&source, &id);
    if let Err(why) = crate::ids::check_text_id(&id, "id") {
        return Err(invalid(
            format!("`source` and `id` together name the event: {why}"),
            at("id"),
        ));
    }
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
            json!({"id": "/shop#e1", "type": "order.placed", "profile_id": "p1",
                   "timestamp": "2026-03-02T08:00:00Z", "data": {"amount": 5}})
        );
        let bad = json!({"specversion": "1.0", "id": "e1", "type": "t", "subject": "p"});
        assert_eq!(
            to_native(bad, "[2]").unwrap_err().location.as_deref(),
            Some("[2].source")
        );
    }

    #[test]
    fn the_identity_is_source_and_id_and_the_first_hash_separates_them() {
        assert_eq!(native_id("/shop", "e1"), "/shop#e1");
        assert_eq!(native_id("/a#b", "c"), "/a%23b#c");
        assert_eq!(native_id("/a", "b#c"), "/a#b#c");
        assert_ne!(native_id("/a#b", "c"), native_id("/a", "b#c"));
        assert_eq!(native_id("50%", "x"), "50%25#x");
    }

    #[test]
    fn binary_mode_reads_headers_and_a_json_body() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "e%201"),
            ("ce-source", "/shop"),
            ("ce-type", "order"),
            ("ce-subject", "p1"),
            ("content-type", "application/json; charset=utf-8"),
        ] {
            headers.insert(k, v.parse().unwrap());
        }
        let ce = from_binary(&headers, br#"{"amount": 5}"#).unwrap();
        assert_eq!(
            to_native(ce, "").unwrap(),
            json!({"id": "/shop#e 1", "type": "order", "profile_id": "p1", "data": {"amount": 5}})
        );
        headers.insert("content-type", "text/plain".parse().unwrap());
        let err = from_binary(&headers, b"hello").unwrap_err();
        assert_eq!(err.location.as_deref(), Some("content-type"));
        assert_eq!(binary_location("source"), "ce-source");
        assert_eq!(binary_location("data.amount"), "body.amount");
    }
}
