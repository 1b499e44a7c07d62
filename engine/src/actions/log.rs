//! The built-in `log` action: records the call and succeeds.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{ActionCall, ActionError, ActionExecutor};

/// How many recent calls a [`LogAction`] keeps for inspection.
const KEPT_CALLS: usize = 1_000;

/// Writes each call to the log (target `parcours::action::log`) and keeps the most recent
/// ones in memory. Its result is `{"logged": true, "idempotency_key": ...}`.
#[derive(Default)]
pub struct LogAction {
    recent: Mutex<VecDeque<ActionCall>>,
}

impl LogAction {
    /// The most recent calls, oldest first.
    pub fn recent_calls(&self) -> Vec<ActionCall> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }
}

#[async_trait]
impl ActionExecutor for LogAction {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        tracing::info!(
            target: "parcours::action::log",
            journey = %call.journey_id,
            node = %call.node_id,
            instance = %call.instance_id,
            profile = %call.profile_id,
            key = %call.idempotency_key,
            params = %call.params,
            "log action"
        );
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT_CALLS {
            recent.pop_front();
        }
        recent.push_back(call.clone());
        Ok(json!({"logged": true, "idempotency_key": call.idempotency_key}))
    }
}
