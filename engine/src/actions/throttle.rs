//! Rate and concurrency caps on action calls, per action and per destination host.
//!
//! Owns the token buckets (on the engine clock) and the in-flight counts. A call that
//! would pass a cap is not made and not blocked: the action node pauses its instance
//! until the cap has room, so the queue of throttled calls is the set of waiting
//! instances in the store, which survives restarts. This module never calls an action.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cap on calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionLimit {
    /// Calls per second (a burst of up to one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// Calls running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
}

/// How long a call that found no free concurrency slot waits before trying again.
const CONCURRENCY_RETRY: SignedDuration = SignedDuration::from_millis(100);

#[derive(Default)]
struct Gate {
    tokens: f64,
    refilled_at: Option<Timestamp>,
    in_flight: u32,
}

/// The caps of one engine. Keys are `action:<name>` and `host:<host>`.
#[derive(Default)]
pub struct Throttle {
    limits: BTreeMap<String, ActionLimit>,
    /// Shared with the permits, which outlive the step that took them (a call that
    /// leaves its partition's batch keeps its slot until it answers).
    gates: Arc<Mutex<HashMap<String, Gate>>>,
}

/// A call's hold on its caps; released when dropped.
pub struct Permit {
    gates: Arc<Mutex<HashMap<String, Gate>>>,
    keys: Vec<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(g) = gates.get_mut(key) {
                g.in_flight = g.in_flight.saturating_sub(1);
            }
        }
    }
}

/// Why a call must wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttled {
    /// The cap that is full (`action:webhook`, `host:api.example.com`).
    pub by: String,
    /// When to try again.
    pub retry_at: Timestamp,
}

impl Throttle {
    /// Caps by action name and by host.
    pub fn new(
        actions: &BTreeMap<String, ActionLimit>,
        hosts: &BTreeMap<String, ActionLimit>,
    ) -> Self {
        let mut limits = BTreeMap::new();
        for (name, l) in actions {
            limits.insert(format!("action:{name}"), *l);
        }
        for (host, l) in hosts {
            limits.insert(format!("host:{}", host.to_ascii_lowercase()), *l);
        }
        Throttle {
            limits,
            gates: Arc::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// The caps a call of `action` (its name, without version) with `params` falls
    /// under: the action's, and the host of a `url` parameter's.
    pub fn keys(&self, action: &str, params: &Value) -> Vec<String> {
        if self.limits.is_empty() {
            return Vec::new();
        }
        let name = action.split('@').next().unwrap_or(action);
        let mut keys = vec![format!("action:{name}")];
        if let Some(host) = params
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| u.parse::<http::Uri>().ok())
            .and_then(|u| u.host().map(str::to_ascii_lowercase))
        {
            keys.push(format!("host:{host}"));
        }
        keys.retain(|k| self.limits.contains_key(k));
        keys
    }

    /// Takes a token and a slot of every cap in `keys`, or none of them.
    pub fn acquire(&self, keys: Vec<String>, now: Timestamp) -> Result<Permit, Throttled> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        // Check every cap first, then take from all.
        for key in &keys {
            let limit = self.limits[key];
            let gate = gates.entry(key.clone()).or_default();
            if let Some(max) = limit.max_concurrent
                && gate.in_flight >= max
            {
                return Err(Throttled {
                    by: key.clone(),
                    retry_at: now.checked_add(CONCURRENCY_RETRY).unwrap_or(now),
                });
            }
            if let Some(rate) = limit.rate_per_second.filter(|r| *r > 0.0) {
                let burst = rate.max(1.0);
                let tokens = match gate.refilled_at {
                    None => burst,
                    Some(at) => {
                        let elapsed = now.duration_since(at).as_secs_f64().max(0.0);
                        (gate.tokens + elapsed * rate).min(burst)
                    }
                };
                gate.tokens = tokens;
                gate.refilled_at = Some(now);
                if tokens < 1.0 {
                    let wait = SignedDuration::try_from_secs_f64((1.0 - tokens) / rate)
                        .unwrap_or(SignedDuration::from_secs(1))
                        .max(SignedDuration::from_millis(1));
                    return Err(Throttled {
                        by: key.clone(),
                        retry_at: now.checked_add(wait).unwrap_or(now),
                    });
                }
            }
        }
        for key in &keys {
            let limit = self.limits[key];
            let gate = gates.entry(key.clone()).or_default();
            if limit.rate_per_second.is_some_and(|r| r > 0.0) {
                gate.tokens -= 1.0;
            }
            gate.in_flight += 1;
        }
        Ok(Permit {
            gates: self.gates.clone(),
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_and_concurrency_caps_hold_across_actions_and_hosts() {
        let actions = BTreeMap::from([(
            "webhook".to_string(),
            ActionLimit {
                rate_per_second: Some(2.0),
                max_concurrent: None,
            },
        )]);
        let hosts = BTreeMap::from([(
            "crm.example.com".to_string(),
            ActionLimit {
                rate_per_second: None,
                max_concurrent: Some(1),
            },
        )]);
        let t = Throttle::new(&actions, &hosts);
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let p = json!({"url": "https://CRM.example.com/x"});
        assert_eq!(
            t.keys("webhook@0.1.0", &p),
            vec!["action:webhook", "host:crm.example.com"]
        );
        assert!(t.keys("log", &json!({})).is_empty());
        let first = t.acquire(t.keys("webhook", &p), now).unwrap();
        // The host allows one at a time.
        let busy = t.acquire(t.keys("webhook", &p), now).err().unwrap();
        assert_eq!(busy.by, "host:crm.example.com");
        drop(first);
        let other = json!({"url": "https://other.example.com/"});
        let _second = t.acquire(t.keys("webhook", &other), now).unwrap();
        // Two per second: the third waits half a second.
        let third = t.acquire(t.keys("webhook", &other), now).err().unwrap();
        assert_eq!(third.by, "action:webhook");
        assert_eq!(third.retry_at, now + SignedDuration::from_millis(500));
        let later = now + SignedDuration::from_millis(500);
        assert!(t.acquire(t.keys("webhook", &other), later).is_ok());
    }
}
