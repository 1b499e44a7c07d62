//! Alert rules as operators write them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A rule watching one journey over a sliding window; it fires when its condition holds
/// and resolves when it no longer does, notifying through an action each time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertDef {
    /// The journey watched.
    pub journey: String,
    pub condition: AlertCondition,
    /// ISO-8601 duration of the sliding window (at least one minute).
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyDef>,
}

fn default_window() -> String {
    "PT15M".into()
}

/// What makes an alert fire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertCondition {
    /// Failed steps over node steps in the window is above `above` (0 to 1), once there
    /// are at least `min_steps` steps.
    ErrorRate {
        above: f64,
        #[serde(default = "default_min")]
        min_steps: u64,
    },
    /// Refused entries over entry attempts in the window is above `above`, once there are
    /// at least `min_entries` attempts.
    DiscardRate {
        above: f64,
        #[serde(default = "default_min")]
        min_entries: u64,
    },
    /// A read-audience or business-event run of the journey read no profile for the
    /// whole window.
    StalledRun,
}

fn default_min() -> u64 {
    10
}

/// The action that delivers an alert's transitions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotifyDef {
    /// An action (`webhook`, `log`, `name@version`).
    pub action: String,
    /// The action's parameters, as literal JSON.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The parameter that receives the alert (`{id, journey, state, value, ...}`).
    #[serde(default = "default_payload_param")]
    pub payload_param: String,
}

fn default_payload_param() -> String {
    "body".into()
}
