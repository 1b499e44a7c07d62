//! Action calls that left their partition's batch: where they run, how many may, and
//! how their answers find the way back.
//!
//! A partition waits `action_wait_ms` for a call ([`Calls::run`]); a call still running
//! then leaves the batch, which commits its instance as calling (status `waiting`, the
//! attempt's ticket in `calling`, a timer at the call's deadline). The call goes on in
//! its own task, counted in [`Calls`] (at most `max_calls_in_flight`; past that the
//! batch waits instead), and its answer is sent to the partition as [`Called`], handled
//! like any message. A partition's timer on a calling instance asks [`Calls::in_flight`]:
//! an answer on its way is waited for; an answer lost in a crash is asked for again with
//! the same idempotency key. Owns no instance and never writes to the store.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::actions::{CallDone, CallRequest};
use crate::metrics::Metrics;

/// A call still running when its batch stopped waiting.
pub(crate) struct Leaving {
    call: Pin<Box<dyn Future<Output = CallDone> + Send>>,
    slot: OwnedSemaphorePermit,
    /// The attempt's ticket (idempotency key and attempt).
    pub ticket: String,
    /// When the call must be over, on the engine's clock.
    pub deadline: Timestamp,
}

/// A call's answer on its way back to the instance that made it.
pub(crate) struct Called {
    pub profile_id: String,
    pub instance_id: String,
    pub ticket: String,
    /// The event whose activation made the call (its steps name it).
    pub event_id: Option<String>,
    /// What the node's step had gathered before the call (its plugin calls).
    pub detail: Option<Value>,
    pub done: CallDone,
}

/// The calls of one engine running outside their batches.
pub(crate) struct Calls {
    wait: Duration,
    slots: Arc<Semaphore>,
    in_flight: Mutex<HashSet<String>>,
    metrics: Metrics,
}

impl Calls {
    pub fn new(wait_ms: u64, max_in_flight: usize, metrics: Metrics) -> Self {
        Calls {
            wait: Duration::from_millis(wait_ms),
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
            in_flight: Mutex::default(),
            metrics,
        }
    }

    /// Makes the call, waiting for it up to `action_wait_ms`: its answer, or the call
    /// still running (when a slot is free; otherwise the wait goes on to the answer).
    pub async fn run(&self, request: CallRequest) -> Result<CallDone, Leaving> {
        let ticket = request.ticket();
        let deadline = request.call.deadline;
        let mut call = Box::pin(request.perform());
        tokio::select! {
            biased;
            done = &mut call => return Ok(done),
            () = tokio::time::sleep(self.wait) => {}
        }
        match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Err(Leaving {
                call,
                slot,
                ticket,
                deadline,
            }),
            Err(_) => Ok(call.await),
        }
    }

    /// Counts a call that left its batch as in flight, and runs it to its answer.
    pub fn send_off(
        self: &Arc<Self>,
        leaving: Leaving,
    ) -> impl Future<Output = CallDone> + Send + 'static {
        let Leaving {
            call, slot, ticket, ..
        } = leaving;
        let n = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.insert(ticket);
            in_flight.len()
        };
        self.metrics.action_call_left_batch();
        self.metrics.action_calls_in_flight(n);
        async move {
            let done = call.await;
            drop(slot);
            done
        }
    }

    /// Whether the attempt with this ticket is running in this process.
    pub fn in_flight(&self, ticket: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(ticket)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls running outside their batches now (their answers not yet handled).
    pub fn len(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The attempt's answer reached its partition.
    pub fn answered(&self, ticket: &str) {
        let n = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.remove(ticket);
            in_flight.len()
        };
        self.metrics.action_calls_in_flight(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::sleepy_request;

    fn request(sleep_ms: u64, key: &str) -> CallRequest {
        sleepy_request(
            Duration::from_millis(sleep_ms),
            key,
            Duration::from_secs(10),
        )
    }

    #[tokio::test]
    async fn a_quick_call_answers_in_the_batch_and_a_slow_one_leaves_while_slots_last() {
        let calls = Arc::new(Calls::new(20, 1, Metrics::new()));
        // Quick: answered within the wait.
        assert!(calls.run(request(0, "quick")).await.is_ok());
        // Slow: leaves, counted in flight until answered.
        let Err(leaving) = calls.run(request(300, "slow")).await else {
            panic!("a slow call leaves its batch");
        };
        assert_eq!(leaving.ticket, "slow#1");
        let running = tokio::spawn(calls.send_off(leaving));
        assert!(calls.in_flight("slow#1"));
        // No slot left: the next slow call is waited for to its answer.
        let started = std::time::Instant::now();
        assert!(calls.run(request(100, "third")).await.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(100));
        let done = running.await.expect("call task");
        assert_eq!(done.result, Ok(Value::String("slow".into())));
        calls.answered("slow#1");
        assert!(!calls.in_flight("slow#1"));
        // Its slot is free again.
        assert!(calls.run(request(300, "fourth")).await.is_err());
    }
}
