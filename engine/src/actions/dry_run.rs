//! The dry-run executor: stands in for every action in simulations and replays.
//!
//! It records what would have been sent (action, node, profile, parameters) and answers
//! `{"dry_run": true}` without calling anything, so a journey runs its whole path with
//! no side effect. Parameters are still checked against the action's schema by the
//! action node, as for a real call.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Value, json};

use super::{ActionCall, ActionError, ActionExecutor, ActionRegistry};

/// A call that a dry run did not make.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DryRunCall {
    pub action: String,
    pub journey_id: String,
    pub node_id: String,
    pub profile_id: String,
    pub params: Value,
}

/// Records calls instead of making them. Clones share the record.
#[derive(Clone, Default)]
pub struct DryRun {
    calls: Arc<Mutex<Vec<DryRunCall>>>,
}

impl DryRun {
    /// The calls recorded so far, in the order they were made.
    pub fn calls(&self) -> Vec<DryRunCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl ActionExecutor for DryRun {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DryRunCall {
                action: call.action.clone(),
                journey_id: call.journey_id.clone(),
                node_id: call.node_id.clone(),
                profile_id: call.profile_id.clone(),
                params: call.params.clone(),
            });
        Ok(json!({"dry_run": true}))
    }
}

impl ActionRegistry {
    /// A registry with the same actions, versions and parameter schemas, every one
    /// performed by `dry_run`.
    pub fn dry_run(&self, dry_run: &DryRun) -> ActionRegistry {
        let out = ActionRegistry::default();
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        for entry in map.values().flatten() {
            out.register(
                &entry.name,
                &entry.version,
                Arc::new(dry_run.clone()),
                entry.params_schema.clone(),
            );
        }
        out
    }
}
