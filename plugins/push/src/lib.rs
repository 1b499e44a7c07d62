//! `push`: a channel provider that sends push notifications through an HTTP API shaped
//! like Firebase Cloud Messaging's (HTTP v1).
//!
//! A send is `POST <api_url>` with `{"message": {"token": <device token>,
//! "notification": {"title", "body"}, "data": {..., "message_id"}}}` and, when the
//! operator set the `access_token` secret, `Authorization: Bearer`. 2xx is sent (the
//! result keeps the service's message `name`); 429 and 5xx are retryable after the
//! answer's `Retry-After`; 404 (the token is no longer registered) and other statuses
//! fail for good. Push services have no delivery webhooks: feedback (opens, from the
//! app) comes in the engine's own format.

use parcours_sdk::channel_provider::{ChannelProvider, Context, Message};
use parcours_sdk::{Error, Value, json};

/// The request body of one notification. FCM's `data` holds strings only.
pub fn request_body(message: &Message) -> Result<Value, Error> {
    let title = message.part("title");
    let body = message.part("body");
    if title.is_empty() && body.is_empty() {
        return Err(Error::InvalidInput(
            "the message has neither title nor body".into(),
        ));
    }
    let mut data = parcours_sdk::serde_json::Map::new();
    if let Some(Value::Object(extra)) = message.content.get("data") {
        for (k, v) in extra {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            data.insert(k.clone(), Value::String(text));
        }
    }
    data.insert("message_id".into(), Value::String(message.id.clone()));
    Ok(json!({"message": {
        "token": message.to,
        "notification": {"title": title, "body": body},
        "data": data,
    }}))
}

pub struct Push;

impl ChannelProvider for Push {
    #[cfg(target_family = "wasm")]
    fn send(_ctx: &Context, message: Message) -> Result<Value, Error> {
        use parcours_sdk::http::Request;
        let url = parcours_sdk::config("api_url")
            .ok_or_else(|| Error::Permanent("the push plugin has no api_url".into()))?;
        let mut req = Request::post(&url).json(&request_body(&message)?);
        if let Some(token) = parcours_sdk::secret("access_token") {
            req = req.header("authorization", &format!("Bearer {token}"));
        }
        let resp = req.send()?;
        if resp.status == 404 {
            return Err(Error::Permanent(
                "the device token is not registered (HTTP 404)".into(),
            ));
        }
        let resp = resp.error_for_status()?;
        let answer = resp.json().unwrap_or(Value::Null);
        Ok(json!({"status": resp.status, "provider_message_id": answer["name"]}))
    }

    #[cfg(not(target_family = "wasm"))]
    fn send(_ctx: &Context, _message: Message) -> Result<Value, Error> {
        Err(Error::Permanent(
            "the push plugin runs as a WebAssembly component".into(),
        ))
    }
}

parcours_sdk::export_channel_provider!(Push);

#[cfg(test)]
mod tests {
    use super::*;
    use parcours_sdk::channel_provider::Channel;

    #[test]
    fn a_notification_carries_title_body_and_string_data() {
        let m = Message {
            id: "m1".into(),
            channel: Channel::Push,
            category: "marketing".into(),
            to: "device-token".into(),
            locale: "en".into(),
            template: "t".into(),
            template_version: 1,
            content: json!({"title": "Hi", "body": "Sale", "data": {"sku": 42, "url": "/s"}}),
            subscription_group: None,
            unsubscribe_url: None,
        };
        let body = request_body(&m).expect("body");
        assert_eq!(body["message"]["token"], "device-token");
        assert_eq!(body["message"]["notification"]["title"], "Hi");
        assert_eq!(body["message"]["data"]["sku"], "42");
        assert_eq!(body["message"]["data"]["message_id"], "m1");
        let empty = Message {
            content: json!({}),
            ..m
        };
        assert!(request_body(&empty).is_err());
    }
}
