//! `sms`: a channel provider that sends SMS through an HTTP API shaped like the common
//! SMS providers, and reads their delivery receipts.
//!
//! A send is `POST <api_url>` with the JSON body
//! `{"from", "to", "text", "client_ref": <message id>}`, an `Idempotency-Key: <message
//! id>` header and, when the operator set the `api_key` secret, `Authorization: Bearer`.
//! 2xx is sent (the result keeps the provider's id, `id` or `message_id` of its answer);
//! 408, 429 and 5xx are retryable after the answer's `Retry-After`; other statuses fail
//! for good. A delivery receipt (JSON or a form) carries the message id back in
//! `client_ref` and a `status`: `delivered`; `failed`, `rejected` or `undelivered` (a
//! hard bounce); `expired` (a soft one).

use parcours_sdk::channel_provider::{ChannelProvider, Context, Delivery, Message};
use parcours_sdk::{Error, Value, json};
use serde::Deserialize;

/// The request body of one message.
pub fn request_body(from: &str, message: &Message) -> Result<Value, Error> {
    let text = message.part("body");
    if text.is_empty() {
        return Err(Error::InvalidInput("the message has no body".into()));
    }
    Ok(json!({
        "from": from,
        "to": message.to,
        "text": text,
        "client_ref": message.id,
    }))
}

/// One delivery receipt, as providers post them.
#[derive(Debug, Deserialize)]
pub struct Receipt {
    pub client_ref: String,
    pub status: String,
    #[serde(default, alias = "err_code", alias = "error_code")]
    pub error: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// A receipt as a delivery event; `None` for statuses that say nothing final
/// (`accepted`, `queued`, `sent`).
pub fn delivery(r: Receipt) -> Option<Delivery> {
    let (kind, bounce) = match r.status.to_ascii_lowercase().as_str() {
        "delivered" => ("delivered", None),
        "failed" | "rejected" | "undelivered" => ("bounced", Some("hard")),
        "expired" => ("bounced", Some("soft")),
        _ => return None,
    };
    Some(Delivery {
        kind: kind.into(),
        message_id: r.client_ref,
        at_unix_ms: r.timestamp.map(|s| s.saturating_mul(1000)),
        bounce: bounce.map(str::to_string),
        reason: r.error.map(|e| format!("{}: {e}", r.status)),
        url: None,
    })
}

/// Reads a receipt request: a JSON object or list, or a form (`a=b&c=d`).
pub fn receipts(body: &str, content_type: &str) -> Result<Vec<Delivery>, Error> {
    let list: Vec<Receipt> = if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut map = parcours_sdk::serde_json::Map::new();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), Value::String(decode(v)));
        }
        vec![parcours_sdk::serde_json::from_value(Value::Object(map))?]
    } else {
        match parcours_sdk::serde_json::from_str::<Value>(body)? {
            Value::Array(items) => items
                .into_iter()
                .map(parcours_sdk::serde_json::from_value)
                .collect::<Result<_, _>>()?,
            one => vec![parcours_sdk::serde_json::from_value(one)?],
        }
    };
    Ok(list.into_iter().filter_map(delivery).collect())
}

/// Percent-decoding of a form field (`+` is a space).
fn decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Sms;

impl ChannelProvider for Sms {
    #[cfg(target_family = "wasm")]
    fn send(_ctx: &Context, message: Message) -> Result<Value, Error> {
        use parcours_sdk::http::Request;
        let url = parcours_sdk::config("api_url")
            .ok_or_else(|| Error::Permanent("the sms plugin has no api_url".into()))?;
        let from = parcours_sdk::config("from").unwrap_or_else(|| "Parcours".into());
        let mut req = Request::post(&url)
            .header("idempotency-key", &message.id)
            .json(&request_body(&from, &message)?);
        if let Some(key) = parcours_sdk::secret("api_key") {
            req = req.header("authorization", &format!("Bearer {key}"));
        }
        let resp = req.send()?.error_for_status()?;
        let answer = resp.json().unwrap_or(Value::Null);
        let id = answer
            .get("id")
            .or_else(|| answer.get("message_id"))
            .cloned()
            .unwrap_or(Value::Null);
        Ok(json!({"status": resp.status, "provider_message_id": id}))
    }

    #[cfg(not(target_family = "wasm"))]
    fn send(_ctx: &Context, _message: Message) -> Result<Value, Error> {
        Err(Error::Permanent(
            "the sms plugin runs as a WebAssembly component".into(),
        ))
    }

    fn parse_feedback(body: &str, content_type: &str) -> Result<Vec<Delivery>, Error> {
        receipts(body, content_type)
    }
}

parcours_sdk::export_channel_provider!(Sms);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_become_delivery_events() {
        let got = receipts(
            r#"[{"client_ref": "m1", "status": "delivered", "timestamp": 1767225600},
                {"client_ref": "m2", "status": "failed", "err_code": "unknown number"},
                {"client_ref": "m3", "status": "queued"}]"#,
            "application/json",
        )
        .expect("receipts");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, "delivered");
        assert_eq!(got[0].at_unix_ms, Some(1_767_225_600_000));
        assert_eq!(got[1].kind, "bounced");
        assert_eq!(got[1].bounce.as_deref(), Some("hard"));
        assert_eq!(got[1].reason.as_deref(), Some("failed: unknown number"));

        let form = receipts(
            "client_ref=m4&status=expired&error=no+answer%21",
            "application/x-www-form-urlencoded",
        )
        .expect("form");
        assert_eq!(form[0].bounce.as_deref(), Some("soft"));
        assert_eq!(form[0].reason.as_deref(), Some("expired: no answer!"));
        assert!(receipts("{}", "application/json").is_err());
    }
}
