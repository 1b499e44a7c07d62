//! The suppression list in front of every provider: a message to an address on it is
//! declined (`SUPPRESSED`) before the provider sees it, whatever its category, because
//! sending again to an address that bounced or complained harms every later message.
//!
//! Once a provider accepted a message, it records it by id (`DeliveryStore`), which
//! delivery feedback is matched to.
//!
//! Owns the check at send time (one read of the store per message), the record of what
//! went out, and the normal form of addresses. Never adds an address: the API and
//! delivery feedback do.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::{ActionCall, ActionError, ActionExecutor};
use crate::code::Code;
use crate::store::{SentMessage, Store};
use jiff::Timestamp;

/// The form addresses are kept and compared in: trimmed, lower case.
pub fn normal_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// A provider behind the suppression list.
pub struct Suppressed {
    name: String,
    inner: Arc<dyn ActionExecutor>,
    store: Arc<dyn Store>,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl Suppressed {
    /// Provider `name`, checked against the list of `store` and recorded there.
    pub fn new(
        name: &str,
        inner: Arc<dyn ActionExecutor>,
        store: Arc<dyn Store>,
        now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Suppressed {
        Suppressed {
            name: name.to_string(),
            inner,
            store,
            now,
        }
    }
}

#[async_trait]
impl ActionExecutor for Suppressed {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        let to = normal_address(call.params["to"].as_str().unwrap_or_default());
        match self.store.suppression(&to).await {
            Ok(Some(s)) => Err(ActionError::Declined {
                code: Code::Suppressed,
                message: format!(
                    "{to} is on the suppression list ({}, since {})",
                    s.reason, s.at
                ),
            }),
            Ok(None) => {
                let answer = self.inner.call(call).await?;
                let p = &call.params;
                let sent = SentMessage {
                    message_id: p["message_id"].as_str().unwrap_or_default().to_string(),
                    profile_id: call.profile_id.clone(),
                    journey_id: call.journey_id.clone(),
                    instance_id: call.instance_id.clone(),
                    node_id: call.node_id.clone(),
                    channel: p["channel"].as_str().unwrap_or_default().to_string(),
                    provider: self.name.clone(),
                    to: to.clone(),
                    at: (self.now)(),
                };
                // The message is out: a failed record costs its feedback, not the send.
                if let Err(e) = self.store.put_sent(sent).await {
                    tracing::warn!(error = %e, "recording a sent message failed");
                }
                Ok(answer)
            }
            Err(e) => Err(ActionError::Retryable {
                message: format!("reading the suppression list: {e}"),
                retry_after: None,
            }),
        }
    }
}
