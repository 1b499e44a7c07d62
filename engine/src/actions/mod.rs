//! Action executors: what an action node calls.
//!
//! Owns the contract between action nodes and whatever performs the call (the built-in
//! `log` action here; WebAssembly plugins plug in through the same trait). An executor
//! never sees the store or the instance: it gets a typed context and JSON parameters and
//! answers with JSON or a typed error.

mod log;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

pub use log::LogAction;

/// Everything an action call knows about where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ActionCall {
    pub action: String,
    pub journey_id: String,
    pub version: u32,
    pub node_id: String,
    pub instance_id: String,
    pub profile_id: String,
    /// 1 for the first call, then 2, 3, ... on retries.
    pub attempt: u32,
    /// The same on every attempt of this call: receivers use it to drop repeats.
    pub idempotency_key: String,
    /// When the call must be over.
    pub deadline: Timestamp,
    pub params: Value,
}

/// Why an action call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// The parameters are wrong; retrying will not help.
    InvalidInput(String),
    /// A transient failure; the call may be retried.
    Retryable(String),
    /// A failure that retrying will not fix.
    Permanent(String),
    /// No answer before the deadline; the call may be retried.
    Timeout { after_ms: u64 },
}

impl ActionError {
    pub fn code(&self) -> &'static str {
        match self {
            ActionError::InvalidInput(_) => "ACTION_INVALID_INPUT",
            ActionError::Retryable(_) => "ACTION_RETRYABLE",
            ActionError::Permanent(_) => "ACTION_FAILED",
            ActionError::Timeout { .. } => "ACTION_TIMEOUT",
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActionError::Retryable(_) | ActionError::Timeout { .. }
        )
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            ActionError::Retryable(m) => write!(f, "transient failure: {m}"),
            ActionError::Permanent(m) => write!(f, "failed: {m}"),
            ActionError::Timeout { after_ms } => write!(f, "no answer within {after_ms} ms"),
        }
    }
}

/// Performs one kind of action.
#[async_trait]
pub trait ActionExecutor: Send + Sync {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError>;
}

/// The actions available to journeys, by name.
#[derive(Clone, Default)]
pub struct ActionRegistry {
    by_name: BTreeMap<String, Arc<dyn ActionExecutor>>,
}

impl ActionRegistry {
    /// The built-in actions.
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        r.register("log", Arc::new(LogAction::default()));
        r
    }

    pub fn register(&mut self, name: &str, executor: Arc<dyn ActionExecutor>) {
        self.by_name.insert(name.to_string(), executor);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ActionExecutor>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
