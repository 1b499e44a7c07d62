//! The `smtp` provider: an email message sent over SMTP (lettre, a pooled connection,
//! plain, STARTTLS or TLS as the URL says), as multipart text + HTML when the template
//! has both, with the message id as its `Message-ID` (the same on every retry), and a
//! marketing message's unsubscribe link as `List-Unsubscribe` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), which mail clients
//! show as an unsubscribe button.
//!
//! Owns turning a message call into an email and the server's answer into an outcome:
//! 2yz sent, 4yz and connection failures retried, 5yz failed for good. Never sends to
//! anything but the configured server.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value, json};

use crate::actions::{ActionCall, ActionError, ActionExecutor};

/// Sends email through one SMTP server.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Smtp {
    /// `url`: `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host` (TLS); `from`: `Name <address>`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> anyhow::Result<Smtp> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("smtp_from: {from:?} is not an address: {e}"))?;
        Ok(Smtp { transport, from })
    }

    fn email(&self, p: &Value) -> Result<Message, ActionError> {
        let text = |k: &str| p["message"].get(k).and_then(Value::as_str);
        let to: Mailbox = p["to"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| ActionError::InvalidInput(format!("to: not an email address: {e}")))?;
        let id = p["message_id"].as_str().unwrap_or_default();
        let domain = self.from.email.domain().to_string();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(text("subject").unwrap_or_default())
            .message_id(Some(format!("<{id}@{domain}>")));
        if let Some(url) = p["unsubscribe_url"].as_str() {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_string(),
                ));
        }
        let built = match (text("text"), text("html")) {
            (Some(t), Some(h)) => builder.multipart(MultiPart::alternative_plain_html(
                t.to_string(),
                h.to_string(),
            )),
            (None, Some(h)) => builder.singlepart(SinglePart::html(h.to_string())),
            (t, None) => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(t.unwrap_or_default().to_string()),
            ),
        };
        built.map_err(|e| ActionError::InvalidInput(format!("building the email: {e}")))
    }
}

#[async_trait]
impl ActionExecutor for Smtp {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        if call.params["channel"] != "email" {
            return Err(ActionError::InvalidInput(format!(
                "the smtp provider sends email, not {}",
                call.params["channel"]
            )));
        }
        let email = self.email(&call.params)?;
        match self.transport.send(email).await {
            Ok(response) => Ok(json!({
                "provider": "smtp",
                "message_id": call.params["message_id"],
                "response": response.message().collect::<Vec<_>>().join(" "),
            })),
            Err(e) if e.is_permanent() => Err(ActionError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(ActionError::Retryable {
                message: format!("SMTP: {e}"),
                retry_after: None,
            }),
        }
    }
}
