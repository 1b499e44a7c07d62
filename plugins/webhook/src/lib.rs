//! `webhook`: sends an HTTP request with a JSON body built from the node's parameters and
//! returns the response. 2xx succeeds; 408, 429 and 5xx are retryable; other statuses are
//! permanent failures. The idempotency key travels in the `Idempotency-Key` header.

use std::collections::BTreeMap;

use parcours_sdk::action::{Action, Context};
use parcours_sdk::{Error, Value};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The URL to call.
    pub url: String,
    /// `POST` unless given.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON body; none for `GET`.
    #[serde(default)]
    pub body: Option<Value>,
}

/// Parses a response body: JSON when it is, text otherwise.
pub fn decode_body(bytes: &[u8]) -> Value {
    parcours_sdk::serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The error kind a status maps to, if it is not a success.
pub fn status_error(status: u16) -> Option<Error> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(Error::Retryable(format!("HTTP {status}"))),
        s => Some(Error::Permanent(format!("HTTP {s}"))),
    }
}

pub struct Webhook;

impl Action for Webhook {
    type Params = Params;

    #[cfg(target_family = "wasm")]
    fn invoke(ctx: &Context, p: Params) -> Result<Value, Error> {
        use parcours_sdk::http::Request;
        let method = p.method.as_deref().unwrap_or("POST");
        let mut req = Request::new(method, &p.url)
            .header("idempotency-key", &ctx.idempotency_key)
            .header("x-parcours-journey", &ctx.journey_id)
            .header("x-parcours-profile", &ctx.profile_id);
        for (name, value) in &p.headers {
            req = req.header(name, value);
        }
        if let Some(body) = &p.body {
            req = req.json(body);
        }
        let resp = req.send()?;
        if let Some(err) = status_error(resp.status) {
            return Err(err);
        }
        Ok(parcours_sdk::json!({"status": resp.status, "body": decode_body(&resp.body)}))
    }

    #[cfg(not(target_family = "wasm"))]
    fn invoke(_ctx: &Context, _p: Params) -> Result<Value, Error> {
        Err(Error::Permanent(
            "the webhook plugin runs as a WebAssembly component".into(),
        ))
    }
}

parcours_sdk::export_action!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;
    use parcours_sdk::json;

    #[test]
    fn statuses_map_to_error_kinds() {
        assert_eq!(status_error(204), None);
        assert!(matches!(status_error(503), Some(Error::Retryable(_))));
        assert!(matches!(status_error(429), Some(Error::Retryable(_))));
        assert!(matches!(status_error(404), Some(Error::Permanent(_))));
    }

    #[test]
    fn bodies_decode_as_json_or_text() {
        assert_eq!(decode_body(br#"{"a": 1}"#), json!({"a": 1}));
        assert_eq!(decode_body(b"plain"), json!("plain"));
    }
}
