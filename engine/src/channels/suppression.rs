//! The suppression list in front of every provider: a message to an address on it is
//! declined (`SUPPRESSED`) before the provider sees it, whatever its category, because
//! sending again to an address that bounced or complained harms every later message.
//!
//! Owns the check at send time (one read of the store per message) and the normal form
//! of addresses. Never adds an address: the API and delivery feedback do.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::{ActionCall, ActionError, ActionExecutor};
use crate::code::Code;
use crate::store::Store;

/// The form addresses are kept and compared in: trimmed, lower case.
pub fn normal_address(address: &str) -> String {
    address.trim().to_lowercase()
}

/// A provider behind the suppression list.
pub struct Suppressed {
    inner: Arc<dyn ActionExecutor>,
    store: Arc<dyn Store>,
}

impl Suppressed {
    pub fn new(inner: Arc<dyn ActionExecutor>, store: Arc<dyn Store>) -> Suppressed {
        Suppressed { inner, store }
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
            Ok(None) => self.inner.call(call).await,
            Err(e) => Err(ActionError::Retryable {
                message: format!("reading the suppression list: {e}"),
                retry_after: None,
            }),
        }
    }
}
