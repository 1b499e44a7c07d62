//! Action executors: what an action node calls.
//!
//! Owns the contract between action nodes and whatever performs the call (the built-in
//! `log` action, WebAssembly action plugins): a typed call context, JSON parameters, a
//! JSON result or a typed error. The registry maps `name` and `name@version` to
//! executors and their parameter schemas; it is shared, so plugins installed at run time
//! are visible to the next validation. An executor never sees the store or the instance.

mod call;
mod dry_run;
mod log;
mod retry_after;
mod schema;
mod throttle;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::code::Code;

#[cfg(test)]
pub(crate) use call::sleepy_request;
pub use call::{CallDone, CallRequest};
pub use dry_run::{DryRun, DryRunCall};
pub use log::LogAction;
pub use retry_after::RetryAfter;
pub use schema::ParamsSchema;
pub use throttle::{ActionLimit, Permit, Throttle, Throttled};

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
    /// A transient failure; the call may be retried, not before `retry_after` when the
    /// server that failed said when (an HTTP `Retry-After` the sandbox saw).
    Retryable {
        message: String,
        retry_after: Option<RetryAfter>,
    },
    /// A failure that retrying will not fix.
    Permanent(String),
    /// No answer before the deadline; the call may be retried.
    Timeout { after_ms: u64 },
    /// The sandbox stopped the call (trap, memory limit, denied host, ...), with a stable
    /// code such as `PLUGIN_TRAP`.
    Sandbox { code: Code, message: String },
    /// Nothing was sent, on purpose (an address on the suppression list), with a stable
    /// code: a message node moves on to `next`, the step saying why.
    Declined { code: Code, message: String },
}

impl ActionError {
    /// When the failed server asked to be called again, if it did.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            ActionError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ActionError::InvalidInput(_) => Code::ActionInvalidInput,
            ActionError::Retryable { .. } => Code::ActionRetryable,
            ActionError::Permanent(_) => Code::ActionFailed,
            ActionError::Timeout { .. } => Code::ActionTimeout,
            ActionError::Sandbox { code, .. } | ActionError::Declined { code, .. } => *code,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ActionError::Retryable { .. } | ActionError::Timeout { .. }
        ) || matches!(
            self,
            ActionError::Sandbox {
                code: Code::PluginTimeout,
                ..
            }
        )
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            ActionError::Retryable { message, .. } => write!(f, "transient failure: {message}"),
            ActionError::Permanent(m) => write!(f, "failed: {m}"),
            ActionError::Timeout { after_ms } => write!(f, "no answer within {after_ms} ms"),
            ActionError::Sandbox { message, .. } | ActionError::Declined { message, .. } => {
                f.write_str(message)
            }
        }
    }
}

/// Performs one kind of action.
#[async_trait]
pub trait ActionExecutor: Send + Sync {
    async fn call(&self, call: &ActionCall) -> Result<Value, ActionError>;
}

/// One registered version of an action.
#[derive(Clone)]
pub struct ActionEntry {
    pub name: String,
    pub version: String,
    pub executor: Arc<dyn ActionExecutor>,
    /// The JSON Schema its parameters must satisfy, if it has one.
    pub params_schema: Option<Arc<ParamsSchema>>,
}

impl ActionEntry {
    /// `name@version`: what a published journey pins.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// Orders versions numerically (`0.10.0` after `0.9.0`), text after numbers.
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '+'])
        .map(|p| match p.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, p.to_string()),
        })
        .collect()
}

/// The actions available to journeys. Clones share the same set.
#[derive(Clone, Default)]
pub struct ActionRegistry {
    by_name: Arc<RwLock<BTreeMap<String, Vec<ActionEntry>>>>,
}

/// The version of built-in actions.
pub const BUILTIN_VERSION: &str = "builtin";

impl ActionRegistry {
    /// The built-in actions.
    pub fn with_builtins() -> Self {
        let r = Self::default();
        r.register("log", BUILTIN_VERSION, Arc::new(LogAction::default()), None);
        r
    }

    /// Adds (or replaces) one version of an action.
    pub fn register(
        &self,
        name: &str,
        version: &str,
        executor: Arc<dyn ActionExecutor>,
        params_schema: Option<Arc<ParamsSchema>>,
    ) {
        let mut map = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        let versions = map.entry(name.to_string()).or_default();
        versions.retain(|e| e.version != version);
        versions.push(ActionEntry {
            name: name.to_string(),
            version: version.to_string(),
            executor,
            params_schema,
        });
        versions.sort_by_key(|e| version_key(&e.version));
    }

    /// Removes one version of an action; journeys validated later no longer find it.
    pub fn unregister(&self, name: &str, version: &str) {
        let mut map = self.by_name.write().unwrap_or_else(|p| p.into_inner());
        if let Some(versions) = map.get_mut(name) {
            versions.retain(|e| e.version != version);
            if versions.is_empty() {
                map.remove(name);
            }
        }
    }

    /// Finds `name` (its latest version) or `name@version` (that version).
    pub fn resolve(&self, reference: &str) -> Option<ActionEntry> {
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        let (name, version) = match reference.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (reference, None),
        };
        let versions = map.get(name)?;
        match version {
            None => versions.last().cloned(),
            Some(v) => versions.iter().find(|e| e.version == v).cloned(),
        }
    }

    /// Every name, with its versions.
    pub fn names(&self) -> Vec<(String, Vec<String>)> {
        let map = self.by_name.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(n, vs)| (n.clone(), vs.iter().map(|e| e.version.clone()).collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_latest_or_pinned_versions() {
        let r = ActionRegistry::default();
        let log: Arc<dyn ActionExecutor> = Arc::new(LogAction::default());
        r.register("a", "0.9.0", log.clone(), None);
        r.register("a", "0.10.0", log.clone(), None);
        assert_eq!(r.resolve("a").unwrap().version, "0.10.0");
        assert_eq!(r.resolve("a@0.9.0").unwrap().pinned(), "a@0.9.0");
        assert!(r.resolve("a@1.0.0").is_none());
        assert!(r.resolve("b").is_none());
    }
}
