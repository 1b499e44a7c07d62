//! One action call as values: what an action node asks for ([`CallRequest`]: the
//! executor, the call with its idempotency key, its timeout and its hold on the caps) and
//! what came back ([`CallDone`]).
//!
//! The node builds the request and reads the answer; the partition decides where the
//! call runs (inside its batch, or after the batch committed the instance as calling).
//! Because a request owns everything it needs (no borrow of the step), it can outlive
//! the step that made it. This module never sees the store or the instance.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ActionCall, ActionError, ActionExecutor, Permit};

/// A call an action node wants made.
pub struct CallRequest {
    pub executor: Arc<dyn ActionExecutor>,
    pub call: ActionCall,
    /// Longest time the call may take; past it the answer is [`ActionError::Timeout`].
    pub timeout: Duration,
    /// The slots of the caps the call falls under, released when the call is over.
    pub permit: Option<Permit>,
}

impl fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRequest")
            .field("call", &self.call)
            .field("timeout", &self.timeout)
            .field("capped", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for CallRequest {
    /// Two requests are the same call: the same attempt of the same idempotency key.
    fn eq(&self, other: &Self) -> bool {
        self.call.idempotency_key == other.call.idempotency_key
            && self.call.attempt == other.call.attempt
    }
}

/// A call that is over: the call as it was made, and its answer.
#[derive(Debug)]
pub struct CallDone {
    pub call: ActionCall,
    pub result: Result<Value, ActionError>,
    /// How long the call took (wall time, whatever the engine's clock says).
    pub elapsed: Duration,
}

impl CallRequest {
    /// Makes the call under its timeout; the caps' slots are released when it is over.
    pub async fn perform(self) -> CallDone {
        let CallRequest {
            executor,
            call,
            timeout,
            permit,
        } = self;
        let started = Instant::now();
        let result = match tokio::time::timeout(timeout, executor.call(&call)).await {
            Ok(r) => r,
            Err(_) => Err(ActionError::Timeout {
                after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        };
        drop(permit);
        CallDone {
            call,
            result,
            elapsed: started.elapsed(),
        }
    }

    /// What identifies this attempt while it is in flight: the idempotency key and the
    /// attempt number.
    pub fn ticket(&self) -> String {
        format!("{}#{}", self.call.idempotency_key, self.call.attempt)
    }
}

/// A call of an executor that answers its key after a pause, for tests of where calls
/// run.
#[cfg(test)]
pub(crate) fn sleepy_request(sleep: Duration, key: &str, timeout: Duration) -> CallRequest {
    struct Sleepy(Duration);

    #[async_trait::async_trait]
    impl ActionExecutor for Sleepy {
        async fn call(&self, call: &ActionCall) -> Result<Value, ActionError> {
            tokio::time::sleep(self.0).await;
            Ok(Value::String(call.idempotency_key.clone()))
        }
    }

    CallRequest {
        executor: Arc::new(Sleepy(sleep)),
        call: ActionCall {
            action: "sleepy@1.0.0".into(),
            journey_id: "j".into(),
            version: 1,
            node_id: "n".into(),
            instance_id: "i".into(),
            profile_id: "p".into(),
            attempt: 1,
            idempotency_key: key.into(),
            deadline: jiff::Timestamp::UNIX_EPOCH,
            params: Value::Null,
        },
        timeout,
        permit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_answers_within_its_timeout_or_times_out() {
        let done = sleepy_request(Duration::ZERO, "i:n:3", Duration::from_secs(5))
            .perform()
            .await;
        assert_eq!(done.result, Ok(Value::String("i:n:3".into())));
        let slow = sleepy_request(Duration::from_secs(5), "i:n:3", Duration::from_millis(20));
        assert_eq!(slow.ticket(), "i:n:3#1");
        let done = slow.perform().await;
        assert_eq!(done.result, Err(ActionError::Timeout { after_ms: 20 }));
        assert!(done.elapsed >= Duration::from_millis(20));
    }
}
