//! Alerts: rules per journey over a sliding window (error rate, discard rate, a stalled
//! audience run), firing and resolving, each transition delivered through an action.
//!
//! Owns the rules, their state and the per-minute step counts they read. Partitions
//! hand each committed batch's steps to [`Alerting::record`] (a no-op while no rule
//! exists); a task evaluates every rule every `alert_check_seconds` on the engine clock,
//! stores each state change, and calls the rule's action until it has delivered the
//! latest transition (the same idempotency key on every try). Counts live in memory:
//! after a restart a window fills again from then on. This module never changes an
//! instance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{DefinitionError, Runtime, Shared};
use crate::actions::ActionCall;
use crate::code::Code;
use crate::journal::{Step, StepStatus};
use crate::model::{AlertCondition, AlertDef};
use crate::store::RunStatus;

/// Whether a rule's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Ok,
    Firing,
}

/// What a rule saw last and what it delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub status: AlertStatus,
    /// When the rule last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// The measured rate (or, for a stalled run, seconds without progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<Timestamp>,
    /// Status changes so far; part of each notification's idempotency key.
    #[serde(default)]
    pub transitions: u32,
    /// Whether the latest change was delivered.
    #[serde(default)]
    pub notified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Default for AlertState {
    /// A new rule is `ok`, with nothing to deliver.
    fn default() -> Self {
        AlertState {
            status: AlertStatus::Ok,
            since: None,
            value: None,
            evaluated_at: None,
            transitions: 0,
            notified: true,
            last_error: None,
        }
    }
}

/// A rule with its state, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub id: String,
    pub definition: AlertDef,
    pub state: AlertState,
}

#[derive(Clone)]
struct Rule {
    def: AlertDef,
    window: SignedDuration,
    state: AlertState,
}

#[derive(Default, Clone, Copy)]
struct Bucket {
    steps: u64,
    failed: u64,
    entered: u64,
    discarded: u64,
}

/// The rules and the counts they read.
#[derive(Default)]
pub struct Alerting {
    watching: AtomicBool,
    rules: RwLock<BTreeMap<String, Rule>>,
    /// (journey, minute since the epoch) -> counts, for watched journeys only.
    buckets: Mutex<BTreeMap<(String, i64), Bucket>>,
    watched: RwLock<HashSet<String>>,
    /// Audience runs: id -> (profiles read, since when that count has not moved).
    progress: Mutex<HashMap<String, (u64, Timestamp)>>,
    kick: tokio::sync::Notify,
}

impl Alerting {
    /// Counts the steps of a committed batch for the watched journeys.
    pub fn record(&self, steps: &[Step]) {
        if !self.watching.load(Ordering::Relaxed) {
            return;
        }
        let watched = self.watched.read().unwrap_or_else(|p| p.into_inner());
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for s in steps.iter().filter(|s| watched.contains(&s.journey_id)) {
            let minute = s.at.as_second().div_euclid(60);
            let b = buckets.entry((s.journey_id.clone(), minute)).or_default();
            match s.status {
                StepStatus::Entered => b.entered += 1,
                StepStatus::Discarded => b.discarded += 1,
                StepStatus::Passed => b.steps += 1,
                StepStatus::Failed => {
                    b.steps += 1;
                    b.failed += 1;
                }
                _ => {}
            }
        }
    }

    fn rewatch(&self) {
        let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
        let journeys: HashSet<String> = rules.values().map(|r| r.def.journey.clone()).collect();
        self.watching.store(!journeys.is_empty(), Ordering::Relaxed);
        *self.watched.write().unwrap_or_else(|p| p.into_inner()) = journeys;
    }

    /// Counts of a journey from `from` on.
    fn sum(&self, journey: &str, from: Timestamp) -> Bucket {
        let first = from.as_second().div_euclid(60);
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .range((journey.to_string(), first)..=(journey.to_string(), i64::MAX))
            .fold(Bucket::default(), |mut acc, (_, b)| {
                acc.steps += b.steps;
                acc.failed += b.failed;
                acc.entered += b.entered;
                acc.discarded += b.discarded;
                acc
            })
    }

    /// Drops counts older than every window.
    fn prune(&self, now: Timestamp) {
        let longest = {
            let rules = self.rules.read().unwrap_or_else(|p| p.into_inner());
            rules
                .values()
                .map(|r| r.window)
                .max()
                .unwrap_or(SignedDuration::ZERO)
        };
        let oldest = now
            .checked_sub(longest)
            .unwrap_or(now)
            .as_second()
            .div_euclid(60);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.retain(|(_, minute), _| *minute >= oldest);
    }
}

fn parse_rule(def: Value) -> Result<(AlertDef, SignedDuration), DefinitionError> {
    let def: AlertDef = serde_path_to_error::deserialize(&def).map_err(|e| {
        let p = crate::model::serde_problem(e);
        DefinitionError::Invalid {
            path: p.path,
            message: p.message,
        }
    })?;
    let invalid = |path: &str, message: String| DefinitionError::Invalid {
        path: path.into(),
        message,
    };
    let window =
        crate::expr::time::parse_exact_duration(&def.window).map_err(|m| invalid("window", m))?;
    if window < SignedDuration::from_mins(1) {
        return Err(invalid(
            "window",
            "the window lasts at least one minute".into(),
        ));
    }
    match def.condition {
        AlertCondition::ErrorRate { above, .. } | AlertCondition::DiscardRate { above, .. }
            if !(0.0..=1.0).contains(&above) =>
        {
            return Err(invalid(
                "condition.above",
                format!("{above} is not a rate between 0 and 1"),
            ));
        }
        _ => {}
    }
    Ok((def, window))
}

impl Runtime {
    /// Creates or replaces an alert rule (its state is kept when it exists).
    pub async fn put_alert(&self, id: &str, def: Value) -> Result<AlertView, DefinitionError> {
        if let Err(message) = crate::ids::check_id(id) {
            return Err(DefinitionError::Invalid {
                path: "id".into(),
                message,
            });
        }
        let (def, window) = parse_rule(def)?;
        if let Some(notify) = &def.notify {
            check_literal_params(&notify.params, "notify.params")?;
            let Some(entry) = self.shared.actions.resolve(&notify.action) else {
                return Err(DefinitionError::Invalid {
                    path: "notify.action".into(),
                    message: format!("action {:?} is not installed", notify.action),
                });
            };
            if let Some(schema) = &entry.params_schema {
                let params = notify_params(notify, json!({}));
                if let Err(e) = schema.validate(&params) {
                    return Err(DefinitionError::Invalid {
                        path: "notify.params".into(),
                        message: format!(
                            "the parameters do not match {}'s schema: {e}",
                            notify.action
                        ),
                    });
                }
            }
        }
        let stored = serde_json::to_value(&def).map_err(anyhow::Error::from)?;
        self.shared.store.put_alert(id, stored, self.now()).await?;
        let alerting = &self.shared.alerting;
        let view = {
            let mut rules = alerting.rules.write().unwrap_or_else(|p| p.into_inner());
            let state = rules.get(id).map(|r| r.state.clone()).unwrap_or_default();
            rules.insert(
                id.to_string(),
                Rule {
                    def: def.clone(),
                    window,
                    state: state.clone(),
                },
            );
            AlertView {
                id: id.to_string(),
                definition: def,
                state,
            }
        };
        alerting.rewatch();
        alerting.kick.notify_one();
        Ok(view)
    }

    pub async fn delete_alert(&self, id: &str) -> anyhow::Result<bool> {
        let existed = self.shared.store.delete_alert(id).await?;
        self.shared
            .alerting
            .rules
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.shared.alerting.rewatch();
        Ok(existed)
    }

    /// Every rule with its state, by id.
    pub fn alerts(&self) -> Vec<AlertView> {
        let rules = self
            .shared
            .alerting
            .rules
            .read()
            .unwrap_or_else(|p| p.into_inner());
        rules
            .iter()
            .map(|(id, r)| AlertView {
                id: id.clone(),
                definition: r.def.clone(),
                state: r.state.clone(),
            })
            .collect()
    }

    pub(super) async fn load_alerts(&self) -> anyhow::Result<()> {
        for (id, def, state) in self.shared.store.alerts().await? {
            match parse_rule(def) {
                Ok((def, window)) => {
                    let state = state
                        .and_then(|s| serde_json::from_value(s).ok())
                        .unwrap_or_default();
                    self.shared
                        .alerting
                        .rules
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, Rule { def, window, state });
                }
                Err(e) => tracing::error!(alert = %id, error = %e, "stored alert rule is invalid"),
            }
        }
        self.shared.alerting.rewatch();
        Ok(())
    }
}

/// Alert parameters are literal JSON, unlike an action node's expressions: a string
/// written as a quoted expression (`'"https://hooks.example.com/x"'`, as in a node) would
/// reach the action with its quotes and fail at every evaluation. Refuses such strings,
/// and a `url` that is not an http(s) URL, at their location.
fn check_literal_params(params: &Map<String, Value>, path: &str) -> Result<(), DefinitionError> {
    for (key, value) in params {
        let here = format!("{path}.{key}");
        match value {
            Value::String(text) => {
                let quoted = text.len() >= 2
                    && ["\"", "'", "`"]
                        .iter()
                        .any(|q| text.starts_with(q) && text.ends_with(q));
                if quoted {
                    return Err(DefinitionError::Invalid {
                        path: here,
                        message: format!(
                            "{text} is quoted as an expression; alert parameters are literal values: write {} without the quotes",
                            &text[1..text.len() - 1]
                        ),
                    });
                }
                let is_url = text.parse::<http::Uri>().is_ok_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
                if key == "url" && !is_url {
                    return Err(DefinitionError::Invalid {
                        path: here,
                        message: format!("{text:?} is not an http(s) URL"),
                    });
                }
            }
            Value::Object(inner) => check_literal_params(inner, &here)?,
            _ => {}
        }
    }
    Ok(())
}

fn notify_params(notify: &crate::model::NotifyDef, alert: Value) -> Value {
    let mut params = notify.params.clone();
    params.insert(notify.payload_param.clone(), alert);
    Value::Object(params)
}

/// Evaluates every rule every `alert_check_seconds` (or when a rule changes).
pub(super) fn spawn(shared: Arc<Shared>) {
    shared.clone().spawn(async move {
        let every = SignedDuration::from_secs(
            i64::try_from(shared.settings.alert_check_seconds.max(1)).unwrap_or(60),
        );
        loop {
            let now = shared.clock.now();
            if shared.alerting.watching.load(Ordering::Relaxed) {
                evaluate(&shared, now).await;
            }
            let next = now.checked_add(every).unwrap_or(Timestamp::MAX);
            tokio::select! {
                () = shared.clock.sleep_until(next) => {}
                () = shared.alerting.kick.notified() => {}
            }
        }
    });
}

async fn evaluate(shared: &Shared, now: Timestamp) {
    let alerting = &shared.alerting;
    alerting.prune(now);
    let rules: Vec<(String, Rule)> = {
        let rules = alerting.rules.read().unwrap_or_else(|p| p.into_inner());
        rules.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    for (id, rule) in rules {
        let from = now.checked_sub(rule.window).unwrap_or(now);
        let (firing, value) = match &rule.def.condition {
            AlertCondition::ErrorRate { above, min_steps } => {
                let b = alerting.sum(&rule.def.journey, from);
                let rate = (b.steps >= *min_steps && b.steps > 0)
                    .then(|| b.failed as f64 / b.steps as f64);
                (rate.is_some_and(|r| r > *above), rate)
            }
            AlertCondition::DiscardRate { above, min_entries } => {
                let b = alerting.sum(&rule.def.journey, from);
                let attempts = b.entered + b.discarded;
                let rate = (attempts >= *min_entries && attempts > 0)
                    .then(|| b.discarded as f64 / attempts as f64);
                (rate.is_some_and(|r| r > *above), rate)
            }
            AlertCondition::StalledRun => match stalled_for(shared, &rule.def.journey, now).await {
                Ok(stalled) => (
                    stalled.is_some_and(|s| s >= rule.window),
                    stalled.map(|s| s.as_secs_f64()),
                ),
                Err(e) => {
                    tracing::warn!(alert = %id, error = %e, "cannot read the journey's runs");
                    continue;
                }
            },
        };
        let mut state = rule.state.clone();
        state.value = value;
        state.evaluated_at = Some(now);
        let status = if firing {
            AlertStatus::Firing
        } else {
            AlertStatus::Ok
        };
        if status != state.status {
            state.status = status;
            state.since = Some(now);
            state.transitions += 1;
            state.notified = rule.def.notify.is_none();
            tracing::warn!(alert = %id, journey = %rule.def.journey, status = ?status, value = ?value, "alert");
        }
        if !state.notified
            && let Some(notify) = &rule.def.notify
        {
            match deliver(shared, &id, &rule.def, notify, &state, now).await {
                Ok(()) => {
                    state.notified = true;
                    state.last_error = None;
                }
                Err(e) => state.last_error = Some(e),
            }
        }
        if state != rule.state {
            // The rule may have been replaced or deleted meanwhile.
            {
                let mut rules = alerting.rules.write().unwrap_or_else(|p| p.into_inner());
                match rules.get_mut(&id) {
                    Some(r) if r.def == rule.def => r.state = state.clone(),
                    _ => continue,
                }
            }
            if let Ok(v) = serde_json::to_value(&state)
                && let Err(e) = shared.store.set_alert_state(&id, v).await
            {
                tracing::error!(alert = %id, error = %e, "cannot store the alert's state");
            }
        }
    }
}

/// How long the journey's least advanced running audience run has not read a profile.
async fn stalled_for(
    shared: &Shared,
    journey: &str,
    now: Timestamp,
) -> anyhow::Result<Option<SignedDuration>> {
    let runs = shared.store.runs_of_journey(journey).await?;
    let mut progress = shared
        .alerting
        .progress
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut worst: Option<SignedDuration> = None;
    for run in runs.iter().filter(|r| r.status == RunStatus::Running) {
        // First seen now: its progress before is unknown.
        let slot = progress.entry(run.id.clone()).or_insert((run.read, now));
        if slot.0 != run.read {
            *slot = (run.read, now);
        }
        let stalled = now.duration_since(slot.1);
        worst = Some(worst.map_or(stalled, |w| w.max(stalled)));
    }
    progress.retain(|id, _| {
        runs.iter()
            .any(|r| r.id == *id && r.status == RunStatus::Running)
    });
    Ok(worst)
}

async fn deliver(
    shared: &Shared,
    id: &str,
    def: &AlertDef,
    notify: &crate::model::NotifyDef,
    state: &AlertState,
    now: Timestamp,
) -> Result<(), String> {
    let entry = shared
        .actions
        .resolve(&notify.action)
        .ok_or_else(|| format!("action {:?} is not installed", notify.action))?;
    let alert = json!({
        "id": id,
        "journey": def.journey,
        "status": state.status,
        "condition": def.condition,
        "window": def.window,
        "value": state.value,
        "since": state.since,
    });
    let timeout = std::time::Duration::from_millis(shared.settings.default_action_timeout_ms);
    let call = ActionCall {
        action: entry.pinned(),
        journey_id: def.journey.clone(),
        version: 0,
        node_id: format!("alert:{id}"),
        instance_id: format!("alert:{id}"),
        profile_id: String::new(),
        attempt: 1,
        idempotency_key: format!("alert:{id}:{}", state.transitions),
        deadline: now
            .checked_add(SignedDuration::try_from(timeout).unwrap_or(SignedDuration::MAX))
            .unwrap_or(now),
        params: notify_params(notify, alert),
    };
    match tokio::time::timeout(timeout, entry.executor.call(&call)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{}: {e}", e.code())),
        Err(_) => Err(Code::ActionTimeout.into()),
    }
}
