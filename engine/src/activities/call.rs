//! How a node that calls outside the engine calls (`action`, `message`): its timeout,
//! its retry policy on transient failures (the same idempotency key on every attempt;
//! exponential backoff with jitter drawn from that key, never earlier than a server's
//! `Retry-After`), the caps that make a call wait durably, the dry run of a test, and the
//! reading of the answer: on to `next` with the result kept as `actions.<node id>`, a
//! retry later, or the error path.
//!
//! Owns the call's policy, never what is called or with what: the node kind builds the
//! parameters and picks the executor.

use std::time::Duration as StdDuration;

use jiff::{SignedDuration, Span};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Cx, NodeRef, Outcome, StepCx};
use crate::actions::{ActionCall, CallDone, CallRequest};

/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Attempts in all, the first call included (1 to 10).
    pub max_attempts: u32,
    /// Pause before the second attempt; doubled before each later one. Default `PT10S`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// How a node that calls outside the engine calls: its timeout, its retries and where
/// it goes after (shared by `action` and `message`).
#[derive(Debug)]
pub struct CallPolicy {
    pub timeout: Option<StdDuration>,
    pub max_attempts: u32,
    pub backoff: Span,
    pub next: Option<NodeRef>,
    pub on_error: Option<NodeRef>,
}

fn exact(cx: &mut Cx, path: &str, text: &str) -> Option<SignedDuration> {
    let span = cx.duration(path, text)?;
    match SignedDuration::try_from(span) {
        Ok(d) => Some(d),
        Err(_) => {
            cx.problem(
                path,
                format!("{text:?} must be in hours, minutes or seconds (like PT30S)"),
            );
            None
        }
    }
}

impl CallPolicy {
    pub(super) fn successors(&self) -> Vec<NodeRef> {
        self.next.into_iter().chain(self.on_error).collect()
    }

    /// Compiles the timeout, retry policy and paths of a node that makes calls.
    pub(super) fn compile(
        path: &str,
        cx: &mut Cx,
        timeout_text: Option<&str>,
        retry: Option<&RetryDef>,
        next: Option<&String>,
        on_error: Option<&String>,
    ) -> Option<CallPolicy> {
        let mut ok = true;
        let timeout = match timeout_text {
            Some(t) => match exact(cx, &format!("{path}.timeout"), t) {
                Some(d) if d.is_positive() => Some(d.unsigned_abs()),
                Some(_) => {
                    cx.problem(format!("{path}.timeout"), "must be longer than zero");
                    None
                }
                None => None,
            },
            None => None,
        };
        if timeout_text.is_some() && timeout.is_none() {
            ok = false;
        }
        let (max_attempts, backoff) = match retry {
            None => (1, Span::new().seconds(10)),
            Some(r) => {
                if !(1..=MAX_ATTEMPTS).contains(&r.max_attempts) {
                    cx.problem(
                        format!("{path}.retry.max_attempts"),
                        format!("{} is not between 1 and {MAX_ATTEMPTS}", r.max_attempts),
                    );
                    ok = false;
                }
                let backoff = r.backoff.as_deref().unwrap_or("PT10S");
                let backoff = match exact(cx, &format!("{path}.retry.backoff"), backoff) {
                    Some(d) => Span::try_from(d).unwrap_or_else(|_| Span::new().seconds(10)),
                    None => {
                        ok = false;
                        Span::new()
                    }
                };
                (r.max_attempts, backoff)
            }
        };
        let next = cx.opt_target(&format!("{path}.next"), next);
        let on_error = cx.opt_target(&format!("{path}.on_error"), on_error);
        let (Some(next), Some(on_error), true) = (next, on_error, ok) else {
            return None;
        };
        Some(CallPolicy {
            timeout,
            max_attempts,
            backoff,
            next,
            on_error,
        })
    }
}

impl CallPolicy {
    /// Makes the call (`name` labels it on the step and in the caps): waits durably
    /// over a cap, dry-runs in a test with dry runs, with the idempotency key fixed when
    /// the node was entered.
    pub(super) fn send(
        &self,
        cx: &mut StepCx<'_>,
        name: &str,
        executor: std::sync::Arc<dyn crate::actions::ActionExecutor>,
        params: Value,
    ) -> Outcome {
        let attempt = cx.instance.data.attempt.max(1);
        // Caps: a call over one waits, durably (the instance pauses until there is room).
        let keys = cx.throttle.keys(name, &params);
        let permit = if keys.is_empty() {
            None
        } else {
            match cx.throttle.acquire(keys, cx.now) {
                Ok(permit) => Some(permit),
                Err(t) => {
                    return Outcome::pause(Some(t.retry_at)).with_detail(json!({
                        "action": name,
                        "params": params,
                        "throttled": {"by": t.by, "retry_at": t.retry_at.to_string()},
                    }));
                }
            }
        };
        // A draft in test mode may dry-run its actions: the step keeps the parameters.
        let executor: std::sync::Arc<dyn crate::actions::ActionExecutor> = if cx.journey.dry_run {
            std::sync::Arc::new(crate::actions::DryRun::default())
        } else {
            executor
        };
        let timeout = self.timeout.unwrap_or(StdDuration::from_millis(
            cx.settings.default_action_timeout_ms,
        ));
        let deadline = cx
            .now
            .checked_add(SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX))
            .unwrap_or(cx.now);
        let call = ActionCall {
            action: name.to_string(),
            journey_id: cx.journey.id.to_string(),
            version: cx.journey.version,
            node_id: cx.node_id.to_string(),
            instance_id: cx.instance.id.clone(),
            profile_id: cx.instance.profile_id.clone(),
            attempt,
            idempotency_key: idempotency_key(cx),
            deadline,
            params,
        };
        Outcome::call(CallRequest {
            executor,
            call,
            timeout,
            permit,
        })
    }

    /// Reads a call's answer: on to `next` with the result kept, a retry later, or the
    /// error path.
    pub(super) fn read_result(
        &self,
        cx: &mut StepCx<'_>,
        done: CallDone,
        name: &str,
        pinned: &str,
    ) -> Outcome {
        let CallDone {
            call,
            result,
            elapsed,
        } = done;
        let ActionCall {
            attempt,
            idempotency_key,
            params,
            ..
        } = call;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code().as_str(),
        };
        cx.metrics.action(pinned, outcome, elapsed.as_secs_f64());
        // The step's detail takes the call's key and parameters as they are (a `json!`
        // of a `Value` would copy it through its serializer).
        let detail = |outcome: Value| {
            let mut d = Map::with_capacity(6);
            d.insert("action".into(), Value::from(name));
            d.insert(
                "duration_ms".into(),
                Value::from(elapsed.as_secs_f64() * 1000.0),
            );
            d.insert("attempt".into(), Value::from(attempt));
            d.insert(
                "idempotency_key".into(),
                Value::from(idempotency_key.as_str()),
            );
            d.insert("params".into(), params);
            d.insert("outcome".into(), outcome);
            Value::Object(d)
        };
        match result {
            Ok(value) => {
                let mut answer = Map::with_capacity(1);
                answer.insert("result".into(), value.clone());
                cx.instance
                    .data
                    .actions
                    .insert(cx.node_id.to_string(), value);
                cx.instance.data.attempt = 0;
                Outcome::goto(self.next).with_detail(detail(Value::Object(answer)))
            }
            // Declined on purpose (an address on the suppression list): not a failure,
            // the instance goes on and the step says why.
            Err(crate::actions::ActionError::Declined { code, message }) => {
                cx.instance.data.attempt = 0;
                Outcome::skip(code, message.clone(), self.next).with_detail(detail(
                    json!({"not_sent": {"code": code, "message": message}}),
                ))
            }
            Err(err) if err.is_retryable() && attempt < self.max_attempts => {
                let backoff = self.backoff_before(attempt + 1, &idempotency_key, cx);
                let mut wake_at = cx.now.checked_add(backoff).unwrap_or(cx.now);
                let mut error = json!({"code": err.code(), "message": err.to_string()});
                if let Some(asked) = err.retry_after() {
                    let cap = SignedDuration::from_secs(
                        i64::try_from(cx.settings.max_retry_after_seconds).unwrap_or(i64::MAX),
                    );
                    let asked = asked.resolve(cx.now, cap);
                    error["retry_after"] = json!(asked.to_string());
                    wake_at = wake_at.max(asked);
                }
                cx.instance.data.attempt = attempt + 1;
                Outcome::pause(Some(wake_at)).with_detail(detail(json!({
                    "error": error,
                    "retry_at": wake_at.to_string(),
                })))
            }
            Err(err) => {
                let code = err.code();
                cx.instance.data.actions.insert(
                    cx.node_id.to_string(),
                    json!({"error": {"code": code, "message": err.to_string()}}),
                );
                cx.instance.data.attempt = 0;
                let mut out = Outcome::fail(code, err.to_string(), self.on_error);
                out.detail = Some(detail(
                    json!({"error": {"code": code, "message": err.to_string()}}),
                ));
                out
            }
        }
    }
}

/// The key of the call a node makes: fixed when the node is entered, the same on every
/// retry and on a replay of the same step after a crash.
pub(super) fn idempotency_key(cx: &StepCx<'_>) -> String {
    format!(
        "{}:{}:{}",
        cx.instance.id, cx.node_id, cx.instance.data.step
    )
}

impl CallPolicy {
    /// The pause before attempt `next` (2 or more): the backoff doubled after each
    /// failure, plus up to `action_retry_jitter` of it, drawn from the idempotency key and
    /// the attempt so that a replay waits the same.
    fn backoff_before(&self, next: u32, key: &str, cx: &StepCx<'_>) -> SignedDuration {
        let base = SignedDuration::try_from(self.backoff).unwrap_or(SignedDuration::ZERO);
        let doubled = base
            .checked_mul(1i32 << (next.saturating_sub(2)).min(20))
            .unwrap_or(SignedDuration::MAX);
        let share = cx.settings.action_retry_jitter.clamp(0.0, 1.0);
        let draw = crate::ids::stable_hash(&[key, &next.to_string()]) as f64 / u64::MAX as f64;
        let extra = SignedDuration::try_from_secs_f64(doubled.as_secs_f64() * share * draw)
            .unwrap_or(SignedDuration::ZERO);
        doubled.checked_add(extra).unwrap_or(doubled)
    }
}
