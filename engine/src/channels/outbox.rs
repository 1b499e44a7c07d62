//! The `outbox` provider: a message is "sent" by storing it, rendered, where
//! `GET /v1/outbox` shows it. For trying journeys and for tests, without an SMTP server
//! or an SMS account; `serve --examples` sends there.
//!
//! Owns turning a message call into an outbox record, once per message id (a retry
//! stores nothing twice). Never reaches outside the engine.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::actions::{ActionCall, ActionError, ActionExecutor};
use crate::store::{OutboxRecord, OutboxStore};

/// Stores each message it is given.
pub struct Outbox {
    store: Arc<dyn OutboxStore>,
    now: Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>,
}

impl Outbox {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        now: Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>,
    ) -> Outbox {
        Outbox { store, now }
    }
}

#[async_trait]
impl ActionExecutor for Outbox {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let p = &call.params;
        let text = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let record = OutboxRecord {
            message_id: text("message_id"),
            channel: text("channel"),
            to: text("to"),
            profile_id: call.profile_id.clone(),
            journey_id: call.journey_id.clone(),
            node_id: call.node_id.clone(),
            template: text("template"),
            template_version: p
                .get("template_version")
                .and_then(Value::as_u64)
                .unwrap_or(0) as u32,
            locale: text("locale"),
            message: p.get("message").cloned().unwrap_or(Value::Null),
            at: (self.now)(),
        };
        if record.message_id.is_empty() {
            return Err(ActionError::InvalidInput("no message_id".into()));
        }
        let stored =
            self.store
                .put_outbox(record.clone())
                .await
                .map_err(|e| ActionError::Retryable {
                    message: format!("storing the message: {e}"),
                    retry_after: None,
                })?;
        Ok(json!({"provider": "outbox", "message_id": record.message_id, "stored": stored}))
    }
}
